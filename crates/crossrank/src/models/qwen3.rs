//! Qwen3 (`Qwen3ForCausalLM`, `Qwen3ForSequenceClassification`,
//! `Qwen3Model`): Qwen3-Reranker scored as its model card's code does —
//! P(yes) from the last position's ["no", "yes"] logits, so the raw score
//! is logit(yes) − logit(no) — its `-seq-cls` conversions (one label: that
//! same difference of LM-head rows), and Qwen3-Embedding (the last
//! position's final-norm state). A Llama-style decoder with a per-head
//! RMSNorm of queries and keys before RoPE. Only the one row that scores
//! is ever computed (`w_yes − w_no`, a `hidden`-long dot product), never
//! the 151k-row LM head.

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use crate::batching::Batch;
use crate::error::{Error, Result};
use crate::nn::{Activation, DecoderConfig, DecoderLayer, Embedding, RmsNorm, Rope, causal_padding_mask, last_tokens};
use super::Labels;
use crate::weights::Weights;

/// transformers' `Qwen3Config.max_position_embeddings` default.
pub(crate) const DEFAULT_POSITIONS: usize = 32768;

/// `config.json` of a Qwen3 checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Qwen3Config {
    #[serde(flatten)]
    pub(crate) decoder: DecoderConfig,
    /// transformers' `Qwen3Config` default is untied (the 0.6B checkpoints
    /// say `true`, the 4B and 8B `false`).
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    use_sliding_window: bool,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(flatten)]
    labels: Labels,
}

impl Qwen3Config {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self> {
        let c: Self = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        c.decoder.validate()?;
        // Sliding-window attention is off in every Qwen3 checkpoint
        // (transformers applies it only with use_sliding_window); a config
        // that turns it on would be scored wrongly, so it is refused.
        if c.use_sliding_window {
            return Err(Error::config("config.json", "use_sliding_window is not supported for Qwen3"));
        }
        if c.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(Error::config("config.json", "rope_scaling is not supported for Qwen3"));
        }
        Ok(c)
    }

    fn act(&self) -> Activation {
        self.decoder.hidden_act.unwrap_or(Activation::Silu)
    }

}

/// The Qwen3 decoder and its scoring row.
pub(crate) struct Qwen3 {
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rope: Rope,
    /// The reranker's `[hidden, 1]` score row (the causal LM's yes − no
    /// rows, or the seq-cls label); `None` for Qwen3-Embedding.
    score_row: Option<Tensor<2>>,
    cfg: Qwen3Config,
}

/// `"model."` when the decoder's weights are stored under it (the causal
/// and seq-cls checkpoints), `""` for a bare `Qwen3Model` (Qwen3-Embedding).
fn prefix(w: &Weights) -> &'static str {
    if w.contains("model.embed_tokens.weight") { "model." } else { "" }
}

impl Qwen3 {
    /// The reranker of a `Qwen3ForCausalLM` checkpoint: the score row is
    /// the LM head's `yes` row minus its `no` row (the embedding table's
    /// when tied or when the checkpoint has no `lm_head.weight`).
    pub(crate) fn load_causal(w: &Weights, cfg: Qwen3Config, yes: u32, no: u32, dev: &Device) -> Result<Self> {
        let (v, h) = (cfg.decoder.vocab_size, cfg.decoder.hidden_size);
        let name = if cfg.tie_word_embeddings || !w.contains("lm_head.weight") {
            format!("{}embed_tokens.weight", prefix(w))
        } else {
            "lm_head.weight".into()
        };
        for t in [yes, no] {
            if t as usize >= v {
                return Err(Error::InvalidInput(format!("scoring token id {t} is outside the vocabulary ({v})")));
            }
        }
        let (y, n) = (w.row(&name, &[v, h], yes as usize)?, w.row(&name, &[v, h], no as usize)?);
        let row: Vec<f32> = y.iter().zip(&n).map(|(a, b)| a - b).collect();
        Self::load(w, cfg, Some(Tensor::from_data(TensorData::new(row, [h, 1]), dev)), dev)
    }

