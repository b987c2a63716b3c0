//! The one device policy (`crossrank::device`): names, `auto`'s rule — a
//! hardware adapter that passes the self-check, else the CPU, never a
//! software rasterizer — and one device per adapter however often asked.

mod common;

use crossrank::device::{DeviceChoice, select};

#[test]
fn device_names_parse_in_one_place() {
    assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
    assert_eq!("webgpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu);
    assert_eq!("gpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu);
    assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
    let e = "tpu".parse::<DeviceChoice>().unwrap_err();
    assert!(e.to_string().contains("unknown device \"tpu\""), "{e}");
    let cpu = select(DeviceChoice::Cpu).unwrap();
    assert_eq!((cpu.kind, cpu.reason.as_str()), ("cpu", "asked for cpu"));
    assert!(cpu.adapter.is_none());
}

#[test]
fn auto_takes_a_checked_hardware_gpu_or_the_cpu_never_a_software_adapter() {
    let auto = select(DeviceChoice::Auto).unwrap();
    eprintln!("auto: {} ({})", auto.kind, auto.reason);
    assert!(auto.reason.starts_with("auto: "), "{}", auto.reason);
    match &auto.adapter {
        Some(a) => {
            assert!(!a.software, "auto took the software adapter {}", a.name);
            assert!(auto.reason.contains("passed the self-check"), "{}", auto.reason);
            assert_eq!(auto.kind, "wgpu");
        }
        None => assert!(auto.reason.ends_with("using the CPU"), "{}", auto.reason),
    }
    // Where the only adapter is a software one (CI: Mesa lavapipe), `wgpu`
    // takes it when asked and `auto` says why it did not.
    let Some(_) = common::wgpu_device() else {
        return;
    };
    let gpu = select(DeviceChoice::Wgpu).unwrap();
    let info = gpu.adapter.clone().expect("a GPU device has adapter info");
    eprintln!("wgpu: {} ({info:?})", gpu.reason);
    if info.software && auto.adapter.is_none() {
        assert!(auto.reason.contains("software"), "{}", auto.reason);
        assert!(auto.reason.contains(&info.name), "{}", auto.reason);
    }
    // Asking again gives the same device (the runtime opens an adapter once).
    assert_eq!(select(DeviceChoice::Wgpu).unwrap().device, gpu.device);
}
