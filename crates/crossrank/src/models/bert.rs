//! BERT (`BertModel`, `BertForSequenceClassification`): the ms-marco MiniLM
//! cross-encoders and all-MiniLM-L6-v2. Its encoder is shared with XLM-R.

use burn::tensor::{Device, Tensor, activation};

use super::EncoderInput;
use crate::config::EncoderConfig;
use crate::error::{Error, Result};
use crate::load::Weights;
use crate::nn::{AttentionGather, Embedding, LayerNorm, Linear, activate, packed_attention};
use crate::tokenize::Batch;

/// Word + position + token-type embeddings, then LayerNorm.
pub struct BertEmbeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

impl BertEmbeddings {
    pub fn load(w: &Weights, p: &str, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            word: Embedding::load(w, &format!("{p}embeddings.word_embeddings.weight"), c.vocab_size, h, dev)?,
            position: Embedding::load(
                w,
                &format!("{p}embeddings.position_embeddings.weight"),
                c.max_position_embeddings,
                h,
                dev,
            )?,
            token_type: Embedding::load(
                w,
                &format!("{p}embeddings.token_type_embeddings.weight"),
                c.type_vocab_size,
                h,
                dev,
            )?,
            norm: LayerNorm::load(w, &format!("{p}embeddings.LayerNorm"), h, c.layer_norm_eps, dev)?,
        })
    }

    /// `[packed tokens, hidden]`.
    pub fn forward(&self, x: &EncoderInput, dev: &Device) -> Tensor<2> {
        let e = self.word.forward(&x.ids, dev) + self.position.forward(&x.positions, dev) + self.token_type.forward(&x.token_types, dev);
        self.norm.forward(e)
    }
}

/// One post-LayerNorm transformer block.
pub struct BertLayer {
    /// query | key | value as one projection.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
    act: crate::config::Activation,
}

impl BertLayer {
    pub fn load(w: &Weights, p: &str, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        Ok(Self {
            qkv: Linear::concat(
                ["query", "key", "value"]
                    .iter()
                    .map(|n| Linear::load(w, &format!("{p}.attention.self.{n}"), h, h, dev))
                    .collect::<Result<_>>()?,
            ),
            attn_out: Linear::load(w, &format!("{p}.attention.output.dense"), h, h, dev)?,
            attn_norm: LayerNorm::load(w, &format!("{p}.attention.output.LayerNorm"), h, eps, dev)?,
            intermediate: Linear::load(w, &format!("{p}.intermediate.dense"), h, i, dev)?,
            output: Linear::load(w, &format!("{p}.output.dense"), i, h, dev)?,
            out_norm: LayerNorm::load(w, &format!("{p}.output.LayerNorm"), h, eps, dev)?,
            act: c.hidden_act,
        })
    }

    /// `[packed tokens, hidden]` in and out.
    pub fn forward(&self, x: Tensor<2>, attention: &AttentionGather) -> Tensor<2> {
        let ctx = packed_attention(self.qkv.forward(x.clone()), attention);
        let x = self.attn_norm.forward(self.attn_out.forward(ctx) + x);
        let ff = self.output.forward(activate(self.act, self.intermediate.forward(x.clone())));
        self.out_norm.forward(ff + x)
    }
}

/// Embeddings + the stack of layers: packed tokens → `[packed, hidden]`.
pub struct BertEncoder {
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    heads: usize,
    max_positions: usize,
}

impl BertEncoder {
    /// Load under `prefix` (`"bert."`, `"roberta."` or `""`).
    pub fn load(w: &Weights, prefix: &str, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| BertLayer::load(w, &format!("{prefix}encoder.layer.{i}"), c, dev))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: BertEmbeddings::load(w, prefix, c, dev)?,
            layers,
            heads: c.num_attention_heads,
            max_positions: c.max_position_embeddings,
        })
    }

    pub fn forward(&self, input: &EncoderInput, dev: &Device) -> Tensor<2> {
        let mut x = self.embeddings.forward(input, dev);
        let attention = input.packing.attention(self.heads, dev);
        for layer in &self.layers {
            x = layer.forward(x, &attention);
        }
        x
    }

    /// Reject position ids past the embedding table instead of indexing out
    /// of bounds on the device.
    pub fn check_positions(&self, positions: &[i64]) -> Result<()> {
        match positions.iter().max() {
            Some(&m) if m as usize >= self.max_positions => Err(Error::InvalidInput(format!(
                "a sequence needs position {m} but the model has {} position embeddings; lower max_length",
                self.max_positions
            ))),
            _ => Ok(()),
        }
    }
}

/// The prefix under which a BERT checkpoint stores its encoder.
pub fn bert_prefix(w: &Weights) -> &'static str {
    if w.contains("bert.embeddings.word_embeddings.weight") { "bert." } else { "" }
}

/// BERT position ids: `0..seq` for every row.
pub fn positions(batch: &Batch) -> Vec<i64> {
    (0..batch.rows).flat_map(|_| 0..batch.cols as i64).collect()
}

/// `BertForSequenceClassification`: pooler (`tanh(W h_cls + b)`) then a
/// linear classifier.
pub struct BertForSequenceClassification {
    encoder: BertEncoder,
    pooler: Linear,
    classifier: Linear,
}

impl BertForSequenceClassification {
    pub fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            encoder: BertEncoder::load(w, "bert.", c, dev)?,
            pooler: Linear::load(w, "bert.pooler.dense", h, h, dev)?,
            classifier: Linear::load(w, "classifier", h, c.num_labels(), dev)?,
        })
    }

    /// `[batch, num_labels]` logits.
    pub fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<2>> {
        let pos = positions(batch);
        self.encoder.check_positions(&pos)?;
        let input = EncoderInput::new(batch, pos);
        let cls = self.encoder.forward(&input, dev).select(0, input.packing.first_tokens(dev));
        let pooled = activation::tanh(self.pooler.forward(cls));
        Ok(self.classifier.forward(pooled))
    }
}

/// A bare BERT encoder (`BertModel`) for embeddings.
pub struct BertModel {
    encoder: BertEncoder,
}

impl BertModel {
    pub fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        Ok(Self {
            encoder: BertEncoder::load(w, bert_prefix(w), c, dev)?,
        })
    }

    /// `[batch, seq, hidden]` last hidden states.
    pub fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<3>> {
        let pos = positions(batch);
        self.encoder.check_positions(&pos)?;
        let input = EncoderInput::new(batch, pos);
        Ok(input.packing.unpack(self.encoder.forward(&input, dev)))
    }
}