    /// The reranker of a `Qwen3ForSequenceClassification` checkpoint with
    /// one label (`score.weight`, `[1, hidden]`).
    pub(crate) fn load_seq_cls(w: &Weights, cfg: Qwen3Config, dev: &Device) -> Result<Self> {
        cfg.labels.check_one()?;
        let h = cfg.decoder.hidden_size;
        let row = w.f32("score.weight", &[1, h])?;
        Self::load(w, cfg, Some(Tensor::from_data(TensorData::new(row, [h, 1]), dev)), dev)
    }

    /// Qwen3-Embedding: the decoder alone (any Qwen3 checkpoint's).
    pub(crate) fn load_embedding(w: &Weights, cfg: Qwen3Config, dev: &Device) -> Result<Self> {
        Self::load(w, cfg, None, dev)
    }

    fn load(w: &Weights, cfg: Qwen3Config, score_row: Option<Tensor<2>>, dev: &Device) -> Result<Self> {
        let d = &cfg.decoder;
        let p = prefix(w);
        let layers = (0..d.num_hidden_layers)
            .map(|l| {
                let at = format!("{p}layers.{l}");
                DecoderLayer::load(w, &at, d, 0.0, dev)?.with_qk_norm(w, &at, d, dev)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: Embedding::load(w, &format!("{p}embed_tokens.weight"), d.vocab_size, d.hidden_size, dev)?,
            layers,
            norm: RmsNorm::load(w, &format!("{p}norm.weight"), d.hidden_size, d.rms_norm_eps, 0.0, dev)?,
            rope: Rope::new(d.head_dim(), d.rope_theta),
            score_row,
            cfg,
        })
    }

    /// `[rows, hidden]`: the final norm of each row's last real token of a
    /// right-padded batch. (The card pads on the left and transformers then
    /// numbers positions from the padding: RoPE's scores depend only on
    /// relative positions, so both give the same numbers.)
    pub(crate) fn last_states(&self, batch: &Batch, dev: &Device) -> Tensor<2> {
        let (b, t) = (batch.rows, batch.cols);
        let c = &self.cfg.decoder;
        let ids: Vec<i64> = batch.ids.iter().map(|&x| i64::from(x)).collect();
        let mut x = self.embed.forward(&ids, dev).reshape([b, t, c.hidden_size]);
        let mask = causal_padding_mask(&batch.attention_mask, b, t, dev);
        let (cos, sin) = self.rope.tables(t, dev);
        for l in &self.layers {
            x = l.forward(x, &mask, (&cos, &sin), self.cfg.act(), 1.0);
        }
        self.norm.forward(last_tokens(x, batch, dev))
    }

    /// One raw score per row: logit(yes) − logit(no) (the seq-cls label).
    pub(crate) fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<1>> {
        match &self.score_row {
            Some(row) => Ok(self.last_states(batch, dev).matmul(row.clone()).reshape([batch.rows])),
            None => Err(Error::InvalidInput("this Qwen3 model embeds; it has no score head".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<Qwen3Config> {
        Qwen3Config::from_json(
            format!(
                r#"{{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4 {extra}}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn reads_qwen3_configs_and_refuses_what_it_cannot_run() {
        let c = cfg("").unwrap();
        assert!(!c.tie_word_embeddings, "transformers' default is untied");
        assert_eq!(c.act(), Activation::Silu);
        assert_eq!(c.labels.count(), 2);
        assert_eq!(cfg(r#","id2label":{"0":"LABEL_0"}"#).unwrap().labels.count(), 1);
        let e = cfg(r#","use_sliding_window":true"#).unwrap_err();
        assert!(e.to_string().contains("use_sliding_window"), "{e}");
        let e = cfg(r#","rope_scaling":{"type":"yarn","factor":4.0}"#).unwrap_err();
        assert!(e.to_string().contains("rope_scaling"), "{e}");
        assert!(cfg(r#","rope_scaling":null"#).is_ok());
        assert!(matches!(cfg(r#","head_dim": 3"#), Err(Error::Config { .. })));
    }
}
