//! ModernBERT (`ModernBertForSequenceClassification`, `ModernBertModel`):
//! gte-reranker-modernbert-base and the sentence-transformers ModernBERT
//! cross-encoders, as transformers 4.57 computes them. Token embeddings +
//! LayerNorm; pre-norm layers (layer 0 without the attention norm) with a
//! fused `Wqkv`, RoPE (`global_rope_theta` on global layers,
//! `local_rope_theta` on local ones), sliding-window attention on every
//! layer that is not a multiple of `global_attn_every_n_layers` (each token
//! sees the tokens at most `local_attention / 2` away), a GeGLU MLP (`Wi` →
//! input, gate → `act(input) * gate` → `Wo`); a final norm; then the
//! classifier's pooling (cls, or the mean over real tokens), prediction head
//! (dense, activation, norm) and classifier. Packed like the other
//! encoders: the window is exact at every sequence's start and end.

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use crate::error::{Error, Result, bounds, check_config_positive, check_config_range};
use crate::nn::{Activation, AttentionPlan, Embedding, LayerNorm, Linear, Packing, packed_attention};
use crate::tokenize::Encoded;
use super::Labels;
use crate::weights::Weights;

fn d_gelu() -> Activation {
    Activation::Gelu
}
fn d_positions() -> usize {
    8192
}
fn d_eps() -> f64 {
    1e-5
}
fn d_global_theta() -> f64 {
    160_000.0
}
fn d_local_theta() -> Option<f64> {
    Some(10_000.0)
}
fn d_every() -> usize {
    3
}
fn d_window() -> usize {
    128
}
fn d_pooling() -> String {
    "cls".into()
}

/// `config.json` of a ModernBERT checkpoint (transformers 4.57's
/// `ModernBertConfig` defaults where a field is absent).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ModernBertConfig {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    #[serde(default = "d_gelu")]
    hidden_activation: Activation,
    #[serde(default = "d_positions")]
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "d_eps")]
    norm_eps: f64,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default = "d_global_theta")]
    global_rope_theta: f64,
    #[serde(default = "d_local_theta")]
    local_rope_theta: Option<f64>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "d_every")]
    global_attn_every_n_layers: usize,
    #[serde(default = "d_window")]
    local_attention: usize,
    #[serde(default = "d_pooling")]
    classifier_pooling: String,
    #[serde(default = "d_gelu")]
    classifier_activation: Activation,
    #[serde(default)]
    classifier_bias: bool,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(flatten)]
    pub(crate) labels: Labels,
}

impl ModernBertConfig {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self> {
        let c: Self = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        let bad = |m: String| Err(Error::config("config.json", m));
        check_config_range("hidden_size", c.hidden_size, 1, bounds::HIDDEN)?;
        check_config_range("num_attention_heads", c.num_attention_heads, 1, bounds::HEADS)?;
        check_config_range("num_hidden_layers", c.num_hidden_layers, 1, bounds::LAYERS)?;
        check_config_range("intermediate_size", c.intermediate_size, 1, bounds::INTERMEDIATE)?;
        check_config_range("vocab_size", c.vocab_size, 1, bounds::VOCAB)?;
        check_config_range("max_position_embeddings", c.max_position_embeddings, 1, bounds::POSITIONS)?;
        check_config_range("global_attn_every_n_layers", c.global_attn_every_n_layers, 1, bounds::LAYERS)?;
        check_config_range("local_attention", c.local_attention, 0, bounds::POSITIONS)?;
        check_config_positive("norm_eps", c.norm_eps, 1.0)?;
        check_config_positive("global_rope_theta", c.global_rope_theta, f64::MAX)?;
        if let Some(t) = c.local_rope_theta {
            check_config_positive("local_rope_theta", t, f64::MAX)?;
        }
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) || !(c.hidden_size / c.num_attention_heads).is_multiple_of(2) {
            return bad(format!(
                "hidden_size {} must split into num_attention_heads {} heads of an even size (rotary embeddings)",
                c.hidden_size, c.num_attention_heads
            ));
        }
        if !matches!(c.classifier_pooling.as_str(), "cls" | "mean") {
            return bad(format!("classifier_pooling {:?} is not supported (cls or mean)", c.classifier_pooling));
        }
        if c.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return bad("rope_scaling is not supported for ModernBERT".into());
        }
        Ok(c)
    }

    /// `num_labels` as transformers derives it ([`Labels::count`]).
    pub(crate) fn num_labels(&self) -> usize {
        self.labels.count()
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Layer `l` attends globally (transformers: `layer_id %
    /// global_attn_every_n_layers == 0`).
    fn is_global(&self, l: usize) -> bool {
        l.is_multiple_of(self.global_attn_every_n_layers)
    }
}

