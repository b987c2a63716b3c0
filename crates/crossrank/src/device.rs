//! Choosing the compute device at run time: Burn's `flex` CPU backend, or
//! wgpu (Vulkan / Metal / DX12 natively, WebGPU in the browser).

use std::str::FromStr;

use burn::tensor::Device;

use crate::error::{Error, Result};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// Burn's pure-Rust `flex` CPU backend.
    Cpu,
    /// A GPU through wgpu.
    Wgpu,
    /// wgpu when an adapter works, the CPU otherwise.
    #[default]
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "auto" => Ok(Self::Auto),
            other => Err(Error::InvalidInput(format!("unknown device {other:?} (expected cpu, wgpu or auto)"))),
        }
    }
}

/// A created device and what it is, for logs and users.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    pub device: Device,
    /// `"cpu"` or `"wgpu"`.
    pub kind: &'static str,
    /// Why this device (relevant for `Auto`).
    pub reason: String,
}

/// Create the device the choice names. wgpu is checked with a tiny
/// computation so a machine without a usable adapter gives a typed error
/// (or, for `Auto`, the CPU) instead of a panic deep inside a forward pass.
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice> {
    let cpu = || SelectedDevice {
        device: Device::flex(),
        kind: "cpu",
        reason: String::new(),
    };
    match choice {
        DeviceChoice::Cpu => Ok(SelectedDevice {
            reason: "asked for cpu".into(),
            ..cpu()
        }),
        DeviceChoice::Wgpu => wgpu(GpuKind::Any).map(|device| SelectedDevice {
            device,
            kind: "wgpu",
            reason: "asked for wgpu".into(),
        }),
        // A software adapter (lavapipe, SwiftShader) is slower than the CPU
        // backend, so `auto` only takes real GPUs.
        DeviceChoice::Auto => match wgpu(GpuKind::Discrete).or_else(|_| wgpu(GpuKind::Integrated)) {
            Ok(device) => Ok(SelectedDevice {
                device,
                kind: "wgpu",
                reason: "auto: a hardware GPU adapter is available".into(),
            }),
            Err(e) => Ok(SelectedDevice {
                reason: format!("auto: no usable hardware GPU ({e}); using the CPU"),
                ..cpu()
            }),
        },
    }
}

/// Which wgpu adapters to accept.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
enum GpuKind {
    /// Whatever wgpu picks by default (software adapters included).
    Any,
    Discrete,
    Integrated,
}

#[cfg(feature = "wgpu")]
fn wgpu(kind: GpuKind) -> Result<Device> {
    use burn::tensor::{DeviceKind, Tensor};
    let probe = move || {
        let device = Device::wgpu(match kind {
            GpuKind::Any => DeviceKind::DefaultDevice,
            GpuKind::Discrete => DeviceKind::DiscreteGpu(0),
            GpuKind::Integrated => DeviceKind::IntegratedGpu(0),
        });
        let t = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        let s: f32 = t.sum().try_into_scalar().map_err(|e| Error::Device(format!("{e:?}")))?;
        if (s - 6.0).abs() > 1e-6 {
            return Err(Error::Device(format!("wgpu self-check computed {s}, expected 6")));
        }
        Ok(device)
    };
    // A missing adapter panics inside cubecl; keep that out of the user's
    // terminal (the reason is returned instead). The hook is process-wide,
    // so it is restored right after the probe.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(probe);
    std::panic::set_hook(previous);
    match outcome {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Device(format!("wgpu is not available: {msg}")))
        }
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_kind: GpuKind) -> Result<Device> {
    Err(Error::Device("this build of crossrank has no wgpu support (feature \"wgpu\")".into()))
}

/// What a GPU adapter offers: shown to users, and used to choose precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// The adapter's name ("SwiftShader Device (Subzero)", "NVIDIA H100", ...).
    pub name: String,
    /// wgpu's backend ("BrowserWebGpu", "Vulkan", "Metal", ...).
    pub backend: String,
    /// Whether the adapter supports `shader-f16` (f16 compute).
    pub shader_f16: bool,
    /// The device's `maxStorageBufferBindingSize` (the largest tensor one
    /// kernel can bind); Burn requests the adapter's own limits.
    pub max_binding_bytes: u64,
}

