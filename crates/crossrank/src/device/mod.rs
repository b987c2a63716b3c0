//! Choosing the compute device: Burn's `flex` CPU backend, or a GPU through
//! wgpu (Vulkan / Metal / DX12 natively, WebGPU in the browser). The one
//! home of the `auto` policy, which the CLI, the server, the wasm bindings
//! and the npm package all use: a hardware adapter that passes the
//! self-check, else the CPU, with one reason string.
//!
//! Probing is quiet: adapters are enumerated with wgpu first — natively on
//! Vulkan, Metal and DX12 only (the OpenGL probe is what made Mesa print
//! EGL errors), in the browser only where `navigator.gpu` exists — and
//! Burn's runtime is asked only for an adapter that exists, so a machine
//! without a GPU never reaches a panic inside its device thread.

mod self_check;

use std::str::FromStr;

pub use burn::tensor::Device;

use crate::error::{Error, Result};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// Burn's pure-Rust `flex` CPU backend.
    Cpu,
    /// A GPU through wgpu (software adapters included); an error when there
    /// is none.
    Wgpu,
    /// A hardware GPU that passes the self-check, the CPU otherwise.
    #[default]
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" | "wasm" => Ok(Self::Cpu),
            "wgpu" | "gpu" | "webgpu" => Ok(Self::Wgpu),
            "auto" => Ok(Self::Auto),
            other => Err(Error::InvalidInput(format!("unknown device {other:?} (expected cpu, wgpu, webgpu or auto)"))),
        }
    }
}

/// What a GPU adapter offers: shown to users, and used to choose precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// The adapter's name ("NVIDIA H100", "llvmpipe (LLVM 19.1.7, 256 bits)", ...).
    pub name: String,
    /// wgpu's backend ("Vulkan", "Metal", "Dx12", "BrowserWebGpu").
    pub backend: String,
    /// A software rasterizer (lavapipe, SwiftShader, WARP): slower than the
    /// CPU backend, so `auto` never takes one.
    pub software: bool,
    /// Whether the device has `shader-f16` (f16 compute).
    pub shader_f16: bool,
    /// The device's `maxStorageBufferBindingSize` (the largest tensor one
    /// kernel can bind); Burn requests the adapter's own limits.
    pub max_binding_bytes: u64,
}

/// A created device and what it is.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The device, for `Reranker::load` and the rest.
    pub device: Device,
    /// `"cpu"`, `"wgpu"` (native) or `"webgpu"` (browser).
    pub kind: &'static str,
    /// Why this device: what was asked, what `auto` found.
    pub reason: String,
    /// The GPU adapter, when the device is one.
    pub adapter: Option<GpuInfo>,
}

/// The largest difference from the CPU the self-check accepts (f32 compute).
const SELF_CHECK_TOLERANCE: f32 = 1e-3;

/// The integer kernels q8/q4 linear layers use on the CPU here, chosen at
/// run time from the instruction sets it has: "AVX-512 VNNI (vpdpwssd; int8: vpdpbusd)",
/// "AVX2 (vpmaddwd)", "aarch64 i8mm (smmla/usmmla)", "aarch64 dot product
/// (sdot/udot)", "aarch64 NEON (smlal)", "wasm SIMD128
/// (i32x4.dot_i16x8_s)", or "off (dequantize + f32 GEMM)" where there is
/// none; the environment variable `CROSSRANK_INT8` (off,
/// scalar, avx2, avx512, neon, dotprod, i8mm, simd128) overrides it.
pub fn cpu_int8_kernels() -> &'static str {
    crate::kernels::int8_kernels()
}

/// Create the device `choice` names (blocking; natively only — in a browser
/// use [`select_async`]).
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice> {
    block(select_async(choice))
}

/// Create the device `choice` names: see [`DeviceChoice`].
pub async fn select_async(choice: DeviceChoice) -> Result<SelectedDevice> {
    let cpu = |reason: String| SelectedDevice { device: Device::flex(), kind: "cpu", reason, adapter: None };
    match choice {
        DeviceChoice::Cpu => Ok(cpu("asked for cpu".into())),
        DeviceChoice::Wgpu => {
            let (device, info) = gpu::open(false).await?;
            let reason = format!("asked for a GPU ({}{})", info.name, if info.software { ", a software adapter" } else { "" });
            Ok(SelectedDevice { device, kind: gpu_kind(&info), reason, adapter: Some(info) })
        }
        DeviceChoice::Auto => {
            let (device, info) = match gpu::open(true).await {
                Ok(g) => g,
                Err(e) => {
                    let why = if let Error::Device(m) = e { m } else { e.to_string() };
                    return Ok(cpu(format!("auto: {why}; using the CPU")));
                }
            };
            match self_check::self_check(&device, SELF_CHECK_TOLERANCE).await {
                Ok(diff) => Ok(SelectedDevice {
                    reason: format!("auto: GPU {} passed the self-check (max abs diff {diff:.1e})", info.name),
                    device,
                    kind: gpu_kind(&info),
                    adapter: Some(info),
                }),
                Err(e) => Ok(cpu(format!("auto: GPU {} failed the self-check ({e}); using the CPU", info.name))),
            }
        }
    }
}

