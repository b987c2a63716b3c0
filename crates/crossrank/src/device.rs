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
