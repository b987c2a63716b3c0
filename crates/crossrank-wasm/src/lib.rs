//! wasm-bindgen bindings: a thin layer over `crossrank::Reranker`,
//! `crossrank::Embedder` and `crossrank::device` for the npm package (npm/): device choice, option
//! parsing and ranking are the core's. Files arrive as bytes from JavaScript; every error
//! reaches JS as a rejected promise with the crate's one-line message, and a
//! panic hook turns panics into console errors instead of silent aborts.

use std::collections::HashMap;

use crossrank::device::{self, DeviceChoice, SelectedDevice};
use crossrank::quantize::StreamingQuantizer;
use crossrank::{Checkpoint, EmbedOptions, Embedder, Reranker, ScoreOptions, WeightDtype};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// wasm32 cannot unwind: a panic aborts the instance. The hook logs it and
/// hands the message to the JS wrapper (`globalThis.__crossrankPanic`), which
/// rejects every pending promise with it instead of leaving them unsettled.
///
/// In the threaded build a panic can happen on one of rayon's pool workers,
/// whose global has no such function and whose parent (the worker that runs
/// the API, npm/threads-worker.js) is blocked waiting for that very task: so
/// every thread also posts the message on a `BroadcastChannel` the page
/// listens on (named once by `setPanicChannel`; the name lives in the
/// shared memory, so every thread sees it).
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let message = JsValue::from_str(&info.to_string());
        let notify = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("__crossrankPanic"));
        if let Ok(f) = notify.and_then(|f| f.dyn_into::<js_sys::Function>()) {
            let _ = f.call1(&JsValue::NULL, &message);
        }
        #[cfg(target_feature = "atomics")]
        threads::broadcast_panic(&message);
    }));
}

/// The threaded build (`target_feature = "atomics"`, npm/pkg-mt): rayon's
/// pool on Web Workers (`initThreadPool(n)`, from wasm-bindgen-rayon).
#[cfg(target_feature = "atomics")]
mod threads {
    use std::sync::Mutex;

    use wasm_bindgen::prelude::*;
    pub use wasm_bindgen_rayon::init_thread_pool;

    /// The channel name, shared memory so every thread sees it.
    static CHANNEL: Mutex<Option<String>> = Mutex::new(None);

    /// Name the `BroadcastChannel` panics are posted on (from any thread).
    #[wasm_bindgen(js_name = setPanicChannel)]
    pub fn set_panic_channel(name: String) {
        *CHANNEL.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
    }

    /// The pool's size, after `initThreadPool`.
    #[wasm_bindgen(js_name = poolThreads)]
    pub fn pool_threads() -> usize {
        rayon::current_num_threads()
    }

    /// `new BroadcastChannel(name).postMessage(message)`, then `close()`,
    /// through js-sys's reflection (web-sys's binding would add a dependency
    /// for one class); a failure is ignored — this runs inside a panic.
    pub(crate) fn broadcast_panic(message: &JsValue) {
        use js_sys::{Array, Function, Reflect};
        // `try_lock`: a panic while the lock is held must not deadlock.
        let Some(name) = CHANNEL.try_lock().ok().and_then(|c| c.clone()) else { return };
        let member = |obj: &JsValue, key: &str| Reflect::get(obj, &JsValue::from_str(key)).ok()?.dyn_into::<Function>().ok();
        let Some(ctor) = member(&js_sys::global(), "BroadcastChannel") else { return };
        let Ok(channel) = Reflect::construct(&ctor, &Array::of1(&JsValue::from_str(&name))) else { return };
        if let Some(post) = member(&channel, "postMessage") {
            let _ = post.call1(&channel, message);
        }
        if let Some(close) = member(&channel, "close") {
            let _ = close.call0(&channel);
        }
    }
}
#[cfg(target_feature = "atomics")]
pub use threads::{init_thread_pool, pool_threads, set_panic_channel};

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The device a reranker will run on, chosen by the core's policy
/// (`crossrank::device`): made before the model files are downloaded, so a
/// bad or unavailable device fails first.
#[wasm_bindgen]
pub struct WasmDevice {
    selected: SelectedDevice,
}

#[wasm_bindgen]
impl WasmDevice {
    /// `"auto"` (a hardware WebGPU adapter that passes the self-check, else
    /// the CPU), `"webgpu"` (an error when there is none) or `"cpu"`.
    pub async fn select(choice: String) -> Result<WasmDevice, JsError> {
        let choice: DeviceChoice = choice.parse().map_err(js_err)?;
        let selected = device::select_async(choice).await.map_err(js_err)?;
        Ok(WasmDevice { selected })
    }