/// Per-packed-row cos and sin (`[rows, 1, 1, head_dim]`) for the rows'
/// positions, in f32 as transformers computes them (`rotate_half` layout).
fn rope_rows(positions: &[usize], head_dim: usize, theta: f64, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let inv: Vec<f32> = (0..head_dim / 2).map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
    let (mut cos, mut sin) = (Vec::with_capacity(positions.len() * head_dim), Vec::with_capacity(positions.len() * head_dim));
    for &p in positions {
        for _ in 0..2 {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
    }
    let n = positions.len();
    let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [n, 1, 1, head_dim]), device);
    (t(cos), t(sin))
}

/// RoPE on the q and k parts of a fused `[rows, 3 * hidden]` projection.
fn rotate_qk(qkv: Tensor<2>, heads: usize, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<2> {
    let [n, width] = qkv.dims();
    let d = width / 3 / heads;
    let x = qkv.reshape([n, 3, heads, d]);
    let rot = |t: Tensor<4>| {
        let x1 = t.clone().narrow(3, 0, d / 2);
        let x2 = t.clone().narrow(3, d / 2, d / 2);
        t * cos.clone() + Tensor::cat(vec![x2.neg(), x1], 3) * sin.clone()
    };
    let qk = rot(x.clone().narrow(1, 0, 2));
    Tensor::cat(vec![qk, x.narrow(1, 2, 1)], 1).reshape([n, width])
}

/// One pre-norm ModernBERT layer.
struct ModernBertLayer {
    attn_norm: Option<LayerNorm>,
    wqkv: Linear,
    wo: Linear,
    mlp_norm: LayerNorm,
    wi: Linear,
    mlp_out: Linear,
    global: bool,
}

/// Embeddings + layers + final norm: packed tokens → `[packed, hidden]`.
pub(crate) struct ModernBertEncoder {
    embed: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<ModernBertLayer>,
    final_norm: LayerNorm,
    cfg: ModernBertConfig,
}

impl ModernBertEncoder {
    /// Load under `prefix` (`"model."` in the classification checkpoints).
    pub(crate) fn load(w: &Weights, prefix: &str, c: &ModernBertConfig, dev: &Device) -> Result<Self> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.norm_eps);
        let norm = |name: &str| LayerNorm::load_with_bias(w, &format!("{prefix}{name}"), h, eps, c.norm_bias, dev);
        let lin = |name: &str, a, b, bias| Linear::load_with_bias(w, &format!("{prefix}{name}"), a, b, bias, dev);
        let layers = (0..c.num_hidden_layers)
            .map(|l| {
                Ok(ModernBertLayer {
                    attn_norm: if l == 0 { None } else { Some(norm(&format!("layers.{l}.attn_norm"))?) },
                    wqkv: lin(&format!("layers.{l}.attn.Wqkv"), h, 3 * h, c.attention_bias)?,
                    wo: lin(&format!("layers.{l}.attn.Wo"), h, h, c.attention_bias)?,
                    mlp_norm: norm(&format!("layers.{l}.mlp_norm"))?,
                    wi: lin(&format!("layers.{l}.mlp.Wi"), h, 2 * i, c.mlp_bias)?,
                    mlp_out: lin(&format!("layers.{l}.mlp.Wo"), i, h, c.mlp_bias)?,
                    global: c.is_global(l),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: Embedding::load(w, &format!("{prefix}embeddings.tok_embeddings.weight"), c.vocab_size, h, dev)?,
            embed_norm: norm("embeddings.norm")?,
            layers,
            final_norm: norm("final_norm")?,
            cfg: c.clone(),
        })
    }

    /// Last hidden states of unpadded sequences, packed, and their packing.
    pub(crate) fn forward(&self, items: &[&Encoded], dev: &Device) -> Result<(Tensor<2>, Packing)> {
        let c = &self.cfg;
        let lens: Vec<usize> = items.iter().map(|e| e.len()).collect();
        if let Some(&l) = lens.iter().find(|&&l| l > c.max_position_embeddings) {
            return Err(Error::InvalidInput(format!(
                "a sequence is {l} tokens long but the model takes at most {}; lower max_length",
                c.max_position_embeddings
            )));
        }
        let packing = Packing::new(&lens);
        let ids = packing.fill(items.iter().flat_map(|e| e.ids.iter().map(|&x| i64::from(x))).collect());
        let positions = packing.fill(lens.iter().flat_map(|&l| 0..l).collect());
        let hd = c.head_dim();
        let global_rope = rope_rows(&positions, hd, c.global_rope_theta, dev);
        let local_rope = rope_rows(&positions, hd, c.local_rope_theta.unwrap_or(c.global_rope_theta), dev);
        let heads = c.num_attention_heads;
        let global: AttentionPlan = packing.attention(heads, None, dev);
        let local: AttentionPlan = packing.attention(heads, Some(c.local_attention / 2), dev);
        let mut x = self.embed_norm.forward(self.embed.forward(&ids, dev));
        for l in &self.layers {
            let h = match &l.attn_norm {
                Some(n) => n.forward(x.clone()),
                None => x.clone(),
            };
            let (plan, (cos, sin)) = if l.global { (&global, &global_rope) } else { (&local, &local_rope) };
            let qkv = rotate_qk(l.wqkv.forward(h), heads, cos, sin);
            x = x + l.wo.forward(packed_attention(qkv, plan));
            let gated = l.wi.forward(l.mlp_norm.forward(x.clone()));
            let i = c.intermediate_size;
            let (input, gate) = (gated.clone().narrow(1, 0, i), gated.narrow(1, i, i));
            x = x + l.mlp_out.forward(c.hidden_activation.forward(input) * gate);
        }
        Ok((self.final_norm.forward(x), packing))
    }
}

/// `ModernBertForSequenceClassification`: pooling (cls or mean), the
/// prediction head (dense → activation → norm), the classifier.
pub(crate) struct ModernBertForSequenceClassification {
    encoder: ModernBertEncoder,
    dense: Linear,
    head_norm: LayerNorm,
    classifier: Linear,
    cfg: ModernBertConfig,
}

impl ModernBertForSequenceClassification {
    pub(crate) fn load(w: &Weights, c: &ModernBertConfig, dev: &Device) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            encoder: ModernBertEncoder::load(w, "model.", c, dev)?,
            dense: Linear::load_with_bias(w, "head.dense", h, h, c.classifier_bias, dev)?,
            head_norm: LayerNorm::load_with_bias(w, "head.norm", h, c.norm_eps, c.norm_bias, dev)?,
            classifier: Linear::load(w, "classifier", h, c.num_labels(), dev)?,
            cfg: c.clone(),
        })
    }

    /// `[batch, num_labels]` logits.
    pub(crate) fn forward(&self, items: &[&Encoded], dev: &Device) -> Result<Tensor<2>> {
        let (x, packing) = self.encoder.forward(items, dev)?;
        let pooled = if self.cfg.classifier_pooling == "mean" { packing.mean(x) } else { x.select(0, packing.first_tokens(dev)) };
        let head = self.head_norm.forward(self.cfg.classifier_activation.forward(self.dense.forward(pooled)));
        Ok(self.classifier.forward(head))
    }
}

