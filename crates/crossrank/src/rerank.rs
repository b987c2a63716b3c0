//! `Reranker`: FlagReranker's `compute_score` for cross-encoders.

use burn::tensor::{Device, Tensor};

use crate::config::{Architecture, EncoderConfig};
use crate::error::{Error, Result};
use crate::load::Checkpoint;
use crate::quant::WeightDtype;
use crate::models::bert::BertForSequenceClassification;
use crate::models::gemma::{Gemma, GemmaConfig};
use crate::models::minicpm::{MiniCpm, MiniCpmConfig};
use crate::models::xlm_roberta::XlmRobertaForSequenceClassification;
use crate::tokenize::{Encoded, LlmTemplate, PairTokenizer};
use crate::{block, longest_first, read_f32};

/// Options of `compute_score`, with FlagReranker's defaults.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Maximum tokens of a (query, passage) pair, special tokens included. Default 512.
    pub max_length: usize,
    /// Maximum tokens of the query; default `max_length * 3 / 4`.
    pub query_max_length: Option<usize>,
    /// Pairs per forward pass. Default 128.
    pub batch_size: usize,
    /// Token budget of a forward pass: a batch also stops growing before
    /// its padded size (pairs × longest pair) would pass this, so many short
    /// pairs share a pass and long ones do not exhaust device memory (a
    /// pair longer than the budget runs alone). Default `None`: batches of
    /// `batch_size`, as FlagEmbedding. Scores do not depend on batching.
    pub max_batch_tokens: Option<usize>,
    /// Map logits through a sigmoid. Default false.
    pub normalize: bool,
    /// LLM rerankers: the prompt after the pair (FlagLLMReranker's default when `None`).
    pub prompt: Option<String>,
    /// Layer-wise rerankers: which layers score (default: the last).
    pub cutoff_layers: Option<Vec<usize>>,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            max_length: 512,
            query_max_length: None,
            batch_size: 128,
            max_batch_tokens: None,
            normalize: false,
            prompt: None,
            cutoff_layers: None,
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
        if self.max_batch_tokens == Some(0) {
            return Err(Error::InvalidInput("max_batch_tokens must be at least 1".into()));
        }
        Ok(())
    }
}

