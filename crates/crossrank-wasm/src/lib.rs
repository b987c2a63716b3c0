//! wasm-bindgen bindings: a thin layer over `crossrank::Reranker` for the
//! npm package (npm/). Files arrive as bytes from JavaScript; every error
//! reaches JS as a rejected promise with the crate's one-line message, and a
//! panic hook turns panics into console errors instead of silent aborts.

use std::collections::HashMap;

use crossrank::device::{self, GpuInfo};
use crossrank::{Checkpoint, Device, Reranker, ScoreOptions, WeightDtype};
use serde::Deserialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// wasm32 cannot unwind: a panic aborts the instance. The hook logs it and
/// hands the message to the JS wrapper (`globalThis.__crossrankPanic`), which
/// rejects every pending promise with it instead of leaving them unsettled.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let notify = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("__crossrankPanic"));
        if let Ok(f) = notify.and_then(|f| f.dyn_into::<js_sys::Function>()) {
            let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&info.to_string()));
        }
    }));
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Options of `computeScore`, camelCase as JavaScript writes them.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JsScoreOptions {
    max_length: Option<usize>,
    query_max_length: Option<usize>,
    batch_size: Option<usize>,
    max_batch_tokens: Option<usize>,
    normalize: Option<bool>,
    prompt: Option<String>,
    cutoff_layers: Option<Vec<usize>>,
}

impl JsScoreOptions {
    fn into_options(self) -> ScoreOptions {
        let d = ScoreOptions::default();
        ScoreOptions {
            max_length: self.max_length.unwrap_or(d.max_length),
            query_max_length: self.query_max_length,
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            max_batch_tokens: self.max_batch_tokens,
            normalize: self.normalize.unwrap_or(d.normalize),
            prompt: self.prompt,
            cutoff_layers: self.cutoff_layers,
        }
    }
}

/// A loaded reranker.
#[wasm_bindgen]
pub struct WasmReranker {
    inner: Option<Reranker>,
    device: String,
    device_reason: String,
    adapter: Option<GpuInfo>,
}

/// Pick the device: "cpu", "webgpu" (an error when none works) or "auto"
/// (WebGPU when an adapter exists and passes the self-check against the CPU).
async fn pick_device(choice: &str) -> Result<(Device, &'static str, String, Option<GpuInfo>), JsError> {
    match choice {
        "cpu" => Ok((Device::flex(), "cpu", "asked for cpu".into(), None)),
        "webgpu" => {
            let (dev, info) = device::gpu_async().await.map_err(js_err)?;
            Ok((dev, "webgpu", format!("asked for webgpu ({})", info.name), Some(info)))
        }
        "auto" => match device::gpu_async().await {
            Err(e) => Ok((Device::flex(), "cpu", format!("auto: {e}; using the CPU"), None)),
            Ok((dev, info)) => match device::self_check_async(&dev, SELF_CHECK_TOLERANCE).await {
                Ok(diff) => {
                    let why = format!("auto: WebGPU adapter {} passed the self-check (max abs diff {diff:.1e})", info.name);
                    Ok((dev, "webgpu", why, Some(info)))
                }
                Err(e) => Ok((Device::flex(), "cpu", format!("auto: {} failed: {e}; using the CPU", info.name), None)),
            },
        },
        other => Err(js_err(format!("unknown device {other:?} (expected auto, webgpu or cpu)"))),
    }
}

/// The self-check's agreement bound between a GPU and the CPU (f32 compute).
const SELF_CHECK_TOLERANCE: f32 = 1e-3;

#[wasm_bindgen]
impl WasmReranker {
    /// Load from `{ "config.json": Uint8Array, "model.safetensors": Uint8Array, ... }`
    /// on `device` ("auto", "webgpu" or "cpu") with weights stored as `dtype`
    /// ("f32", "f16", "q8", "q4", "q4-all"; a quantized checkpoint stays quantized).
    pub async fn load(files: JsValue, device: String, dtype: String) -> Result<WasmReranker, JsError> {
        let dtype: WeightDtype = dtype.parse().map_err(js_err)?;
        let files: HashMap<String, serde_bytes_compat::Bytes> =
            serde_wasm_bindgen::from_value(files).map_err(|e| js_err(format!("invalid files object: {e}")))?;
        let files = files.into_iter().map(|(k, v)| (k, v.0)).collect();
        let (dev, kind, device_reason, adapter) = pick_device(&device).await?;
        let inner = Reranker::load_with_dtype(&Checkpoint::memory(files), &dev, dtype).map_err(js_err)?;
        Ok(WasmReranker {
            inner: Some(inner),
            device: kind.into(),
            device_reason,
            adapter,
        })
    }

    /// The device in use: "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }

    /// Why that device (what `auto` found).
    #[wasm_bindgen(getter, js_name = deviceReason)]
    pub fn device_reason(&self) -> String {
        self.device_reason.clone()
    }

    /// The WebGPU adapter, when one is used: `{ name, backend, shaderF16, maxBindingBytes }`.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> JsValue {
        match &self.adapter {
            None => JsValue::NULL,
            Some(a) => {
                let o = js_sys::Object::new();
                let set = |k: &str, v: JsValue| js_sys::Reflect::set(&o, &k.into(), &v).ok();
                set("name", a.name.as_str().into());
                set("backend", a.backend.as_str().into());
                set("shaderF16", a.shader_f16.into());
                set("maxBindingBytes", (a.max_binding_bytes as f64).into());
                o.into()
            }
        }
    }

    /// Drop the model now (GPU buffers return to the device's pool).
    pub fn unload(&mut self) {
        self.inner = None;
    }

    /// Scores of `[[query, passage], ...]` in input order (one array per
    /// layer for a layer-wise model asked for several `cutoffLayers`).
    #[wasm_bindgen(js_name = computeScore)]
    pub async fn compute_score(&self, pairs: JsValue, options: JsValue) -> Result<JsValue, JsError> {
        let pairs: Vec<(String, String)> =
            serde_wasm_bindgen::from_value(pairs).map_err(|e| js_err(format!("pairs must be [[query, passage], ...]: {e}")))?;
        let opts: JsScoreOptions = if options.is_undefined() || options.is_null() {
            JsScoreOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(|e| js_err(format!("invalid options: {e}")))?
        };
        let inner = self.inner.as_ref().ok_or_else(|| js_err("this reranker was disposed"))?;
        let mut layers = inner.compute_score_layers_async(&pairs, &opts.into_options()).await.map_err(js_err)?;
        let out = if layers.len() == 1 { serde_wasm_bindgen::to_value(&layers.remove(0)) } else { serde_wasm_bindgen::to_value(&layers) };
        out.map_err(js_err)
    }
}

/// `Uint8Array` → `Vec<u8>` through serde-wasm-bindgen.
mod serde_bytes_compat {
    use serde::{Deserialize, Deserializer};

    pub struct Bytes(pub Vec<u8>);

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a Uint8Array")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Bytes, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = s.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(Bytes(out))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}
