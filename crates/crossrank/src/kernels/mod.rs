//! Kernels: the one place that decides which code path runs on which
//! device, and the only code that touches host buffers.
//!
//! Everything above this module (nn/, models/, quant storage) calls these
//! functions with tensors and never asks what the device is. Here, the CPU
//! backend (Burn's `flex`) gets host fast paths where Burn's generic CPU
//! kernels measured slow — per-sequence attention, GELU, softmax's exp,
//! q8/q4 dequantization — and every other device (native wgpu, WebGPU)
//! gets plain tensor ops — except quantized linear layers, which run
//! integer GEMMs there (`int8`: AVX-512 VNNI, AVX2, wasm SIMD128).

mod activation;
mod attention;
mod dequant;
pub(crate) mod int8;

use burn::tensor::{Device, Int, Tensor, TensorData};

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

/// `x Wᵀ + b` for a quantized `W` with int8 activations and integer dot
/// products (see [`int8`]) where `x` is on the CPU backend and this
/// machine has an integer path for the weight's block; otherwise `x` comes
/// back (`Err`) and the caller multiplies in f32.
/// The weight comes as `QuantMatrix::parts` (kernels do not import quant).
pub(crate) fn quant_linear<const D: usize>(
    x: Tensor<D>,
    (packed, scales, bits, block, k): (&Tensor<2, Int>, &Tensor<2>, u32, usize, usize),
    bias: Option<&Tensor<1>>,
    act8: bool,
) -> Result<Tensor<D>, Tensor<D>> {
    let path = int8::path();
    if path == int8::Path::Off || !on_host(&x.device()) || !matches!(block, 16 | 32) || (act8 && bits != 8) {
        return Err(x);
    }
    let n = packed.dims()[0];
    let words = packed.clone().into_data().convert::<i32>();
    let words = words.as_slice::<i32>().expect("i32 words");
    // SAFETY: i32 and u32 have the same size and alignment; the kernels
    // read the words' bits.
    let words = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u32>(), words.len()) };
    let scales = scales.clone().into_data().convert::<f32>();
    let view = int8::QuantWeights { n, k, bits, block, words, scales: scales.as_slice::<f32>().expect("f32") };
    let qmax = if act8 { int8::QMAX8 } else { int8::QMAX16 };
    Ok(host_rows(x, n, bias, |xs, m, bias| int8::linear(path, xs, m, &view, bias, qmax).expect("a supported block")))
}

/// `f(x rows, m, bias)` on the host: `x` `[.., k]` as `m` rows of f32 and
/// the bias as f32, the `[m, n]` result back as a tensor `[.., n]` on
/// `x`'s device. `x` is moved in: the host copy is the tensor's own buffer
/// when nothing else holds it.
fn host_rows<const D: usize>(x: Tensor<D>, n: usize, bias: Option<&Tensor<1>>, f: impl FnOnce(&[f32], usize, Option<&[f32]>) -> Vec<f32>) -> Tensor<D> {
    let (device, mut dims) = (x.device(), x.dims());
    let m = dims[..D - 1].iter().product::<usize>();
    let bias = bias.map(|b| b.clone().into_data().convert::<f32>());
    let xs = x.into_data().convert::<f32>();
    let y = f(xs.as_slice::<f32>().expect("f32"), m, bias.as_ref().map(|b| b.as_slice::<f32>().expect("f32")));
    dims[D - 1] = n;
    Tensor::from_data(TensorData::new(y, dims), &device)
}

pub(crate) use int8::Panels;

/// The device [`host_panels`] live on, and that their dequantized copies
/// and concatenations go back to: the CPU backend.
pub(crate) fn panels_device() -> Device {
    Device::flex()
}

/// A q8 matrix (`packed` words `[rows, cols/4]`, `scales` `[rows,
/// cols/block]`) as the panels of this CPU's integer kernel, for products
/// with 8-bit activations (`act8`, the `int8` dtype) or 16-bit ones — on
/// the CPU backend only, and `None` where the integer path is off
/// (`CROSSRANK_INT8`) or scalar, or for other layouts.
pub(crate) fn host_panels(
    packed: &[u32],
    scales: &[f32],
    rows: usize,
    cols: usize,
    block: usize,
    act8: bool,
    device: &Device,
) -> Option<Panels> {
    if !on_host(device) || block == 0 || cols % block != 0 {
        return None;
    }
    let view = int8::QuantWeights { n: rows, k: cols, bits: 8, block, words: packed, scales };
    Panels::new(int8::path(), &view, if act8 { int8::QMAX8 } else { int8::QMAX16 })
}

/// `x Wᵀ + b` on the host over prepared panels (see [`host_panels`]).
pub(crate) fn panel_linear<const D: usize>(x: Tensor<D>, panels: &Panels, bias: Option<&Tensor<1>>) -> Tensor<D> {
    host_rows(x, panels.n(), bias, |xs, m, bias| panels.linear(xs, m, bias))
}

/// Which integer kernels quantized linear layers use on the CPU here (for
/// reports: "AVX2 (vpmaddwd)", "off (dequantize + f32 GEMM)", ...).
pub(crate) fn int8_kernels() -> &'static str {
    int8::path().name()
}

/// Whether linear layers with f16 weights multiply in f16 on `device`. The
/// CPU backend has the f16 type too, but there f16 is for memory: the
/// weight is widened and the product stays on the tuned f32 GEMM (f16 GEMM
/// speed on the CPU was not measured), which also keeps CPU scores
/// f32-exact for f16 checkpoints. A GPU with the type multiplies in f16.
pub(crate) fn half_products(device: &Device) -> bool {
    !on_host(device)
}

/// Whether quantized linear layers on `device` keep their weights as Burn
/// block-quantized tensors and multiply with Burn's quantized matmul,
/// which reads the q8/q4 blocks inside the matmul kernel (CubeCL:
/// dequantized tile by tile in registers/shared memory) instead of
/// materializing an f32 copy of every weight each pass: every device but
/// the CPU backend (which has the integer kernels) and autodiff (training
/// multiplies f32 weights). `CROSSRANK_GPU_QUANT=dequant` keeps the old
/// per-pass dequantization, for benchmarks.
pub(crate) fn fused_quant_matmul(device: &Device) -> bool {
    static DEQUANT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let dequant = *DEQUANT.get_or_init(|| std::env::var("CROSSRANK_GPU_QUANT").is_ok_and(|v| v.eq_ignore_ascii_case("dequant")));
    let fused = !dequant && *device != Device::flex() && !device.is_autodiff();
    #[cfg(not(target_family = "wasm"))]
    if fused {
        quiet_autotune_rejections();
    }
    fused
}

/// Burn's matmul autotune (native wgpu) also tries kernels that would view
/// q8 weights through vectors narrower than four floats; each of those
/// panics in cubecl-std's `quant_vector_size_q` assertion, the autotuner
/// catches the panic and keeps the candidates that run — but the panic
/// hook has printed it by then, as if something had crashed. Those
/// messages only are not printed; every other panic goes to the hook that
/// was installed before (the application's or the default).
#[cfg(not(target_family = "wasm"))]
fn quiet_autotune_rejections() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message =
                info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied());
            let rejection = info.location().is_some_and(|l| l.file().replace('\\', "/").ends_with("src/quant/view.rs"))
                && message.is_some_and(|m| m.contains("quantized view float vector size"));
            if !rejection {
                previous(info)
            }
        }));
    });
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
