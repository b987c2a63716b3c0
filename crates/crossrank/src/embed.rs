//! `Embedder`: sentence embeddings from a bare encoder (all-MiniLM-L6-v2,
//! bge-m3), as sentence-transformers computes them. It also serves the
//! demo's first-stage retrieval.

use std::str::FromStr;

use burn::tensor::Device;

use crate::batching::batches;
use crate::checkpoint::Checkpoint;
use crate::device::{block, read_f32};
use crate::error::{Error, Result};
use crate::models::{Encoder, InputLimits};
use crate::quant::WeightDtype;
use crate::tokenize::{Encoded, PairTokenizer};

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over non-padding tokens.
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
}

impl FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            o => Err(Error::InvalidInput(format!("unknown pooling {o:?} (expected mean or cls)"))),
        }
    }
}

/// Options of `embed`; `None` means "as the checkpoint's
/// sentence-transformers files say".
#[derive(Debug, Clone, Default)]
pub struct EmbedOptions {
    /// Token limit, special tokens included (default: `max_seq_length` of
    /// `sentence_bert_config.json`, else 512).
    pub max_length: Option<usize>,
    /// Pooling (default: `1_Pooling/config.json`, else mean).
    pub pooling: Option<Pooling>,
    /// L2-normalize (default: whether `modules.json` has a Normalize module).
    pub normalize: Option<bool>,
    /// Texts per forward pass (default 32).
    pub batch_size: Option<usize>,
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
}

fn st_defaults(ck: &Checkpoint, max_positions: usize) -> Result<(usize, Pooling, bool)> {
    let max_length = ck
        .read_json("sentence_bert_config.json")?
        .and_then(|v| v.get("max_seq_length")?.as_u64())
        .map(|n| n as usize)
        .unwrap_or(512)
        .min(max_positions);
    let pooling = match ck.read_json("1_Pooling/config.json")? {
        Some(v) if v.get("pooling_mode_cls_token").and_then(|b| b.as_bool()) == Some(true) => Pooling::Cls,
        _ => Pooling::Mean,
    };
    let normalize = ck
        .read_json("modules.json")?
        .and_then(|v| v.as_array().cloned())
        .is_some_and(|mods| mods.iter().any(|m| m.get("type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("models.Normalize"))));
    Ok((max_length, pooling, normalize))
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
        let (max_length, pooling, normalize) = st_defaults(ck, limits.max_tokens)?;
        Ok(Self { model, tokenizer, limits, device: device.clone(), max_length, pooling, normalize })
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
        let encoded = texts.iter().map(|t| self.tokenizer.encode_single(t.as_ref(), max_length)).collect::<Result<Vec<Encoded>>>()?;
        self.limits.check(&encoded, &self.tokenizer)?;
        let lens: Vec<usize> = encoded.iter().map(Encoded::len).collect();
        let mut out = vec![Vec::new(); encoded.len()];
        for chunk in batches(&lens, batch_size, None) {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            let (hidden, packing) = self.model.forward(&items, &self.device)?;
            let h = hidden.dims()[1];
            let pooled = match pooling {
                Pooling::Cls => hidden.select(0, packing.first_tokens(&self.device)),
                Pooling::Mean => packing.mean(hidden),
            };
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
