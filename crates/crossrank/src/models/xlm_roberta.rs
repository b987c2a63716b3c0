//! XLM-RoBERTa (`XLMRobertaForSequenceClassification`): bge-reranker-base,
//! -large and -v2-m3. BERT's encoder with RoBERTa's padding-aware position
//! ids, a single token type, and a two-layer classification head on `<s>`.

use burn::tensor::{Device, Tensor, activation};

use super::EncoderInput;
use super::bert::BertEncoder;
use crate::config::EncoderConfig;
use crate::error::Result;
use crate::load::Weights;
use crate::nn::Linear;
use crate::tokenize::Batch;

/// HF's `create_position_ids_from_input_ids`: positions count non-padding
/// tokens from `padding_idx + 1`; padding tokens get `padding_idx`.
pub fn positions(batch: &Batch, padding_idx: u32) -> Vec<i64> {
    let mut out = Vec::with_capacity(batch.ids.len());
    for row in batch.ids.chunks(batch.cols) {
        let mut count = 0i64;
        for &id in row {
            if id != padding_idx {
                count += 1;
                out.push(count + padding_idx as i64);
            } else {
                out.push(padding_idx as i64);
            }
        }
    }
    out
}

fn encoder_input(encoder: &BertEncoder, batch: &Batch, padding_idx: u32) -> Result<EncoderInput> {
    let pos = positions(batch, padding_idx);
    encoder.check_positions(&pos)?;
    let mut input = EncoderInput::new(batch, pos);
    // XLM-R tokenizers do not return token_type_ids; the model uses zeros.
    input.token_types = vec![0; input.ids.len()];
    Ok(input)
}

/// `XLMRobertaForSequenceClassification`.
pub struct XlmRobertaForSequenceClassification {
    encoder: BertEncoder,
    dense: Linear,
    out_proj: Linear,
    padding_idx: u32,
}

impl XlmRobertaForSequenceClassification {
    pub fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            encoder: BertEncoder::load(w, "roberta.", c, dev)?,
            dense: Linear::load(w, "classifier.dense", h, h, dev)?,
            out_proj: Linear::load(w, "classifier.out_proj", h, c.num_labels(), dev)?,
            padding_idx: c.pad_token_id.unwrap_or(1),
        })
    }

    /// `[batch, num_labels]` logits.
    pub fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<2>> {
        let input = encoder_input(&self.encoder, batch, self.padding_idx)?;
        let cls = self.encoder.forward(&input, dev).select(0, input.packing.first_tokens(dev));
        Ok(self.out_proj.forward(activation::tanh(self.dense.forward(cls))))
    }
}

/// A bare XLM-R encoder (`XLMRobertaModel`, e.g. bge-m3) for embeddings.
pub struct XlmRobertaModel {
    encoder: BertEncoder,
    padding_idx: u32,
}

impl XlmRobertaModel {
    pub fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let prefix = if w.contains("roberta.embeddings.word_embeddings.weight") { "roberta." } else { "" };
        Ok(Self {
            encoder: BertEncoder::load(w, prefix, c, dev)?,
            padding_idx: c.pad_token_id.unwrap_or(1),
        })
    }

    /// `[batch, seq, hidden]` last hidden states.
    pub fn forward(&self, batch: &Batch, dev: &Device) -> Result<Tensor<3>> {
        let input = encoder_input(&self.encoder, batch, self.padding_idx)?;
        Ok(input.packing.unpack(self.encoder.forward(&input, dev)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ids_match_hf() {
        // Two rows, pad id 1: [<s> a b </s>] and [<s> a <pad> <pad>].
        let b = Batch {
            ids: vec![0, 5, 6, 2, 0, 5, 1, 1],
            type_ids: vec![0; 8],
            attention_mask: vec![1, 1, 1, 1, 1, 1, 0, 0],
            rows: 2,
            cols: 4,
        };
        assert_eq!(positions(&b, 1), vec![2, 3, 4, 5, 2, 3, 1, 1]);
    }
}
