//! Gemma (`GemmaForCausalLM`): bge-reranker-v2-gemma, scored as
//! FlagEmbedding's `FlagLLMReranker` does — the logit of "Yes" at the last
//! real token. Only that one row of the LM head is ever computed: a
//! `hidden`-long dot product instead of a 256000-way projection.

use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::nn::{Activation, DecoderConfig, DecoderLayer, Embedding, RmsNorm, Rope, causal_padding_mask, last_tokens};
use crate::batching::Batch;
use crate::weights::Weights;

/// `config.json` of a Gemma checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GemmaConfig {
    #[serde(flatten)]
    pub(crate) decoder: DecoderConfig,
    #[serde(default = "default_true")]
    pub(crate) tie_word_embeddings: bool,
}

fn default_true() -> bool {
    true
}

impl GemmaConfig {
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self> {
        let c: Self = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        c.decoder.validate()?;
        Ok(c)
    }

    /// transformers 4.57's GemmaMLP uses `hidden_act` (`hidden_activation`
    /// is read nowhere), so this does too, to give the same numbers.
    fn act(&self) -> Activation {
        self.decoder.hidden_act.unwrap_or(Activation::GeluTanh)
    }
}

/// The Gemma decoder plus the one LM-head row that scores.
pub(crate) struct Gemma {
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
    pub(crate) fn load(w: &Weights, cfg: GemmaConfig, score_token: u32, dev: &Device) -> Result<Self> {
        let d = &cfg.decoder;
        let h = d.hidden_size;
        let layers = (0..d.num_hidden_layers)
            .map(|l| DecoderLayer::load(w, &format!("model.layers.{l}"), d, 1.0, dev))
            .collect::<Result<Vec<_>>>()?;
        let head_name =
            if cfg.tie_word_embeddings || !w.contains("lm_head.weight") { "model.embed_tokens.weight" } else { "lm_head.weight" };
        let row = score_row(w, head_name, d.vocab_size, h, score_token)?;
        Ok(Self {
            embed: Embedding::load(w, "model.embed_tokens.weight", d.vocab_size, h, dev)?,
            layers,
            norm: RmsNorm::load(w, "model.norm.weight", h, d.rms_norm_eps, 1.0, dev)?,
            rope: Rope::new(d.head_dim(), d.rope_theta),
            score_row: Tensor::from_data(TensorData::new(row, [h, 1]), dev),
            cfg,
        })
    }

    /// One score per row of a right-padded batch: the "Yes" logit at each
    /// row's last real token.
    pub(crate) fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<1>> {
        let (b, t) = (batch.rows, batch.cols);
        let c = &self.cfg.decoder;
        let ids: Vec<i64> = batch.ids.iter().map(|&x| x as i64).collect();
        // Gemma scales embeddings by sqrt(hidden), as an f32 constant.
        let mut x = self.embed.forward(&ids, dev).reshape([b, t, c.hidden_size]).mul_scalar((c.hidden_size as f32).sqrt());
        let mask = causal_padding_mask(&batch.attention_mask, b, t, dev);
        let (cos, sin) = self.rope.tables(t, dev);
        for l in &self.layers {
            x = l.forward(x, &mask, (&cos, &sin), self.cfg.act(), 1.0);
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
