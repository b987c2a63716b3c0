//! `Reranker`: FlagReranker's `compute_score` for cross-encoders.

use burn::tensor::{Device, Tensor};

use crate::config::{Architecture, EncoderConfig};
use crate::error::{Error, Result};
use crate::load::Checkpoint;
use crate::models::bert::BertForSequenceClassification;
use crate::models::xlm_roberta::XlmRobertaForSequenceClassification;
use crate::tokenize::{Encoded, PairTokenizer};
use crate::{longest_first, read_f32};

/// Options of `compute_score`, with FlagReranker's defaults.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Maximum tokens of a (query, passage) pair, special tokens included. Default 512.
    pub max_length: usize,
    /// Maximum tokens of the query; default `max_length * 3 / 4`.
    pub query_max_length: Option<usize>,
    /// Pairs per forward pass. Default 128.
    pub batch_size: usize,
    /// Map logits through a sigmoid. Default false.
    pub normalize: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            max_length: 512,
            query_max_length: None,
            batch_size: 128,
            normalize: false,
        }
    }
}

impl ScoreOptions {
    fn query_max_length(&self) -> usize {
        self.query_max_length.unwrap_or(self.max_length * 3 / 4)
    }

    fn validate(&self) -> Result<()> {
        if self.max_length == 0 {
            return Err(Error::InvalidInput("max_length must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be at least 1".into()));
        }
        Ok(())
    }
}

/// One reranked document.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ranked {
    /// Position of the document in the input.
    pub index: usize,
    pub score: f32,
}

enum CrossEncoder {
    Bert(BertForSequenceClassification),
    XlmRoberta(XlmRobertaForSequenceClassification),
}

/// A cross-encoder reranker on one device.
pub struct Reranker {
    model: CrossEncoder,
    tokenizer: PairTokenizer,
    device: Device,
    config: EncoderConfig,
}

impl Reranker {
    /// Load a checkpoint (config, weights, tokenizer) onto `device`.
    pub fn load(ck: &Checkpoint, device: &Device) -> Result<Self> {
        let config = EncoderConfig::from_json(&ck.read("config.json")?)?;
        let arch = config.architecture()?;
        if !arch.is_cross_encoder() {
            return Err(Error::InvalidInput(format!(
                "{arch:?} is an encoder without a classification head: it embeds, it does not score pairs"
            )));
        }
        if config.num_labels() != 1 {
            return Err(Error::config(
                "config.json",
                format!("num_labels is {}; a reranker has exactly one output", config.num_labels()),
            ));
        }
        let tokenizer = PairTokenizer::from_checkpoint(ck)?;
        let weights = ck.weights()?;
        let model = match arch {
            Architecture::BertForSequenceClassification => {
                CrossEncoder::Bert(BertForSequenceClassification::load(&weights, &config, device)?)
            }
            _ => CrossEncoder::XlmRoberta(XlmRobertaForSequenceClassification::load(&weights, &config, device)?),
        };
        tracing::info!(?arch, layers = config.num_hidden_layers, hidden = config.hidden_size, "model loaded");
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            config,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &PairTokenizer {
        &self.tokenizer
    }

    /// Tokenize pairs exactly as FlagReranker does (before padding).
    pub fn encode<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<Encoded>> {
        opts.validate()?;
        let qmax = opts.query_max_length();
        pairs
            .iter()
            .map(|(q, p)| self.tokenizer.encode_pair(q.as_ref(), p.as_ref(), opts.max_length, qmax))
            .collect()
    }

    fn logits(&self, items: &[&Encoded]) -> Result<Tensor<2>> {
        let batch = self.tokenizer.pad(items);
        match &self.model {
            CrossEncoder::Bert(m) => m.forward(&batch, &self.device),
            CrossEncoder::XlmRoberta(m) => m.forward(&batch, &self.device),
        }
    }

    /// One score per (query, passage) pair, in input order: raw logits, or
    /// sigmoids with `normalize`.
    pub fn compute_score<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<f32>> {
        let encoded = self.encode(pairs, opts)?;
        let order = longest_first(&encoded.iter().map(Encoded::len).collect::<Vec<_>>());
        let mut scores = vec![0f32; encoded.len()];
        for chunk in order.chunks(opts.batch_size) {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            let logits = read_f32(self.logits(&items)?)?;
            for (&i, s) in chunk.iter().zip(logits) {
                scores[i] = if opts.normalize { sigmoid(s) } else { s };
            }
        }
        Ok(scores)
    }

    /// Score `docs` against `query` and return them best first, at most `top_k`.
    pub fn rerank<D: AsRef<str>>(
        &self,
        query: &str,
        docs: &[D],
        top_k: Option<usize>,
        opts: &ScoreOptions,
    ) -> Result<Vec<Ranked>> {
        let pairs: Vec<(&str, &str)> = docs.iter().map(|d| (query, d.as_ref())).collect();
        let scores = self.compute_score(&pairs, opts)?;
        Ok(rank(&scores, top_k))
    }
}

/// Sort scores descending (NaN last) into `Ranked`, keep `top_k`.
pub fn rank(scores: &[f32], top_k: Option<usize>) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = scores.iter().enumerate().map(|(index, &score)| Ranked { index, score }).collect();
    ranked.sort_by(|a, b| match (a.score.is_nan(), b.score.is_nan()) {
        (false, false) => b.score.total_cmp(&a.score),
        (x, y) => x.cmp(&y),
    });
    ranked.truncate(top_k.unwrap_or(ranked.len()));
    ranked
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_sorts_descending_stably_and_truncates() {
        let r = rank(&[0.5, 2.0, f32::NAN, 2.0, -1.0], Some(3));
        assert_eq!(r.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 3, 0]);
        let r = rank(&[0.5, f32::NAN, 1.0], None);
        assert_eq!(r.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2, 0, 1]);
    }

    #[test]
    fn sigmoid_matches_reference_values() {
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!((sigmoid(2.0) - 0.880_797_1).abs() < 1e-6);
        assert!((sigmoid(-3.0) - 0.047_425_87).abs() < 1e-7);
    }
}