    /// What was chosen: "webgpu" or "cpu" (the npm loader runs a CPU choice
    /// on the threaded build where threads are on).
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        self.selected.kind.into()
    }

    /// Why (what `auto` found).
    #[wasm_bindgen(getter)]
    pub fn reason(&self) -> String {
        self.selected.reason.clone()
    }
}

/// Check a weight dtype name ("f32", "f16", "q8", "q4", "q4-all" and their
/// aliases) before anything is downloaded; returns its canonical name.
#[wasm_bindgen(js_name = checkDtype)]
pub fn check_dtype(dtype: String) -> Result<String, JsError> {
    dtype.parse::<WeightDtype>().map(|d| d.as_str().to_string()).map_err(js_err)
}

/// A weights file quantized as it downloads (`crossrank::quantize::
/// StreamingQuantizer`): `push` its bytes in order, then `finish` for the
/// quantized file — so loading an f32 checkpoint at q8/q4/f16 never holds
/// the f32 file, in JavaScript or in wasm memory.
#[wasm_bindgen]
pub struct WasmQuantizer {
    inner: Option<StreamingQuantizer>,
}

#[wasm_bindgen]
impl WasmQuantizer {
    /// Quantize the weights file `file` (named in errors) as `dtype` (not f32).
    #[wasm_bindgen(constructor)]
    pub fn new(file: String, dtype: String) -> Result<WasmQuantizer, JsError> {
        let dtype: WeightDtype = dtype.parse().map_err(js_err)?;
        Ok(WasmQuantizer { inner: Some(StreamingQuantizer::new(file, dtype).map_err(js_err)?) })
    }

    /// The next bytes of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        self.inner.as_mut().ok_or_else(|| js_err("this quantizer has finished"))?.push(chunk).map_err(js_err)
    }

    /// The quantized file (an error when the file was cut short).
    pub fn finish(&mut self) -> Result<Vec<u8>, JsError> {
        self.inner.take().ok_or_else(|| js_err("this quantizer has finished"))?.finish().map_err(js_err)
    }
}

/// `ScoreOptions` from a JavaScript object, read as JSON so that the
/// core's rules apply as they do to every other front end: camelCase (or
/// snake_case) names, defaults for what is absent (`undefined` is absent),
/// and an unknown name — a typo — is an error, not silently ignored.
fn options<T: Default + serde::de::DeserializeOwned>(value: JsValue) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    let json = js_sys::JSON::stringify(&value).map_err(|_| js_err("invalid options: not serializable"))?;
    serde_json::from_str(&String::from(json)).map_err(|e| js_err(format!("invalid options: {e}")))
}

/// A checkpoint from `{ "config.json": Uint8Array, ... }`, and the dtype.
fn checkpoint(files: JsValue, dtype: &str) -> Result<(Checkpoint, WeightDtype), JsError> {
    let dtype: WeightDtype = dtype.parse().map_err(js_err)?;
    let files: HashMap<String, serde_bytes_compat::Bytes> =
        serde_wasm_bindgen::from_value(files).map_err(|e| js_err(format!("invalid files object: {e}")))?;
    Ok((Checkpoint::memory(files.into_iter().map(|(k, v)| (k, v.0)).collect()), dtype))
}

/// A loaded embedder (sentence-transformers models; Qwen3-Embedding).
#[wasm_bindgen]
pub struct WasmEmbedder {
    inner: Option<Embedder>,
    device: SelectedDevice,
}

#[wasm_bindgen]
impl WasmEmbedder {
    /// Load from a files object on `device` with weights stored as `dtype`.
    pub async fn load(files: JsValue, device: WasmDevice, dtype: String) -> Result<WasmEmbedder, JsError> {
        let (ck, dtype) = checkpoint(files, &dtype)?;
        let inner = Embedder::load_with_dtype(&ck, &device.selected.device, dtype).map_err(js_err)?;
        Ok(WasmEmbedder { inner: Some(inner), device: device.selected })
    }

    /// The device in use: "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.kind.into()
    }

    /// Why that device (what `auto` found).
    #[wasm_bindgen(getter, js_name = deviceReason)]
    pub fn device_reason(&self) -> String {
        self.device.reason.clone()
    }

    /// The model's prompt named `name` ("query", "document"), or undefined.
    pub fn prompt(&self, name: String) -> Result<Option<String>, JsError> {
        Ok(self.embedder()?.prompt(&name).map(str::to_string))
    }

    /// Drop the model now.
    pub fn unload(&mut self) {
        self.inner = None;
    }

    fn embedder(&self) -> Result<&Embedder, JsError> {
        self.inner.as_ref().ok_or_else(|| js_err("this embedder was disposed"))
    }

    /// One vector (an array of numbers) per text, in input order.
    pub async fn embed(&self, texts: JsValue, opts: JsValue) -> Result<JsValue, JsError> {
        let texts: Vec<String> =
            serde_wasm_bindgen::from_value(texts).map_err(|e| js_err(format!("texts must be an array of strings: {e}")))?;
        let opts: EmbedOptions = options(opts)?;
        let vectors = self.embedder()?.embed_async(&texts, &opts).await.map_err(js_err)?;
        serde_wasm_bindgen::to_value(&vectors).map_err(js_err)
    }
}