/// The wgpu crate, at the version whose handles Burn's runtime accepts
/// (for [`from_wgpu`]: an application's own device, e.g. eframe's).
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub use burn::tensor::wgpu::wgpu;

/// What a device an application creates must request so the models can
/// share it ([`from_wgpu`]): the adapter's limits and features, as Burn's
/// runtime asks for its own devices (large storage bindings and workgroup
/// memory for the kernels; f16 where the adapter has it). Give this to the
/// toolkit that creates the device (eframe: `WgpuSetupCreateNew::device_descriptor`).
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub fn shared_device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("crossrank (shared)"),
        required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    }
}

/// Run the models on an application's own wgpu device and queue (a GUI
/// toolkit's, say) instead of opening a second device on the same GPU: one
/// set of driver allocations, one queue. The device should have been
/// requested with [`shared_device_descriptor`]; it passes the same
/// self-check as `auto` before it is used. Register a device once and
/// clone the returned [`Device`] (each call creates a new runtime).
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub fn from_wgpu(instance: wgpu::Instance, adapter: wgpu::Adapter, device: wgpu::Device, queue: wgpu::Queue) -> Result<SelectedDevice> {
    let info = adapter.get_info();
    let gpu = gpu::describe(&adapter, &device, "the application's GPU", info.device_type == wgpu::DeviceType::Cpu);
    let setup = burn::tensor::wgpu::WgpuSetup { instance, adapter, device, queue, backend: info.backend };
    let device = Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| Error::Device(format!("cannot use the application's GPU device {}: {e}", gpu.name)))?;
    let diff = block(self_check::self_check(&device, SELF_CHECK_TOLERANCE))
        .map_err(|e| Error::Device(format!("the application's GPU device {} failed the self-check: {e}", gpu.name)))?;
    Ok(SelectedDevice {
        reason: format!("the application's GPU device {} (shared; self-check max abs diff {diff:.1e})", gpu.name),
        device,
        kind: "wgpu",
        adapter: Some(gpu),
    })
}

fn gpu_kind(info: &GpuInfo) -> &'static str {
    if info.backend == "BrowserWebGpu" { "webgpu" } else { "wgpu" }
}

/// Read a finished tensor back to the host as f32 values. Asynchronous:
/// WebGPU can only read back that way.
pub(crate) async fn read_f32<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(|e| Error::Device(format!("reading results back failed: {e:?}")))?;
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Device(format!("reading results back failed: {e:?}")))
}

/// Run one of the async entry points to completion. Natively this blocks;
/// in wasm it succeeds when nothing had to wait (the CPU backend) and is a
/// typed error otherwise (WebGPU: use the `_async` API).
pub(crate) fn block<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    burn::tensor::try_read_sync(f)
        .unwrap_or_else(|| Err(Error::Device("this device only reads results asynchronously; use the *_async methods".into())))
}

#[cfg(any(feature = "wgpu", feature = "webgpu"))]
mod gpu {
    use std::sync::Mutex;

    use burn::tensor::wgpu::{WgpuBackend, wgpu};
    use burn::tensor::{Device, DeviceKind};

    use super::GpuInfo;
    use crate::error::{Error, Result};

    /// An adapter wgpu reports, and how Burn's runtime addresses it.
    struct Candidate {
        name: String,
        device_type: wgpu::DeviceType,
        kind: DeviceKind,
        api: WgpuBackend,
    }

    impl Candidate {
        fn software(&self) -> bool {
            self.device_type == wgpu::DeviceType::Cpu
        }
    }

    /// Devices opened so far: Burn's runtime initializes each (adapter,
    /// API) once per process, so a second request reuses the first device.
    static OPENED: Mutex<Vec<(String, Device, GpuInfo)>> = Mutex::new(Vec::new());

    /// Preference among adapter types (also the per-type counter slot):
    /// discrete, integrated, virtual, other, then software.
    fn type_rank(t: wgpu::DeviceType) -> usize {
        match t {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        }
    }