/// The prefix under which a ModernBERT checkpoint stores its encoder:
/// `"model."` in the task checkpoints, nothing in a bare `ModernBertModel`.
pub(crate) fn modernbert_prefix(w: &Weights) -> &'static str {
    if w.contains("model.embeddings.tok_embeddings.weight") { "model." } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<ModernBertConfig> {
        ModernBertConfig::from_json(
            format!(
                r#"{{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 3,
                    "num_attention_heads": 2 {extra}}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn reads_modernbert_configs_with_transformers_defaults() {
        let c = cfg("").unwrap();
        assert_eq!((c.local_attention, c.global_attn_every_n_layers, c.max_position_embeddings), (128, 3, 8192));
        assert_eq!((c.global_rope_theta, c.local_rope_theta), (160_000.0, Some(10_000.0)));
        assert!(!c.norm_bias && !c.attention_bias && !c.mlp_bias && !c.classifier_bias);
        assert_eq!(c.classifier_pooling, "cls");
        assert!(c.is_global(0) && !c.is_global(1) && !c.is_global(2) && c.is_global(3));
        let e = cfg(r#","classifier_pooling":"max""#).unwrap_err();
        assert!(e.to_string().contains("classifier_pooling"), "{e}");
        let odd = br#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 3, "num_attention_heads": 8}"#;
        let e = ModernBertConfig::from_json(odd).unwrap_err();
        assert!(e.to_string().contains("even size"), "{e}");
        assert!(matches!(cfg(r#","global_attn_every_n_layers":0"#), Err(Error::Config { .. })));
    }
}