/// FlagEmbedding's batching — indices longest first, `batch_size` at a
/// time — with an optional cap on each batch's padded tokens (see
/// `ScoreOptions::max_batch_tokens`). Longest first, a batch's padded size
/// is its length times its first pair's length.
fn batches(lens: &[usize], batch_size: usize, max_tokens: Option<usize>) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in longest_first(lens) {
        match out.last_mut() {
            Some(b) if b.len() < batch_size && max_tokens.is_none_or(|m| (b.len() + 1) * lens[b[0]] <= m) => b.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

/// One reranked document.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ranked {
    /// Position of the document in the input.
    pub index: usize,
    pub score: f32,
}

enum Model {
    Bert(BertForSequenceClassification),
    XlmRoberta(XlmRobertaForSequenceClassification),
    Gemma(Gemma),
    MiniCpm(MiniCpm),
}

/// A reranker on one device: a cross-encoder (BERT, XLM-R) or an LLM
/// reranker (Gemma, layer-wise MiniCPM), picked from `config.json`.
pub struct Reranker {
    model: Model,
    tokenizer: PairTokenizer,
    device: Device,
    architecture: Architecture,
    /// LLM rerankers: the token whose logit scores ("Yes").
    score_token: Option<u32>,
}

impl Reranker {
    /// Load a checkpoint (config, weights, tokenizer) onto `device`, weights
    /// in f32 (a quantized checkpoint stays quantized).
    pub fn load(ck: &Checkpoint, device: &Device) -> Result<Self> {
        Self::load_with_dtype(ck, device, WeightDtype::F32)
    }

    /// Load with weights stored as `dtype` on the device: q8/q4 quantize the
    /// linear weights and the embedding table at load unless the checkpoint
    /// already is quantized.
    pub fn load_with_dtype(ck: &Checkpoint, device: &Device, dtype: WeightDtype) -> Result<Self> {
        let weights = || ck.weights().map(|w| w.with_dtype(dtype));
        let config_json = ck.read("config.json")?;
        let arch = Architecture::from_config_json(&config_json)?;
        let tokenizer = PairTokenizer::from_checkpoint(ck)?;
        let (model, score_token) = match arch {
            Architecture::GemmaForCausalLM => {
                let cfg = GemmaConfig::from_json(&config_json)?;
                // FlagLLMReranker: yes_loc = tokenizer('Yes', add_special_tokens=False)['input_ids'][0]
                let yes = tokenizer.first_token("Yes")?;
                (Model::Gemma(Gemma::load(&weights()?, cfg, yes, device)?), Some(yes))
            }
            Architecture::LayerWiseMiniCpmForCausalLM => {
                let cfg = MiniCpmConfig::from_json(&config_json)?;
                (Model::MiniCpm(MiniCpm::load(&weights()?, cfg, device)?), None)
            }
            a if a.is_cross_encoder() => {
                let config = EncoderConfig::from_json(&config_json)?;
                if config.num_labels() != 1 {
                    return Err(Error::config(
                        "config.json",
                        format!("num_labels is {}; a reranker has exactly one output", config.num_labels()),
                    ));
                }
                let weights = weights()?;
                let m = if a == Architecture::BertForSequenceClassification {
                    Model::Bert(BertForSequenceClassification::load(&weights, &config, device)?)
                } else {
                    Model::XlmRoberta(XlmRobertaForSequenceClassification::load(&weights, &config, device)?)
                };
                (m, None)
            }
            a => {
                return Err(Error::InvalidInput(format!(
                    "{a:?} is an encoder without a classification head: it embeds, it does not score pairs"
                )));
            }
        };
        tracing::info!(?arch, "model loaded");
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            architecture: arch,
            score_token,
        })
    }

    /// Which architecture this reranker runs.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// LLM rerankers: the id of the token whose logit is the score.
    pub fn score_token(&self) -> Option<u32> {
        self.score_token
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &PairTokenizer {
        &self.tokenizer
    }

    fn llm_template(&self, opts: &ScoreOptions) -> Result<Option<LlmTemplate>> {
        if self.architecture.is_llm() {
            Ok(Some(self.tokenizer.llm_template(opts.prompt.as_deref())?))
        } else {
            Ok(None)
        }
    }

    /// Tokenize pairs exactly as FlagEmbedding does (before padding):
    /// FlagReranker for cross-encoders, FlagLLMReranker's template for LLMs.
    pub fn encode<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<Encoded>> {
        opts.validate()?;
        let qmax = opts.query_max_length();
        let template = self.llm_template(opts)?;
        pairs
            .iter()
            .map(|(q, p)| match &template {
                Some(t) => self.tokenizer.encode_llm_pair(q.as_ref(), p.as_ref(), opts.max_length, qmax, t),
                None => self.tokenizer.encode_pair(q.as_ref(), p.as_ref(), opts.max_length, qmax),
            })
            .collect()
    }

    /// The layers a layer-wise model will score with these options.
    pub fn cutoff_layers(&self, opts: &ScoreOptions) -> Result<Vec<usize>> {
        match &self.model {
            Model::MiniCpm(m) => m.config().resolve_cutoffs(opts.cutoff_layers.as_deref()),
            _ if opts.cutoff_layers.is_some() => Err(Error::InvalidInput(format!(
                "cutoff_layers applies to layer-wise rerankers, not {:?}",
                self.architecture
            ))),
            _ => Ok(vec![]),
        }
    }

    /// Scores of one batch, one tensor per scoring layer.
    fn forward(&self, items: &[&Encoded], cutoffs: &[usize]) -> Result<Vec<Tensor<1>>> {
        let logits = |t: Tensor<2>| {
            let b = t.dims()[0];
            vec![t.reshape([b])]
        };
        match &self.model {
            Model::Bert(m) => m.forward(&self.tokenizer.pad(items), &self.device).map(logits),
            Model::XlmRoberta(m) => m.forward(&self.tokenizer.pad(items), &self.device).map(logits),
            // FlagLLMReranker's Collater pads to a multiple of 8.
            Model::Gemma(m) => Ok(vec![m.forward(&self.tokenizer.pad_to_multiple(items, 8), &self.device)?]),
            Model::MiniCpm(m) => m.forward(&self.tokenizer.pad_to_multiple(items, 8), cutoffs, &self.device),
        }
    }

    /// Scores per scoring layer (one list for every model but the layer-wise
    /// one, which gives one list per resolved cutoff layer), in input order.
    pub fn compute_score_layers<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
    ) -> Result<Vec<Vec<f32>>> {
        block(self.compute_score_layers_async(pairs, opts))
    }

    /// `compute_score_layers`, reading results back asynchronously (required
    /// on WebGPU).
    pub async fn compute_score_layers_async<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let cutoffs = self.cutoff_layers(opts)?;
        let encoded = self.encode(pairs, opts)?;
        let lens: Vec<usize> = encoded.iter().map(Encoded::len).collect();
        let mut layers: Vec<Vec<f32>> = Vec::new();
        for chunk in batches(&lens, opts.batch_size, opts.max_batch_tokens) {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            let outs = self.forward(&items, &cutoffs)?;
            if layers.is_empty() {
                layers = vec![vec![0f32; encoded.len()]; outs.len()];
            }
            for (layer, out) in layers.iter_mut().zip(outs) {
                for (&i, s) in chunk.iter().zip(read_f32(out).await?) {
                    layer[i] = if opts.normalize { sigmoid(s) } else { s };
                }
            }
        }
        if layers.is_empty() {
            layers.push(Vec::new());
        }
        Ok(layers)
    }

    /// One score per (query, passage) pair, in input order: raw logits, or
    /// sigmoids with `normalize`. A layer-wise model must be asked for a
    /// single layer here (see `compute_score_layers`).
    pub fn compute_score<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<f32>> {
        block(self.compute_score_async(pairs, opts))
    }

    /// `compute_score`, reading results back asynchronously.
    pub async fn compute_score_async<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
    ) -> Result<Vec<f32>> {
        let mut layers = self.compute_score_layers_async(pairs, opts).await?;
        if layers.len() != 1 {
            return Err(Error::InvalidInput(format!(
                "{} cutoff layers give {} score lists; use compute_score_layers",
                layers.len(),
                layers.len()
            )));
        }
        Ok(layers.remove(0))
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
    fn batches_follow_flagembedding_and_the_token_budget() {
        let lens = [10, 50, 30, 50, 5, 20];
        // FlagEmbedding: longest first (stable), batch_size at a time.
        assert_eq!(batches(&lens, 4, None), vec![vec![1, 3, 2, 5], vec![0, 4]]);
        // Budget 100 tokens: two 50s fill a batch; then 30×3 = 90 ≤ 100.
        assert_eq!(batches(&lens, 4, Some(100)), vec![vec![1, 3], vec![2, 5, 0], vec![4]]);
        // A pair over the budget runs alone.
        assert_eq!(batches(&lens, 8, Some(40)), vec![vec![1], vec![3], vec![2], vec![5, 0], vec![4]]);
        assert!(batches(&[], 4, Some(10)).is_empty());
    }

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