    /// The best adapter that opens (by [`type_rank`]; software ones only
    /// unless `hardware_only`), on Burn's runtime.
    pub(super) async fn open(hardware_only: bool) -> Result<(Device, GpuInfo)> {
        let mut candidates = adapters().await?;
        candidates.sort_by_key(|c| type_rank(c.device_type));
        let software: Vec<String> = candidates.iter().filter(|c| c.software()).map(|c| c.name.clone()).collect();
        if hardware_only {
            candidates.retain(|c| !c.software());
        }
        let mut failures = Vec::new();
        for c in &candidates {
            match open_one(c).await {
                Ok(opened) => return Ok(opened),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error::Device(if !failures.is_empty() {
            failures.join("; ")
        } else if software.is_empty() {
            "no GPU adapter found".into()
        } else {
            format!("no hardware GPU adapter; only software adapters ({}), slower than the CPU backend", software.join(", "))
        }))
    }

    /// Open `c` on Burn's runtime, or the device an earlier call opened.
    async fn open_one(c: &Candidate) -> Result<(Device, GpuInfo)> {
        let registry = || OPENED.lock().map_err(|_| Error::Device("GPU registry poisoned".into()));
        let key = format!("{:?}/{:?}", c.kind, c.api);
        if let Some((_, device, info)) = registry()?.iter().find(|(k, ..)| *k == key) {
            return Ok((device.clone(), info.clone()));
        }
        let (device, setup) = Device::wgpu_options()
            .device_kind(c.kind.clone())
            .graphics_api(c.api)
            .init_with_setup_async()
            .await
            .map_err(|e| Error::Device(format!("cannot open GPU adapter {}: {e}", c.name)))?;
        let info = describe(&setup.adapter, &setup.device, &c.name, c.software());
        let mut opened = registry()?;
        // A concurrent caller may have opened it meanwhile: keep one.
        if let Some((_, device, info)) = opened.iter().find(|(k, ..)| *k == key) {
            return Ok((device.clone(), info.clone()));
        }
        opened.push((key, device.clone(), info.clone()));
        Ok((device, info))
    }

    /// What an opened adapter and device offer (`fallback_name` when the
    /// adapter reports none).
    pub(super) fn describe(adapter: &wgpu::Adapter, device: &wgpu::Device, fallback_name: &str, software: bool) -> GpuInfo {
        let info = adapter.get_info();
        GpuInfo {
            name: if info.name.is_empty() { fallback_name.to_string() } else { info.name.clone() },
            backend: format!("{:?}", info.backend),
            software,
            shader_f16: device.features().contains(wgpu::Features::SHADER_F16),
            max_binding_bytes: device.limits().max_storage_buffer_binding_size as u64,
        }
    }

    /// Native: every adapter on Vulkan, Metal and DX12, addressed as Burn's
    /// runtime counts them (per API, per device type, in wgpu's order).
    #[cfg(not(target_family = "wasm"))]
    async fn adapters() -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        for (backend, api) in [
            (wgpu::Backends::VULKAN, WgpuBackend::Vulkan),
            (wgpu::Backends::METAL, WgpuBackend::Metal),
            (wgpu::Backends::DX12, WgpuBackend::Dx12),
        ] {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: backend,
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            let mut seen = [0usize; 5];
            for adapter in instance.enumerate_adapters(backend).await {
                let info = adapter.get_info();
                let n = seen[type_rank(info.device_type)];
                seen[type_rank(info.device_type)] += 1;
                let kind = match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(n),
                    wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(n),
                    wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(n),
                    // Burn's runtime addresses one CPU adapter, and none
                    // of the "other" kind, by index.
                    wgpu::DeviceType::Cpu if n == 0 => DeviceKind::Cpu,
                    _ => continue,
                };
                out.push(Candidate { name: info.name, device_type: info.device_type, kind, api });
            }
        }
        Ok(out)
    }

    /// Browser: the adapter WebGPU offers, where the environment has
    /// WebGPU at all (wgpu panics outside a window or dedicated worker).
    #[cfg(target_family = "wasm")]
    async fn adapters() -> Result<Vec<Candidate>> {
        let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or_default();
        let gpu = if navigator.is_object() { js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or_default() } else { navigator };
        if !gpu.is_object() {
            return Err(Error::Device("this environment has no WebGPU (navigator.gpu is missing)".into()));
        }
        // wgpu looks navigator.gpu up through `Window` or `WorkerGlobalScope`
        // and panics where neither exists (Deno, workerd).
        let has = |name: &str| js_sys::Reflect::get(&js_sys::global(), &name.into()).is_ok_and(|v| !v.is_undefined());
        if !has("Window") && !has("WorkerGlobalScope") {
            return Err(Error::Device("WebGPU is reachable from a page or a worker only (no Window or WorkerGlobalScope here)".into()));
        }
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::BROWSER_WEBGPU,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let options = wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
        let Ok(adapter) = instance.request_adapter(&options).await else {
            return Err(Error::Device("navigator.gpu.requestAdapter() returned no adapter".into()));
        };
        let info = adapter.get_info();
        // wgpu reports a WebGPU fallback adapter (isFallbackAdapter) as a CPU.
        let name = if info.name.is_empty() { "the browser's WebGPU adapter".to_string() } else { info.name.clone() };
        Ok(vec![Candidate { name, device_type: info.device_type, kind: DeviceKind::DefaultDevice, api: WgpuBackend::Auto }])
    }
}

#[cfg(not(any(feature = "wgpu", feature = "webgpu")))]
mod gpu {
    use super::GpuInfo;
    use crate::error::{Error, Result};

    pub(super) async fn open(_hardware_only: bool) -> Result<(super::Device, GpuInfo)> {
        Err(Error::Device("this build of crossrank has no GPU support (features \"wgpu\" / \"webgpu\")".into()))
    }
}