/// A loaded reranker.
#[wasm_bindgen]
pub struct WasmReranker {
    inner: Option<Reranker>,
    device: SelectedDevice,
}

#[wasm_bindgen]
impl WasmReranker {
    /// Load from `{ "config.json": Uint8Array, "model.safetensors": Uint8Array, ... }`
    /// on `device` with weights stored as `dtype` ("f32", "f16", "q8", "q4",
    /// "q4-all"; a quantized checkpoint stays quantized).
    pub async fn load(files: JsValue, device: WasmDevice, dtype: String) -> Result<WasmReranker, JsError> {
        let (ck, dtype) = checkpoint(files, &dtype)?;
        let inner = Reranker::load_with_dtype(&ck, &device.selected.device, dtype).map_err(js_err)?;
        Ok(WasmReranker { inner: Some(inner), device: device.selected })
    }

    /// The device in use: "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.kind.into()
    }

    /// Why that device (what `auto` found).
    #[wasm_bindgen(getter, js_name = deviceReason)]
    pub fn device_reason(&self) -> String {
        self.device.reason.clone()
    }

    /// The WebGPU adapter, when one is used: `{ name, backend, software, shaderF16, maxBindingBytes }`.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> JsValue {
        match &self.device.adapter {
            None => JsValue::NULL,
            Some(a) => {
                let o = js_sys::Object::new();
                let set = |k: &str, v: JsValue| js_sys::Reflect::set(&o, &k.into(), &v).ok();
                set("name", a.name.as_str().into());
                set("backend", a.backend.as_str().into());
                set("software", a.software.into());
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

    fn reranker(&self) -> Result<&Reranker, JsError> {
        self.inner.as_ref().ok_or_else(|| js_err("this reranker was disposed"))
    }

    /// Scores of `[[query, passage], ...]` in input order (one array per
    /// layer for a layer-wise model asked for several `cutoffLayers`).
    #[wasm_bindgen(js_name = computeScore)]
    pub async fn compute_score(&self, pairs: JsValue, opts: JsValue) -> Result<JsValue, JsError> {
        let pairs: Vec<(String, String)> =
            serde_wasm_bindgen::from_value(pairs).map_err(|e| js_err(format!("pairs must be [[query, passage], ...]: {e}")))?;
        let opts: ScoreOptions = options(opts)?;
        let mut layers = self.reranker()?.compute_score_layers_async(&pairs, &opts).await.map_err(js_err)?;
        let out = if layers.len() == 1 { serde_wasm_bindgen::to_value(&layers.remove(0)) } else { serde_wasm_bindgen::to_value(&layers) };
        out.map_err(js_err)
    }

    /// `docs` ranked for `query` by the core's one ranking rule (best first,
    /// ties in input order, NaN last): `[{ index, score }]`, at most `topK`.
    pub async fn rerank(&self, query: String, docs: JsValue, top_k: JsValue, opts: JsValue) -> Result<JsValue, JsError> {
        let docs: Vec<String> =
            serde_wasm_bindgen::from_value(docs).map_err(|e| js_err(format!("docs must be an array of strings: {e}")))?;
        // Read as serde reads it, not coerced by wasm-bindgen (-1 became
        // 2^32 - 1 there): a negative or fractional topK is an error.
        let top_k: Option<usize> =
            serde_wasm_bindgen::from_value(top_k).map_err(|e| js_err(format!("topK must be a non-negative integer (or absent): {e}")))?;
        let opts: ScoreOptions = options(opts)?;
        let ranked = self.reranker()?.rerank_passages_async(&query, &docs, top_k, &opts).await.map_err(js_err)?;
        // With longPassages "maxp", `window`: the best window of the
        // document as JavaScript string indices (UTF-16 code units).
        let out: Vec<Ranked> =
            ranked.into_iter().map(|(r, p)| Ranked { index: r.index, score: r.score, window: p.utf16_window(&docs[r.index]) }).collect();
        serde_wasm_bindgen::to_value(&out).map_err(js_err)
    }
}

#[derive(serde::Serialize)]
struct Ranked {
    index: usize,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<crossrank::Window>,
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
