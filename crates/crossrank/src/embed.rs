//! `Embedder`: sentence embeddings from a bare encoder (all-MiniLM-L6-v2,
//! bge-m3), as sentence-transformers computes them. It also serves the
//! demo's first-stage retrieval.

use std::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::EncoderConfig;
use crate::error::{Error, Result};
use crate::load::Checkpoint;
use crate::quant::WeightDtype;
use crate::models::bert::BertModel;
use crate::models::xlm_roberta::XlmRobertaModel;
use crate::tokenize::{Batch, Encoded, PairTokenizer};
use crate::{block, longest_first, read_f32};

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

enum Encoder {
    Bert(BertModel),
    XlmRoberta(XlmRobertaModel),
}

/// A sentence embedder on one device.
pub struct Embedder {
    model: Encoder,
    tokenizer: PairTokenizer,
    device: Device,
    max_length: usize,
    pooling: Pooling,
    normalize: bool,
}

fn st_defaults(ck: &Checkpoint, config: &EncoderConfig) -> Result<(usize, Pooling, bool)> {
    let max_length = ck
        .read_json("sentence_bert_config.json")?
        .and_then(|v| v.get("max_seq_length")?.as_u64())
        .map(|n| n as usize)
        .unwrap_or(512)
        .min(config.max_position_embeddings);
    let pooling = match ck.read_json("1_Pooling/config.json")? {
        Some(v) if v.get("pooling_mode_cls_token").and_then(|b| b.as_bool()) == Some(true) => Pooling::Cls,
        _ => Pooling::Mean,
    };
    let normalize = ck
        .read_json("modules.json")?
        .and_then(|v| v.as_array().cloned())
        .is_some_and(|mods| {
            mods.iter()
                .any(|m| m.get("type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("models.Normalize")))
        });
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
        let config = EncoderConfig::from_json(&ck.read("config.json")?)?;
        let arch = config.architecture()?;
        let tokenizer = PairTokenizer::from_checkpoint(ck)?;
        let weights = ck.weights()?.with_dtype(dtype);
        let model = if arch.is_roberta() {
            Encoder::XlmRoberta(XlmRobertaModel::load(&weights, &config, device)?)
        } else {
            Encoder::Bert(BertModel::load(&weights, &config, device)?)
        };
        let (max_length, pooling, normalize) = st_defaults(ck, &config)?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            max_length,
            pooling,
            normalize,
        })
    }

    fn hidden(&self, batch: &Batch) -> Result<Tensor<3>> {
        match &self.model {
            Encoder::Bert(m) => m.forward(batch, &self.device),
            Encoder::XlmRoberta(m) => m.forward(batch, &self.device),
        }
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
        let encoded = texts
            .iter()
            .map(|t| self.tokenizer.encode_single(t.as_ref(), max_length))
            .collect::<Result<Vec<Encoded>>>()?;
        let order = longest_first(&encoded.iter().map(Encoded::len).collect::<Vec<_>>());
        let mut out = vec![Vec::new(); encoded.len()];
        for chunk in order.chunks(batch_size) {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            let batch = self.tokenizer.pad(&items);
            let hidden = self.hidden(&batch)?;
            let [b, t, h] = hidden.dims();
            let pooled = match pooling {
                Pooling::Cls => hidden.slice([0..b, 0..1]).reshape([b, h]),
                Pooling::Mean => {
                    let m: Vec<f32> = batch.attention_mask.iter().map(|&x| x as f32).collect();
                    let mask = Tensor::<3>::from_data(TensorData::new(m, [b, t, 1]), &self.device);
                    let sum = (hidden * mask.clone()).sum_dim(1).reshape([b, h]);
                    let count = mask.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
                    sum / count
                }
            };
            let pooled = if normalize {
                let norm = pooled.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
                pooled / norm
            } else {
                pooled
            };
            let flat = read_f32(pooled).await?;
            for (&i, v) in chunk.iter().zip(flat.chunks(h)) {
                out[i] = v.to_vec();
            }
        }
        Ok(out)
    }
}
