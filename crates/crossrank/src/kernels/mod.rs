//! Kernels: the one place that decides which code path runs on which
//! device, and the only code that touches host buffers.
//!
//! Everything above this module (nn/, models/, quant storage) calls these
//! functions with tensors and never asks what the device is. Here, the CPU
//! backend (Burn's `flex`) gets host fast paths where Burn's generic CPU
//! kernels measured slow — per-sequence attention, GELU, softmax's exp,
//! q8/q4 dequantization — and every other device (native wgpu, WebGPU)
//! gets plain tensor ops. Next here: int8 GEMMs, wasm SIMD.

mod activation;
mod attention;
mod dequant;

use burn::tensor::Device;

pub(crate) use activation::gelu;
pub(crate) use attention::{AttentionPlan, packed_attention};
pub(crate) use dequant::{dequantize, unpack_rows, widen_f16};

/// Whether `device` is the CPU backend, whose host buffers the fast paths
/// here read and write in place. Not under autodiff (training): the host
/// paths have no backward pass, so there every layer runs on tensor ops
/// and gradients flow through them (a Burn autodiff device compares equal
/// to the device it wraps, hence the second test).
fn on_host(device: &Device) -> bool {
    *device == Device::flex() && !device.is_autodiff()
}

/// Whether linear layers with f16 weights multiply in f16 on `device`. The
/// CPU backend has the f16 type too, but there f16 is for memory: the
/// weight is widened and the product stays on the tuned f32 GEMM (f16 GEMM
/// speed on the CPU was not measured), which also keeps CPU scores
/// f32-exact for f16 checkpoints. A GPU with the type multiplies in f16.
pub(crate) fn half_products(device: &Device) -> bool {
    !on_host(device)
}

/// Whether `device` stores f16 tensors natively (the CPU backend; wgpu and
/// WebGPU with `shader-f16`); elsewhere f16 weights are packed in 32-bit
/// words and widened with integer ops (`widen_f16`).
pub(crate) fn native_f16(device: &Device) -> bool {
    device.supports_dtype(burn::tensor::FloatDType::F16)
}

/// `f((index, chunk))` over `v` cut into chunks of `size`, in parallel
/// where there are threads.
fn for_each_chunk(v: &mut [f32], size: usize, f: impl Fn((usize, &mut [f32])) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        v.par_chunks_mut(size).enumerate().for_each(f);
    }
    #[cfg(not(feature = "rayon"))]
    v.chunks_mut(size).enumerate().for_each(f);
}
