//! Gemma (`GemmaForCausalLM`): bge-reranker-v2-gemma, scored as
//! FlagEmbedding's `FlagLLMReranker` does — the logit of "Yes" at the last
//! real token. Only that one row of the LM head is ever computed: a
//! `hidden`-long dot product instead of a 256000-way projection.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use crate::config::Activation;
use crate::error::{Error, Result};
use crate::load::Weights;
use crate::nn::{DecoderDims, DecoderLayer, Embedding, RmsNorm, Rope, causal_padding_mask};
use crate::tokenize::Batch;

/// `config.json` of a Gemma checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct GemmaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// transformers 4.57's GemmaMLP uses `hidden_act` (`hidden_activation`
    /// is read nowhere), so this does too, to give the same numbers.
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}
fn default_act() -> Activation {
    Activation::GeluTanh
}
fn default_true() -> bool {
    true
}

impl GemmaConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let c: Self = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        if c.num_attention_heads == 0 || c.num_attention_heads % c.kv_heads() != 0 {
            return Err(Error::config("config.json", "num_attention_heads must be a multiple of num_key_value_heads"));
        }
        Ok(c)
    }
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads).max(1)
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }
    fn dims(&self) -> DecoderDims {
        DecoderDims {
            hidden: self.hidden_size,
            ffn: self.intermediate_size,
            heads: self.num_attention_heads,
            kv_heads: self.kv_heads(),
            head_dim: self.head_dim(),
            eps: self.rms_norm_eps,
        }
    }
}

/// The Gemma decoder plus the one LM-head row that scores.
pub struct Gemma {
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rope: Rope,
    /// `[hidden, 1]`: the LM head's row for the scoring token.
    score_row: Tensor<2>,
    cfg: GemmaConfig,
}

impl Gemma {
    /// Load the decoder; `score_token` is the id whose logit is the score.
    pub fn load(w: &Weights, cfg: GemmaConfig, score_token: u32, dev: &Device) -> Result<Self> {
        let h = cfg.hidden_size;
        let dims = cfg.dims();
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| DecoderLayer::load(w, &format!("model.layers.{l}"), dims, 1.0, dev))
            .collect::<Result<Vec<_>>>()?;
        let head_name = if cfg.tie_word_embeddings || !w.contains("lm_head.weight") {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        let row = score_row(w, head_name, cfg.vocab_size, h, score_token)?;
        Ok(Self {
            embed: Embedding::load(w, "model.embed_tokens.weight", cfg.vocab_size, h, dev)?,
            layers,
            norm: RmsNorm::load(w, "model.norm.weight", h, cfg.rms_norm_eps, 1.0, dev)?,
            rope: Rope::new(dims.head_dim, cfg.rope_theta),
            score_row: Tensor::from_data(TensorData::new(row, [h, 1]), dev),
            cfg,
        })
    }

    /// One score per row of a right-padded batch: the "Yes" logit at each
    /// row's last real token.
    pub fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<1>> {
        let (b, t) = (batch.rows, batch.cols);
        let c = &self.cfg;
        let ids: Vec<i64> = batch.ids.iter().map(|&x| x as i64).collect();
        // Gemma scales embeddings by sqrt(hidden), as an f32 constant.
        let mut x = self.embed.forward(&ids, dev).reshape([b, t, c.hidden_size]).mul_scalar((c.hidden_size as f32).sqrt());
        let mask = causal_padding_mask(&batch.attention_mask, b, t, dev);
        let (cos, sin) = self.rope.tables(t, dev);
        for l in &self.layers {
            x = l.forward(x, &mask, (&cos, &sin), c.hidden_act, 1.0);
        }
        let last = last_tokens(x, batch, dev);
        Ok(self.norm.forward(last).matmul(self.score_row.clone()).reshape([b]))
    }
}

/// Row `token` of a `[vocab, hidden]` matrix, without reading the rest as f32.
fn score_row(w: &Weights, name: &str, vocab: usize, hidden: usize, token: u32) -> Result<Vec<f32>> {
    if token as usize >= vocab {
        return Err(Error::InvalidInput(format!("scoring token id {token} is outside the vocabulary ({vocab})")));
    }
    w.row(name, &[vocab, hidden], token as usize)
}

/// `[b, t, h]` → `[b, h]`: each row's last non-padding position.
pub fn last_tokens(x: Tensor<3>, batch: &Batch, dev: &Device) -> Tensor<2> {
    let [b, t, h] = x.dims();
    let idx: Vec<i64> = (0..b)
        .map(|r| {
            let len = batch.attention_mask[r * t..(r + 1) * t].iter().filter(|&&m| m != 0).count();
            (r * t + len.max(1) - 1) as i64
        })
        .collect();
    x.reshape([b * t, h]).select(0, Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), dev))
}
