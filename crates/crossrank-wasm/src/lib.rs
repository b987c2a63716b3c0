//! wasm-bindgen bindings: a thin layer over `crossrank::Reranker` for the
//! npm package (npm/). Files arrive as bytes from JavaScript; every error
//! reaches JS as a rejected promise with the crate's one-line message, and a
//! panic hook turns panics into console errors instead of silent aborts.

use std::collections::HashMap;

use crossrank::{Checkpoint, Device, Reranker, ScoreOptions};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
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
            normalize: self.normalize.unwrap_or(d.normalize),
            prompt: self.prompt,
            cutoff_layers: self.cutoff_layers,
        }
    }
}

/// A loaded reranker.
#[wasm_bindgen]
pub struct WasmReranker {
    inner: Reranker,
    device: String,
}

#[wasm_bindgen]
impl WasmReranker {
    /// Load from `{ "config.json": Uint8Array, "model.safetensors": Uint8Array, ... }`
    /// on `device` ("cpu"; "webgpu" when built with the webgpu feature).
    pub async fn load(files: JsValue, device: String) -> Result<WasmReranker, JsError> {
        let files: HashMap<String, serde_bytes_compat::Bytes> =
            serde_wasm_bindgen::from_value(files).map_err(|e| js_err(format!("invalid files object: {e}")))?;
        let files = files.into_iter().map(|(k, v)| (k, v.0)).collect();
        let dev = match device.as_str() {
            "cpu" => Device::flex(),
            other => return Err(js_err(format!("device {other:?} is not available in this build (cpu)"))),
        };
        let inner = Reranker::load(&Checkpoint::memory(files), &dev).map_err(js_err)?;
        Ok(WasmReranker { inner, device })
    }

    /// The device in use.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
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
        let mut layers = self.inner.compute_score_layers_async(&pairs, &opts.into_options()).await.map_err(js_err)?;
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