/// Initialise the default wgpu adapter asynchronously — the only way in a
/// browser (WebGPU). The runtime can only be initialised once per process,
/// so the device is cached: later calls return the same device.
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub async fn gpu_async() -> Result<(Device, GpuInfo)> {
    use std::sync::OnceLock;
    static GPU: OnceLock<(Device, GpuInfo)> = OnceLock::new();
    if let Some(g) = GPU.get() {
        return Ok(g.clone());
    }
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|e| Error::Device(format!("no usable WebGPU/wgpu adapter: {e}")))?;
    let info = setup.adapter.get_info();
    let gpu = GpuInfo {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        shader_f16: setup.device.features().contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16),
        max_binding_bytes: setup.device.limits().max_storage_buffer_binding_size as u64,
    };
    // A concurrent caller may have won the race; either device works, keep one.
    Ok(GPU.get_or_init(|| (device, gpu)).clone())
}

#[cfg(not(any(feature = "wgpu", feature = "webgpu")))]
pub async fn gpu_async() -> Result<(Device, GpuInfo)> {
    Err(Error::Device("this build of crossrank has no GPU support (features \"wgpu\" / \"webgpu\")".into()))
}

/// Check that `device` computes what the CPU backend computes, on a small
/// fixture that exercises the kernels a reranker uses (embedding gather,
/// matmul with bias, layer norm, GELU, masked softmax attention, tanh,
/// reductions). Returns the largest absolute difference; an error when it
/// exceeds `tolerance` or the device fails. `device: auto` uses this before
/// trusting a GPU whose driver we have never seen.
pub async fn self_check_async(device: &Device, tolerance: f32) -> Result<f32> {
    let cpu = fixture_forward(&Device::flex());
    let gpu = fixture_forward(device);
    let (cpu, gpu) = (crate::read_f32(cpu).await?, crate::read_f32(gpu).await?);
    let diff = cpu.iter().zip(&gpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) });
    if !(diff <= tolerance) || cpu.len() != gpu.len() {
        return Err(Error::Device(format!(
            "the GPU self-check disagrees with the CPU (max abs difference {diff:e} > {tolerance:e})"
        )));
    }
    Ok(diff)
}

/// A two-sequence, one-layer encoder with deterministic weights.
fn fixture_forward(device: &Device) -> burn::tensor::Tensor<2> {
    use burn::tensor::{Tensor, TensorData, module};
    let (b, t, h, heads, vocab) = (2usize, 12usize, 32usize, 4usize, 50usize);
    // A fixed pseudo-random sequence (no RNG: identical on every platform).
    let vals = |n: usize, seed: u32| -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    };
    let t2 = |r: usize, c: usize, seed: u32| Tensor::<2>::from_data(TensorData::new(vals(r * c, seed), [r, c]), device);
    let t1 = |n: usize, seed: u32| Tensor::<1>::from_data(TensorData::new(vals(n, seed), [n]), device);
    // The second sequence has 4 padded positions; the layer runs on packed
    // tokens as the encoders do.
    let mask: Vec<u32> = (0..b * t).map(|i| u32::from(!(i / t == 1 && i % t >= t - 4))).collect();
    let packing = crate::nn::Packing::new(&mask, b, t);
    let ids: Vec<i64> = (0..b * t).map(|i| ((i * 7 + 3) % vocab) as i64).collect();
    let ids = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(packing.pack(&ids), [packing.len()]), device);
    let x = t2(vocab, h, 1).select(0, ids);
    let x = module::layer_norm(x, t1(h, 2).add_scalar(1.0), Some(t1(h, 3)), 1e-5);
    let proj = |x: Tensor<2>, seed: u32| module::linear(x, t2(h, h, seed).mul_scalar(0.2), Some(t1(h, seed + 100)));
    let qkv = Tensor::cat(vec![proj(x.clone(), 4), proj(x.clone(), 5), proj(x.clone(), 6)], 1);
    let ctx = crate::nn::packed_attention(qkv, &packing.attention(heads, device));
    let x = x + proj(ctx, 7);
    let ff = burn::tensor::activation::gelu(proj(x.clone(), 8));
    let x = module::layer_norm(x + proj(ff, 9), t1(h, 10).add_scalar(1.0), Some(t1(h, 11)), 1e-5);
    let x = packing.unpack(x);
    let pooled = x.slice([0..b, 0..1, 0..h]).reshape([b, h]);
    let logits = module::linear(pooled, t2(h, 3, 12), Some(t1(3, 13))).tanh();
    let summary = burn::tensor::activation::softmax(logits.clone(), 1);
    Tensor::cat(vec![logits, summary], 1)
}

/// Whether `device` is the CPU backend (layers pick their fast path by it,
/// never by target or device kind names in model code).
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}
