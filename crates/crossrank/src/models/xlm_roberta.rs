//! XLM-RoBERTa (`XLMRobertaForSequenceClassification`): bge-reranker-base,
//! -large and -v2-m3. BERT's encoder and config with RoBERTa's
//! padding-aware position ids, a single token type, and a two-layer
//! classification head on `<s>`.

use burn::tensor::{Device, Tensor, activation};

use super::bert::{BertEncoder, EncoderConfig, EncoderInput};
use crate::error::Result;
use crate::nn::{Linear, Packing};
use crate::tokenize::Encoded;
use crate::weights::Weights;

/// HF's `create_position_ids_from_input_ids` for one sequence: positions
/// count non-padding tokens from `padding_idx + 1`; a padding token gets
/// `padding_idx` (only a literal pad token in the text lands here: the
/// sequence itself is unpadded).
fn positions(ids: &[u32], padding_idx: u32) -> Vec<i64> {
    let mut count = 0i64;
    ids.iter()
        .map(|&id| {
            if id != padding_idx {
                count += 1;
                count + i64::from(padding_idx)
            } else {
                i64::from(padding_idx)
            }
        })
        .collect()
}

/// XLM-R tokenizers return no token_type_ids; the model uses zeros.
fn encoder_input(encoder: &BertEncoder, items: &[&Encoded], padding_idx: u32) -> Result<EncoderInput> {
    let input = EncoderInput::new(items, |ids| positions(ids, padding_idx), false);
    encoder.check_positions(&input.positions)?;
    Ok(input)
}

/// `XLMRobertaForSequenceClassification`.
pub(crate) struct XlmRobertaForSequenceClassification {
    encoder: BertEncoder,
    dense: Linear,
    out_proj: Linear,
    padding_idx: u32,
}

impl XlmRobertaForSequenceClassification {
    pub(crate) fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            encoder: BertEncoder::load(w, "roberta.", c, dev)?,
            dense: Linear::load(w, "classifier.dense", h, h, dev)?,
            out_proj: Linear::load(w, "classifier.out_proj", h, c.num_labels(), dev)?,
            padding_idx: c.pad_token_id.unwrap_or(1),
        })
    }

    /// `[batch, num_labels]` logits.
    pub(crate) fn forward(&self, items: &[&Encoded], dev: &Device) -> Result<Tensor<2>> {
        let input = encoder_input(&self.encoder, items, self.padding_idx)?;
        let cls = self.encoder.forward(&input, dev).select(0, input.packing.first_tokens(dev));
        Ok(self.out_proj.forward(activation::tanh(self.dense.forward(cls))))
    }
}

/// A bare XLM-R encoder (`XLMRobertaModel`, e.g. bge-m3) for embeddings.
pub(crate) struct XlmRobertaModel {
    encoder: BertEncoder,
    padding_idx: u32,
}

impl XlmRobertaModel {
    pub(crate) fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let prefix = if w.contains("roberta.embeddings.word_embeddings.weight") { "roberta." } else { "" };
        Ok(Self { encoder: BertEncoder::load(w, prefix, c, dev)?, padding_idx: c.pad_token_id.unwrap_or(1) })
    }

    /// Last hidden states, packed (`[packed rows, hidden]`), and their packing.
    pub(crate) fn forward(&self, items: &[&Encoded], dev: &Device) -> Result<(Tensor<2>, Packing)> {
        let input = encoder_input(&self.encoder, items, self.padding_idx)?;
        Ok((self.encoder.forward(&input, dev), input.packing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ids_match_hf() {
        // Pad id 1: [<s> a b </s>], and a literal <pad> inside a sequence.
        assert_eq!(positions(&[0, 5, 6, 2], 1), vec![2, 3, 4, 5]);
        assert_eq!(positions(&[0, 5, 1, 6], 1), vec![2, 3, 1, 4]);
    }
}
