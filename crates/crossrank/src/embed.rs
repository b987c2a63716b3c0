//! `Embedder`: sentence embeddings from a bare encoder (all-MiniLM-L6-v2,
//! bge-m3), as sentence-transformers computes them. It also serves the
//! demo's first-stage retrieval.

use std::collections::HashMap;

use burn::tensor::Device;

use crate::batching::batches;
use crate::checkpoint::Checkpoint;
use crate::device::{block, read_f32};
use crate::error::{Error, Result};
use crate::models::{Encoder, InputLimits};
use crate::quant::WeightDtype;
pub use crate::nn::Pooling;
use crate::tokenize::{Encoded, PairTokenizer};

/// Options of `embed`; `None` means "as the checkpoint's
/// sentence-transformers files say". Deserializes from the npm package's
/// options objects (camelCase; snake_case accepted; unknown names refused).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbedOptions {
    /// Token limit, special tokens included (default: `max_seq_length` of
    /// `sentence_bert_config.json`, else 512; Qwen3-Embedding: 8192).
    #[serde(alias = "max_length")]
    pub max_length: Option<usize>,
    /// Pooling (default: `1_Pooling/config.json`, else mean).
    pub pooling: Option<Pooling>,
    /// L2-normalize (default: whether `modules.json` has a Normalize module).
    pub normalize: Option<bool>,
    /// Texts per forward pass (default 32).
    #[serde(alias = "batch_size")]
    pub batch_size: Option<usize>,
    /// Text put before every text (sentence-transformers' `prompt`).
    pub prompt: Option<String>,
    /// The model's own prompt of this name (sentence-transformers'
    /// `prompt_name`: `"query"` / `"document"` from
    /// `config_sentence_transformers.json`; Qwen3 models without that
    /// file: their card's query prompt). Ignored when `prompt` is set.
    #[serde(alias = "prompt_name")]
    pub prompt_name: Option<String>,
}

/// A sentence embedder on one device.
pub struct Embedder {
    model: Encoder,
    tokenizer: PairTokenizer,
    limits: InputLimits,
    device: Device,
    max_length: usize,
    pooling: Pooling,
    normalize: bool,
    prompts: HashMap<String, String>,
}

/// Qwen3-Embedding's query prompt, as its card and its
/// `config_sentence_transformers.json` give it.
pub const QWEN3_QUERY_PROMPT: &str = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:";

