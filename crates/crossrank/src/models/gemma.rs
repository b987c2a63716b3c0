//! Gemma (`GemmaForCausalLM`): bge-reranker-v2-gemma, scored as
//! FlagEmbedding's `FlagLLMReranker` does — the logit of "Yes" at the last
//! real token. Only that one row of the LM head is ever computed: a
//! `hidden`-long dot product instead of a 256000-way projection.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use crate::config::Activation;
use crate::error::{Error, Result};
use crate::load::Weights;
use crate::nn::{Embedding, Linear, RmsNorm, Rope, activate, causal_padding_mask, grouped_attention};
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
}

struct GemmaLayer {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The Gemma decoder plus the one LM-head row that scores.
pub struct Gemma {
    embed: Embedding,
    layers: Vec<GemmaLayer>,
    norm: RmsNorm,
    rope: Rope,
    /// `[hidden, 1]`: the LM head's row for the scoring token.
    score_row: Tensor<2>,
    cfg: GemmaConfig,
}

impl Gemma {
    /// Load the decoder; `score_token` is the id whose logit is the score.
    pub fn load(w: &Weights, cfg: GemmaConfig, score_token: u32, dev: &Device) -> Result<Self> {
        let (h, i, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
        let (nh, nkv, eps) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.rms_norm_eps);
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| {
                let p = format!("model.layers.{l}");
                Ok(GemmaLayer {
                    input_norm: RmsNorm::load(w, &format!("{p}.input_layernorm.weight"), h, eps, 1.0, dev)?,
                    q: Linear::load(w, &format!("{p}.self_attn.q_proj"), h, nh * hd, dev)?,
                    k: Linear::load(w, &format!("{p}.self_attn.k_proj"), h, nkv * hd, dev)?,
                    v: Linear::load(w, &format!("{p}.self_attn.v_proj"), h, nkv * hd, dev)?,
                    o: Linear::load(w, &format!("{p}.self_attn.o_proj"), nh * hd, h, dev)?,
                    post_norm: RmsNorm::load(w, &format!("{p}.post_attention_layernorm.weight"), h, eps, 1.0, dev)?,
                    gate: Linear::load(w, &format!("{p}.mlp.gate_proj"), h, i, dev)?,
                    up: Linear::load(w, &format!("{p}.mlp.up_proj"), h, i, dev)?,
                    down: Linear::load(w, &format!("{p}.mlp.down_proj"), i, h, dev)?,
                })
            })
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
            norm: RmsNorm::load(w, "model.norm.weight", h, eps, 1.0, dev)?,
            rope: Rope::new(hd, cfg.rope_theta),
            score_row: Tensor::from_data(TensorData::new(row, [h, 1]), dev),
            cfg,
        })
    }

    /// One score per row of a right-padded batch: the "Yes" logit at each
    /// row's last real token.
    pub fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<1>> {
        let (b, t) = (batch.rows, batch.cols);
        let c = &self.cfg;
        let (nh, nkv, hd) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
        let ids: Vec<i64> = batch.ids.iter().map(|&x| x as i64).collect();
        // Gemma scales embeddings by sqrt(hidden), as an f32 constant.
        let mut x = self.embed.forward(&ids, b, t, dev).mul_scalar((c.hidden_size as f32).sqrt());
        let mask = causal_padding_mask(&batch.attention_mask, b, t, dev);
        let (cos, sin) = self.rope.tables(t, dev);
        let heads = |x: Tensor<3>, n: usize| x.reshape([b, t, n, hd]).swap_dims(1, 2);
        for l in &self.layers {
            let hn = l.input_norm.forward(x.clone());
            let q = Rope::apply(heads(l.q.forward(hn.clone()), nh), &cos, &sin);
            let k = Rope::apply(heads(l.k.forward(hn.clone()), nkv), &cos, &sin);
            let v = heads(l.v.forward(hn), nkv);
            let ctx = grouped_attention(q, k, v, &mask, (hd as f64).powf(-0.5));
            x = x + l.o.forward(ctx.swap_dims(1, 2).reshape([b, t, nh * hd]));
            let hn = l.post_norm.forward(x.clone());
            let act = activate(c.hidden_act, l.gate.forward(hn.clone()));
            x = x + l.down.forward(act * l.up.forward(hn));
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
