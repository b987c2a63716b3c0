//! A Llama-style decoder block (Gemma, MiniCPM, Qwen3): its shared config,
//! RMSNorm'd GQA self-attention with RoPE, the gated MLP, the causal mask,
//! and the pick of each row's last real token that the LLM rerankers score.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData, module};
use serde::Deserialize;

use super::{Activation, Linear, RmsNorm};
use crate::error::{Error, Result, bounds, check_config_positive, check_config_range};
use crate::batching::Batch;
use crate::weights::Weights;

/// The `config.json` fields every Llama-style decoder reranker shares
/// (Gemma, MiniCPM), flattened into each model's own config.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DecoderConfig {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    #[serde(default)]
    pub(crate) num_key_value_heads: Option<usize>,
    /// Explicit head size (Gemma); `hidden_size / num_attention_heads` when absent.
    #[serde(default)]
    pub(crate) head_dim: Option<usize>,
    /// The model's own default when absent (Gemma: tanh GELU, MiniCPM: SiLU).
    #[serde(default)]
    pub(crate) hidden_act: Option<Activation>,
    #[serde(default = "default_eps")]
    pub(crate) rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub(crate) rope_theta: f64,
    /// The longest sequence (absent in some configs: the model's default).
    #[serde(default)]
    pub(crate) max_position_embeddings: Option<usize>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}

impl DecoderConfig {
    pub(crate) fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub(crate) fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The longest sequence the model takes: `max_position_embeddings`, or
    /// `default` (the transformers config class's) when absent.
    pub(crate) fn max_positions(&self, default: usize) -> usize {
        self.max_position_embeddings.unwrap_or(default)
    }

    /// Every size within bounds before anything is allocated from it (a
    /// head_dim of 1e8 asked RoPE for 22 GB), heads that group evenly
    /// into kv heads, an even head size for RoPE, positive epsilons.
    pub(crate) fn validate(&self) -> Result<()> {
        check_config_range("hidden_size", self.hidden_size, 1, bounds::HIDDEN)?;
        check_config_range("intermediate_size", self.intermediate_size, 1, bounds::INTERMEDIATE)?;
        check_config_range("num_hidden_layers", self.num_hidden_layers, 1, bounds::LAYERS)?;
        check_config_range("num_attention_heads", self.num_attention_heads, 1, bounds::HEADS)?;
        check_config_range("num_key_value_heads", self.kv_heads(), 1, self.num_attention_heads)?;
        check_config_range("vocab_size", self.vocab_size, 1, bounds::VOCAB)?;
        if let Some(p) = self.max_position_embeddings {
            check_config_range("max_position_embeddings", p, 1, bounds::POSITIONS)?;
        }
        check_config_range("head_dim", self.head_dim(), 2, bounds::HEAD_DIM)?;
        check_config_positive("rms_norm_eps", self.rms_norm_eps, 1.0)?;
        check_config_positive("rope_theta", self.rope_theta, f64::MAX)?;
        if self.num_attention_heads % self.kv_heads() != 0 {
            return Err(Error::config("config.json", "num_attention_heads must be a positive multiple of num_key_value_heads"));
        }
        if self.head_dim() % 2 != 0 {
            return Err(Error::config("config.json", format!("head_dim {} is odd; rotary embeddings need an even one", self.head_dim())));
        }
        Ok(())
    }
}

/// Rotary position embedding (`rotate_half` convention), with the cos/sin
/// tables computed in f32 the way transformers computes them.
pub(crate) struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    pub(crate) fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2).map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
        Self { inv_freq }
    }

    /// `[1, 1, seq, head_dim]` cos and sin for positions `0..seq`.
    pub(crate) fn tables(&self, seq: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let hd = self.inv_freq.len() * 2;
        let mut cos = Vec::with_capacity(seq * hd);
        let mut sin = Vec::with_capacity(seq * hd);
        for p in 0..seq {
            for _ in 0..2 {
                for &f in &self.inv_freq {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, seq, hd]), device);
        (t(cos), t(sin))
    }

    /// `x * cos + rotate_half(x) * sin` on `[batch, heads, seq, head_dim]`.
    pub(crate) fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let hd = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, hd / 2);
        let x2 = x.clone().narrow(3, hd / 2, hd / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}

/// Causal self-attention mask for a right-padded batch: `[batch, 1, seq,
/// seq]`, true where query `i` may not see key `j` (`j > i` or `j` padding).
pub(crate) fn causal_padding_mask(attention_mask: &[u32], rows: usize, cols: usize, device: &Device) -> Tensor<4, Bool> {
    let mut m = Vec::with_capacity(rows * cols * cols);
    for r in 0..rows {
        let keys = &attention_mask[r * cols..(r + 1) * cols];
        for i in 0..cols {
            for (j, &k) in keys.iter().enumerate() {
                m.push(j > i || k == 0);
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [rows, 1, cols, cols]), device)
}

/// Grouped-query attention: `q` `[b, heads, t, d]`, `k`/`v` `[b, kv_heads,
/// t, d]`; kv heads are repeated to match, as transformers' `repeat_kv`.
pub(crate) fn grouped_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &Tensor<4, Bool>, scale: f64) -> Tensor<4> {
    let [b, heads, t, d] = q.dims();
    let kv = k.dims()[1];
    let repeat = |x: Tensor<4>| {
        if kv == heads { x } else { x.unsqueeze_dim::<5>(2).expand([b, kv, heads / kv, t, d]).reshape([b, heads, t, d]) }
    };
    let options = burn::tensor::ops::AttentionModuleOptions { scale: Some(scale), ..Default::default() };
    module::attention(q, repeat(k), repeat(v), Some(mask.clone().expand([b, heads, t, t])), None, options)
}