/// What the sentence-transformers files say (max length, pooling,
/// normalization, prompts); a Qwen3 checkpoint without them gets its
/// card's: 8192 tokens, last-token pooling, normalized, the query prompt.
fn st_defaults(ck: &Checkpoint, max_positions: usize, qwen3: bool) -> Result<(usize, Pooling, bool, HashMap<String, String>)> {
    let max_length = ck
        .read_json("sentence_bert_config.json")?
        .and_then(|v| v.get("max_seq_length")?.as_u64())
        .map(|n| n as usize)
        .unwrap_or(if qwen3 { 8192 } else { 512 })
        .min(max_positions);
    let flag = |v: &serde_json::Value, k: &str| v.get(k).and_then(|b| b.as_bool()) == Some(true);
    let pooling = match ck.read_json("1_Pooling/config.json")? {
        Some(v) if flag(&v, "pooling_mode_cls_token") => Pooling::Cls,
        Some(v) if flag(&v, "pooling_mode_lasttoken") => Pooling::LastToken,
        Some(_) => Pooling::Mean,
        None if qwen3 => Pooling::LastToken,
        None => Pooling::Mean,
    };
    let normalize = match ck.read_json("modules.json")?.and_then(|v| v.as_array().cloned()) {
        Some(mods) => mods.iter().any(|m| m.get("type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("models.Normalize"))),
        None => qwen3,
    };
    let mut prompts: HashMap<String, String> = ck
        .read_json("config_sentence_transformers.json")?
        .and_then(|v| serde_json::from_value(v.get("prompts")?.clone()).ok())
        .unwrap_or_default();
    if qwen3 && prompts.is_empty() {
        prompts.insert("query".into(), QWEN3_QUERY_PROMPT.into());
        prompts.insert("document".into(), String::new());
    }
    Ok((max_length, pooling, normalize, prompts))
}

impl Embedder {
    /// Load an encoder checkpoint. Cross-encoder checkpoints load too: their
    /// encoder is used and the head ignored.
    pub fn load(ck: &Checkpoint, device: &Device) -> Result<Self> {
        Self::load_with_dtype(ck, device, WeightDtype::F32)
    }

    /// Load with weights stored as `dtype` on the device (q8/q4 quantize at
    /// load unless the checkpoint already is quantized).
    pub fn load_with_dtype(ck: &Checkpoint, device: &Device, dtype: WeightDtype) -> Result<Self> {
        let (model, limits) = Encoder::load(ck, dtype, device)?;
        let mut tokenizer = PairTokenizer::from_checkpoint(ck)?;
        tokenizer.set_token_cap(limits.max_tokens);
        let (max_length, pooling, normalize, prompts) = st_defaults(ck, limits.max_tokens, model.is_qwen3())?;
        Ok(Self { model, tokenizer, limits, device: device.clone(), max_length, pooling, normalize, prompts })
    }

    /// The model's prompt named `name` (`"query"`, `"document"`), if it has one.
    pub fn prompt(&self, name: &str) -> Option<&str> {
        self.prompts.get(name).map(String::as_str)
    }

    /// `opts` with the model's prompt named `name` when it has one and
    /// `opts` asks for none: sentence-transformers' `encode_query` /
    /// `encode_document` (Qwen3-Embedding's queries get its instruction).
    pub fn with_prompt_named(&self, opts: &EmbedOptions, name: &str) -> EmbedOptions {
        let mut o = opts.clone();
        if o.prompt.is_none() && o.prompt_name.is_none() && self.prompt(name).is_some() {
            o.prompt_name = Some(name.to_string());
        }
        o
    }

    /// One vector per text, in input order.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S], opts: &EmbedOptions) -> Result<Vec<Vec<f32>>> {
        block(self.embed_async(texts, opts))
    }

    /// `embed`, reading results back asynchronously (required on WebGPU).
    pub async fn embed_async<S: AsRef<str>>(&self, texts: &[S], opts: &EmbedOptions) -> Result<Vec<Vec<f32>>> {
        let max_length = opts.max_length.unwrap_or(self.max_length);
        let batch_size = opts.batch_size.unwrap_or(32);
        if max_length == 0 || batch_size == 0 {
            return Err(Error::InvalidInput("max_length and batch_size must be at least 1".into()));
        }
        let pooling = opts.pooling.unwrap_or(self.pooling);
        let normalize = opts.normalize.unwrap_or(self.normalize);
        let prompt = match (&opts.prompt, &opts.prompt_name) {
            (Some(p), _) => p.as_str(),
            (None, Some(name)) => self.prompt(name).ok_or_else(|| {
                let mut known: Vec<&str> = self.prompts.keys().map(String::as_str).collect();
                known.sort_unstable();
                Error::InvalidInput(format!("the model has no prompt named {name:?} (it has: {known:?})"))
            })?,
            (None, None) => "",
        };
        let encoded = texts
            .iter()
            .map(|t| self.tokenizer.encode_single_prefixed(prompt, t.as_ref(), max_length))
            .collect::<Result<Vec<Encoded>>>()?;
        self.limits.check(&encoded, &self.tokenizer)?;
        let lens: Vec<usize> = encoded.iter().map(Encoded::len).collect();
        let mut out = vec![Vec::new(); encoded.len()];
        for chunk in batches(&lens, batch_size, None) {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            let pooled = self.model.pool(&items, pooling, &self.tokenizer, &self.device)?;
            let h = pooled.dims()[1];
            let pooled = if normalize {
                let norm = pooled.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
                pooled / norm
            } else {
                pooled
            };
            let flat = read_f32(pooled).await?;
            for (&i, v) in chunk.iter().zip(flat.chunks(h)) {
                if let Some(&bad) = v.iter().find(|x| !x.is_finite()) {
                    return Err(Error::NonFinite { index: i, value: bad });
                }
                out[i] = v.to_vec();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_objects_name_pooling_and_prompts() {
        let o: EmbedOptions = serde_json::from_str(r#"{"pooling": "last", "promptName": "query", "max_length": 16}"#).unwrap();
        assert_eq!(
            o,
            EmbedOptions { pooling: Some(Pooling::LastToken), prompt_name: Some("query".into()), max_length: Some(16), ..Default::default() }
        );
        assert_eq!("lasttoken".parse::<Pooling>().unwrap(), Pooling::LastToken);
        assert!(serde_json::from_str::<EmbedOptions>(r#"{"pooling": "max"}"#).is_err());
        assert!(serde_json::from_str::<EmbedOptions>(r#"{"promptNmae": "query"}"#).unwrap_err().to_string().contains("promptNmae"));
    }
}
