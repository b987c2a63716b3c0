//! MiniCPM layer-wise reranker (`LayerWiseMiniCPMForCausalLM`):
//! bge-reranker-v2-minicpm-layerwise, as FlagEmbedding's own
//! `modeling_minicpm_reranker.py` computes it. A Llama-style decoder
//! (RMSNorm, RoPE, SiLU-gated MLP, GQA) with `scale_emb` on the embeddings
//! and residual branches scaled by `scale_depth / sqrt(num_hidden_layers)`;
//! one `Linear(hidden, 1)` score head per layer from `start_layer`, applied
//! to the final norm of that layer's hidden state at the last real token.
//! The forward pass stops at the deepest requested layer.

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::nn::{Activation, DecoderConfig, DecoderLayer, Embedding, RmsNorm, Rope, causal_padding_mask, last_tokens};
use crate::batching::Batch;
use crate::weights::Weights;

/// `config.json` of a layer-wise MiniCPM reranker.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MiniCpmConfig {
    #[serde(flatten)]
    pub(crate) decoder: DecoderConfig,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(default = "one")]
    scale_emb: f64,
    #[serde(default = "one")]
    scale_depth: f64,
    #[serde(default = "default_start")]
    start_layer: usize,
    #[serde(default = "default_true")]
    head_multi: bool,
    #[serde(default = "default_head_type")]
    head_type: String,
}

fn one() -> f64 {
    1.0
}
fn default_start() -> usize {
    8
}
fn default_true() -> bool {
    true
}
fn default_head_type() -> String {
    "simple".into()
}

impl MiniCpmConfig {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self> {
        let mut c: Self = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        let bad = |m: String| Err(Error::config("config.json", m));
        if c.head_type != "simple" {
            return bad(format!("head_type {:?} is not supported (the layer-wise rerankers use \"simple\")", c.head_type));
        }
        if c.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return bad("rope_scaling is not supported".into());
        }
        // MiniCPM's attention takes hidden_size / num_attention_heads
        // whatever else the config says.
        c.decoder.head_dim = None;
        let d = &c.decoder;
        if d.num_attention_heads == 0 || d.hidden_size % d.num_attention_heads != 0 {
            return bad("inconsistent hidden_size / num_attention_heads / num_key_value_heads".into());
        }
        d.validate()?;
        if c.start_layer > d.num_hidden_layers {
            return bad(format!("start_layer {} > num_hidden_layers {}", c.start_layer, d.num_hidden_layers));
        }
        for (field, v) in [("scale_emb", c.scale_emb), ("scale_depth", c.scale_depth)] {
            if !(v as f32).is_finite() {
                return bad(format!("{field} is {v}; it must be a finite f32"));
            }
        }
        Ok(c)
    }

    fn act(&self) -> Activation {
        self.decoder.hidden_act.unwrap_or(Activation::Silu)
    }

    /// The layers with a score head: `start_layer..=num_hidden_layers`.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn scoring_layers(&self) -> Vec<usize> {
        (self.start_layer..=self.decoder.num_hidden_layers).collect()
    }

    /// FlagEmbedding's handling of `cutoff_layers`: default the last layer;
    /// layers outside `[start_layer, num_hidden_layers]` are dropped; none
    /// left is an error.
    pub(crate) fn resolve_cutoffs(&self, requested: Option<&[usize]>) -> Result<Vec<usize>> {
        let all = requested.map(<[usize]>::to_vec).unwrap_or_else(|| vec![self.decoder.num_hidden_layers]);
        let kept: Vec<usize> = all.iter().copied().filter(|&l| l >= self.start_layer && l <= self.decoder.num_hidden_layers).collect();
        if kept.len() < all.len() {
            tracing::warn!(requested = ?all, kept = ?kept, "cutoff layers outside [start_layer, num_hidden_layers] dropped");
        }
        if kept.is_empty() {
            return Err(Error::InvalidInput(format!(
                "cutoff layers must be in [{}, {}]",
                self.start_layer, self.decoder.num_hidden_layers
            )));
        }
        Ok(kept)
    }
}

/// The layer-wise reranker.
pub(crate) struct MiniCpm {
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rope: Rope,
    /// `[hidden, 1]` score heads, for layers `start_layer..=num_hidden_layers`
    /// (one shared head when `head_multi` is false).
    heads: Vec<Tensor<2>>,
    cfg: MiniCpmConfig,
}

impl MiniCpm {
    pub(crate) fn load(w: &Weights, cfg: MiniCpmConfig, dev: &Device) -> Result<Self> {
        let d = &cfg.decoder;
        let h = d.hidden_size;
        let layers = (0..d.num_hidden_layers)
            .map(|l| DecoderLayer::load(w, &format!("model.layers.{l}"), d, 0.0, dev))
            .collect::<Result<Vec<_>>>()?;
        let head = |name: String| -> Result<Tensor<2>> {
            let v = w.f32(&name, &[1, h])?;
            Ok(Tensor::from_data(TensorData::new(v, [h, 1]), dev))
        };
        let heads = if cfg.head_multi {
            (cfg.start_layer..=d.num_hidden_layers)
                .enumerate()
                .map(|(j, _)| head(format!("lm_head.{j}.linear_head.weight")))
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![head("lm_head.linear_head.weight".into())?]
        };
        Ok(Self {
            embed: Embedding::load(w, "model.embed_tokens.weight", d.vocab_size, h, dev)?,
            layers,
            norm: RmsNorm::load(w, "model.norm.weight", h, d.rms_norm_eps, 0.0, dev)?,
            rope: Rope::new(d.head_dim(), d.rope_theta),
            heads,
            cfg,
        })
    }

    pub(crate) fn config(&self) -> &MiniCpmConfig {
        &self.cfg
    }

    /// Scores per cutoff layer (already resolved), one tensor `[rows]` each.
    ///
    /// Faithful to the reference: hidden states are collected in layer
    /// order while heads are picked in the order `cutoffs` lists them, so
    /// an unsorted or repeated list pairs them as FlagEmbedding does.
    pub(crate) fn forward(&self, batch: &Batch, cutoffs: &[usize], dev: &Device) -> Result<Vec<Tensor<1>>> {
        let (b, t) = (batch.rows, batch.cols);
        let c = &self.cfg;
        let d = &c.decoder;
        let max_layer = cutoffs.iter().copied().max().unwrap_or(d.num_hidden_layers);
        let ids: Vec<i64> = batch.ids.iter().map(|&x| x as i64).collect();
        let mut x = self.embed.forward(&ids, dev).reshape([b, t, d.hidden_size]).mul_scalar(c.scale_emb as f32);
        let mask = causal_padding_mask(&batch.attention_mask, b, t, dev);
        let (cos, sin) = self.rope.tables(t, dev);
        let residual_scale = (c.scale_depth / (d.num_hidden_layers as f64).sqrt()) as f32;
        let mut states = Vec::new();
        for (idx, l) in self.layers.iter().enumerate() {
            if cutoffs.contains(&idx) {
                states.push(self.norm.forward(last_tokens(x.clone(), batch, dev)));
            }
            if idx == max_layer {
                break;
            }
            x = l.forward(x, &mask, (&cos, &sin), c.act(), residual_scale);
        }
        if max_layer == d.num_hidden_layers {
            states.push(self.norm.forward(last_tokens(x, batch, dev)));
        }
        Ok(states
            .into_iter()
            .zip(cutoffs)
            .map(|(s, &layer)| {
                let head = if c.head_multi { &self.heads[layer - c.start_layer] } else { &self.heads[0] };
                s.matmul(head.clone()).reshape([b])
            })
            .collect())
    }
}