/// A pre-norm decoder block (Gemma, MiniCPM, Llama): RMSNorm → GQA
/// self-attention with RoPE → residual, RMSNorm → gated MLP → residual,
/// with the residual branches scaled by `residual_scale` (MiniCPM's
/// `scale_depth / sqrt(layers)`, 1 elsewhere).
pub(crate) struct DecoderLayer {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    /// Qwen3's RMSNorm of each query and key head before RoPE.
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl DecoderLayer {
    /// Load `{prefix}.{input_layernorm,self_attn.*_proj,post_attention_layernorm,mlp.*_proj}`;
    /// `norm_offset` is added to the norm weights (1 for Gemma's `1 + w`).
    pub(crate) fn load(w: &Weights, prefix: &str, c: &DecoderConfig, norm_offset: f32, dev: &Device) -> Result<Self> {
        let (h, i, hd, eps) = (c.hidden_size, c.intermediate_size, c.head_dim(), c.rms_norm_eps);
        let (heads, kv_heads) = (c.num_attention_heads, c.kv_heads());
        let lin = |n: &str, a, b| Linear::load(w, &format!("{prefix}.{n}"), a, b, dev);
        Ok(Self {
            input_norm: RmsNorm::load(w, &format!("{prefix}.input_layernorm.weight"), h, eps, norm_offset, dev)?,
            q: lin("self_attn.q_proj", h, heads * hd)?,
            k: lin("self_attn.k_proj", h, kv_heads * hd)?,
            v: lin("self_attn.v_proj", h, kv_heads * hd)?,
            o: lin("self_attn.o_proj", heads * hd, h)?,
            post_norm: RmsNorm::load(w, &format!("{prefix}.post_attention_layernorm.weight"), h, eps, norm_offset, dev)?,
            gate: lin("mlp.gate_proj", h, i)?,
            up: lin("mlp.up_proj", h, i)?,
            down: lin("mlp.down_proj", i, h)?,
            qk_norm: None,
            heads,
            kv_heads,
            head_dim: hd,
        })
    }

    /// With Qwen3's per-head `{prefix}.self_attn.{q,k}_norm` (RMSNorm over
    /// `head_dim`, applied to every head's query and key before RoPE).
    pub(crate) fn with_qk_norm(mut self, w: &Weights, prefix: &str, c: &DecoderConfig, dev: &Device) -> Result<Self> {
        let norm = |n: &str| RmsNorm::load(w, &format!("{prefix}.self_attn.{n}.weight"), c.head_dim(), c.rms_norm_eps, 0.0, dev);
        self.qk_norm = Some((norm("q_norm")?, norm("k_norm")?));
        Ok(self)
    }

    /// `[b, t, hidden]` → `[b, t, hidden]`.
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        mask: &Tensor<4, Bool>,
        rope: (&Tensor<4>, &Tensor<4>),
        act: Activation,
        residual_scale: f32,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let hd = self.head_dim;
        let heads = |x: Tensor<3>, n: usize, norm: Option<&RmsNorm>| {
            let x = x.reshape([b, t, n, hd]);
            match norm {
                Some(norm) => norm.forward(x),
                None => x,
            }
            .swap_dims(1, 2)
        };
        let hn = self.input_norm.forward(x.clone());
        let (qn, kn) = match &self.qk_norm {
            Some((q, k)) => (Some(q), Some(k)),
            None => (None, None),
        };
        let q = Rope::apply(heads(self.q.forward(hn.clone()), self.heads, qn), rope.0, rope.1);
        let k = Rope::apply(heads(self.k.forward(hn.clone()), self.kv_heads, kn), rope.0, rope.1);
        let v = heads(self.v.forward(hn), self.kv_heads, None);
        let ctx = grouped_attention(q, k, v, mask, (hd as f64).powf(-0.5));
        let attn = self.o.forward(ctx.swap_dims(1, 2).reshape([b, t, self.heads * hd]));
        let x = x + attn.mul_scalar(residual_scale);
        let hn = self.post_norm.forward(x.clone());
        let ff = self.down.forward(act.forward(self.gate.forward(hn.clone())) * self.up.forward(hn));
        x + ff.mul_scalar(residual_scale)
    }
}

/// `[b, t, h]` → `[b, h]`: each row's last non-padding position.
pub(crate) fn last_tokens(x: Tensor<3>, batch: &Batch, dev: &Device) -> Tensor<2> {
    let [b, t, h] = x.dims();
    let idx: Vec<i64> = (0..b)
        .map(|r| {
            let len = batch.attention_mask[r * t..(r + 1) * t].iter().filter(|&&m| m != 0).count();
            (r * t + len.max(1) - 1) as i64
        })
        .collect();
    x.reshape([b * t, h]).select(0, Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), dev))
}
