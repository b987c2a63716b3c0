//! `Reranker`: FlagReranker's / FlagLLMReranker's `compute_score` — tokenize
//! as FlagEmbedding does, batch, run the model, read the scores back — and
//! the one ranking rule every front end uses.

use burn::tensor::Device;
use serde::Deserialize;

use crate::batching::batches;
use crate::checkpoint::Checkpoint;
use crate::device::{block, read_f32};
use crate::error::{Error, Result};
use crate::models::{Architecture, InputLimits, Reranking};
use crate::quant::WeightDtype;
use crate::tokenize::{Encoded, LlmTemplate, PairTokenizer};

const DEFAULT_MAX_LENGTH: usize = 512;
const DEFAULT_BATCH_SIZE: usize = 128;

fn default_max_length() -> usize {
    DEFAULT_MAX_LENGTH
}
fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

/// Options of `compute_score`, with FlagReranker's defaults. The one
/// definition of the scoring options: the CLI's flags (feature `clap`), the
/// npm package's options object (camelCase; snake_case accepted too) and
/// JSON requests all deserialize into it, so defaults and names cannot drift.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreOptions {
    /// Maximum tokens of a (query, passage) pair, special tokens included.
    #[serde(alias = "max_length", default = "default_max_length")]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_MAX_LENGTH))]
    pub max_length: usize,
    /// Maximum tokens of the query (default max_length * 3 / 4).
    #[serde(alias = "query_max_length")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub query_max_length: Option<usize>,
    /// Pairs per forward pass.
    #[serde(alias = "batch_size", default = "default_batch_size")]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_BATCH_SIZE))]
    pub batch_size: usize,
    /// Also cap each forward pass at this many padded tokens (pairs ×
    /// longest pair): many short pairs share a pass, long ones do not
    /// exhaust device memory (a pair longer than this runs alone). Scores
    /// do not depend on batching.
    #[serde(alias = "max_batch_tokens")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_batch_tokens: Option<usize>,
    /// Map logits through a sigmoid into [0, 1].
    #[cfg_attr(feature = "clap", arg(long))]
    pub normalize: bool,
    /// LLM rerankers: the prompt after the pair (default: FlagLLMReranker's).
    #[cfg_attr(feature = "clap", arg(long))]
    pub prompt: Option<String>,
    /// Layer-wise rerankers: the scoring layers, e.g. 8,28 (default: the
    /// last); several give one score list per layer.
    #[serde(alias = "cutoff_layers")]
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    pub cutoff_layers: Option<Vec<usize>>,
    /// Passages longer than fits: `truncate` cuts their end (FlagEmbedding's
    /// behaviour); `maxp` scores windows of the passage that fill
    /// max_length, the query in each, and keeps the best window's score.
    #[serde(alias = "long_passages")]
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = LongPassages::Truncate))]
    pub long_passages: LongPassages,
    /// maxp: passage tokens from one window's start to the next (default:
    /// half a window, so windows overlap by half).
    #[serde(alias = "passage_stride")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub passage_stride: Option<usize>,
}

/// What to do with a passage longer than `max_length` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LongPassages {
    /// Cut the passage's end (FlagEmbedding).
    #[default]
    Truncate,
    /// Score overlapping windows and keep the best (MaxP, Dai and Callan,
    /// SIGIR 2019).
    Maxp,
}

/// A passage's score and, with `maxp`, the window that scored it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PassageScore {
    pub score: f32,
    /// `maxp`: the best window's span of the passage, as byte offsets
    /// (`start..end`); the whole passage when it fitted in one window.
    /// `None` with `truncate`.
    pub span: Option<(usize, usize)>,
    /// Windows scored for this passage (1 with `truncate`).
    pub windows: usize,
}

impl PassageScore {
    /// `span` in Unicode code points (how Python and JSON clients index).
    pub fn char_span(&self, passage: &str) -> Option<(usize, usize)> {
        self.span.map(|(a, b)| (char_index(passage, a), char_index(passage, b)))
    }
    /// `span` in UTF-16 code units (how JavaScript indexes strings).
    pub fn utf16_span(&self, passage: &str) -> Option<(usize, usize)> {
        let at = |i: usize| passage.get(..i).map_or(0, |s| s.encode_utf16().count());
        self.span.map(|(a, b)| (at(a), at(b)))
    }
    /// The best window in code points, as the CLI reports it.
    pub fn char_window(&self, passage: &str) -> Option<Window> {
        self.char_span(passage).map(|(start, end)| Window { start, end, windows: self.windows })
    }
    /// The best window in UTF-16 code units, as JavaScript reports it.
    pub fn utf16_window(&self, passage: &str) -> Option<Window> {
        self.utf16_span(passage).map(|(start, end)| Window { start, end, windows: self.windows })
    }
}

/// A front end's report of a passage's best window: `start..end` in that
/// front end's string indices, and how many windows were scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub windows: usize,
}

fn char_index(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(0, |s| s.chars().count())
}

/// The inputs of a batch of pairs, several per pair with `maxp`: run
/// `items` through the model (in any batches, mixed with other requests'),
/// then [`PassageWindows::best`] gives each pair its score.
pub struct PassageWindows {
    /// Every window's input (the caller may take them to run elsewhere).
    pub items: Vec<Encoded>,
    owner: Vec<usize>,
    spans: Vec<(usize, usize)>,
    pairs: usize,
    maxp: bool,
}

impl PassageWindows {
    /// The pairs these windows came from.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// Each pair's best window, given one raw logit per item (in `items`
    /// order), sigmoid-mapped with `normalize`. A non-finite logit fails
    /// with its pair's index. Ties keep the earliest window.
    pub fn best(&self, logits: &[f32], normalize: bool) -> Result<Vec<PassageScore>> {
        if logits.len() != self.owner.len() {
            return Err(Error::InvalidInput(format!("{} scores for {} windows", logits.len(), self.owner.len())));
        }
        let mut out: Vec<Option<PassageScore>> = vec![None; self.pairs];
        for ((&pair, &span), &s) in self.owner.iter().zip(&self.spans).zip(logits) {
            if !s.is_finite() {
                return Err(Error::NonFinite { index: pair, value: s });
            }
            let s = if normalize { sigmoid(s) } else { s };
            let slot = &mut out[pair];
            let windows = slot.map_or(0, |b| b.windows) + 1;
            match slot {
                Some(b) if b.score >= s => b.windows = windows,
                _ => *slot = Some(PassageScore { score: s, span: self.maxp.then_some(span), windows }),
            }
        }
        out.into_iter().enumerate().map(|(i, b)| b.ok_or_else(|| Error::InvalidInput(format!("pair {i} has no window")))).collect()
    }
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            max_length: DEFAULT_MAX_LENGTH,
            query_max_length: None,
            batch_size: DEFAULT_BATCH_SIZE,
            max_batch_tokens: None,
            normalize: false,
            prompt: None,
            cutoff_layers: None,
            long_passages: LongPassages::Truncate,
            passage_stride: None,
        }
    }
}

impl ScoreOptions {
    fn query_max_length(&self) -> usize {
        // max_length * 3 / 4 without overflowing for huge values.
        let m = self.max_length;
        self.query_max_length.unwrap_or(m / 4 * 3 + m % 4 * 3 / 4)
    }

    fn validate(&self) -> Result<()> {
        if self.max_length == 0 {
            return Err(Error::InvalidInput("max_length must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be at least 1".into()));
        }
        if self.passage_stride == Some(0) {
            return Err(Error::InvalidInput("passage_stride must be at least 1".into()));
        }
        if self.max_batch_tokens == Some(0) {
            return Err(Error::InvalidInput("max_batch_tokens must be at least 1".into()));
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

/// Scores best first (ties and NaNs keep input order; NaNs last), at most
/// `top_k`: the one ranking rule of the CLI, the server and the npm package.
pub fn rank(scores: &[f32], top_k: Option<usize>) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = scores.iter().enumerate().map(|(index, &score)| Ranked { index, score }).collect();
    ranked.sort_by(|a, b| match (a.score.is_nan(), b.score.is_nan()) {
        (false, false) => b.score.total_cmp(&a.score),
        (x, y) => x.cmp(&y),
    });
    ranked.truncate(top_k.unwrap_or(ranked.len()));
    ranked
}

/// The logistic function `normalize` applies (FlagReranker's sigmoid).
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A reranker on one device: a cross-encoder (BERT, XLM-R) or an LLM
/// reranker (Gemma, layer-wise MiniCPM), picked from `config.json`.
pub struct Reranker {
    model: Reranking,
    tokenizer: PairTokenizer,
    device: Device,
    architecture: Architecture,
    score_token: Option<u32>,
    limits: InputLimits,
}

impl Reranker {
    /// Load a checkpoint (config, weights, tokenizer) onto `device`, weights
    /// in f32 (a quantized checkpoint stays quantized).
    pub fn load(ck: &Checkpoint, device: &Device) -> Result<Self> {
        Self::load_with_dtype(ck, device, WeightDtype::F32)
    }

    /// Load with weights stored as `dtype` on the device: f16, or q8/q4
    /// quantizing the linear weights and the embedding table at load unless
    /// the checkpoint already is quantized.
    pub fn load_with_dtype(ck: &Checkpoint, device: &Device, dtype: WeightDtype) -> Result<Self> {
        let config = ck.read("config.json")?;
        let architecture = Architecture::from_config_json(&config)?;
        let mut tokenizer = PairTokenizer::from_checkpoint(ck)?;
        let (model, score_token, limits) = Reranking::load(ck, &config, architecture, &tokenizer, dtype, device)?;
        tokenizer.set_token_cap(limits.max_tokens);
        tracing::info!(?architecture, "model loaded");
        Ok(Self { model, tokenizer, device: device.clone(), architecture, score_token, limits })
    }

    /// Which architecture this reranker runs.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// LLM rerankers: the id of the token whose logit is the score.
    pub fn score_token(&self) -> Option<u32> {
        self.score_token
    }

    fn llm_template(&self, opts: &ScoreOptions) -> Result<Option<LlmTemplate>> {
        if self.architecture.is_llm() { Ok(Some(self.tokenizer.llm_template(opts.prompt.as_deref())?)) } else { Ok(None) }
    }

    /// The longest input the model takes, in tokens.
    pub fn max_input_tokens(&self) -> usize {
        self.limits.max_tokens
    }

    /// Tokenize pairs exactly as FlagEmbedding does (before padding):
    /// FlagReranker for cross-encoders, FlagLLMReranker's template for LLMs.
    /// Each pair is checked against the model (non-empty, ids within its
    /// vocabularies, no longer than its positions).
    pub fn encode<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<Encoded>> {
        opts.validate()?;
        let qmax = opts.query_max_length();
        let template = self.llm_template(opts)?;
        let encoded = pairs
            .iter()
            .map(|(q, p)| match &template {
                Some(t) => self.tokenizer.encode_llm_pair(q.as_ref(), p.as_ref(), opts.max_length, qmax, t),
                None => self.tokenizer.encode_pair(q.as_ref(), p.as_ref(), opts.max_length, qmax),
            })
            .collect::<Result<Vec<_>>>()?;
        self.limits.check(&encoded, &self.tokenizer)?;
        Ok(encoded)
    }

    /// The model inputs for `pairs` under `opts.long_passages`: one per pair
    /// with `truncate` (exactly [`Reranker::encode`]'s), one per window with
    /// `maxp`. Each is checked against the model as `encode` checks.
    pub fn encode_windows<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<PassageWindows> {
        if opts.long_passages == LongPassages::Truncate {
            let items = self.encode(pairs, opts)?;
            return Ok(PassageWindows {
                owner: (0..items.len()).collect(),
                spans: vec![(0, 0); items.len()],
                items,
                pairs: pairs.len(),
                maxp: false,
            });
        }
        opts.validate()?;
        let qmax = opts.query_max_length();
        let template = self.llm_template(opts)?;
        let mut w = PassageWindows { items: Vec::new(), owner: Vec::new(), spans: Vec::new(), pairs: pairs.len(), maxp: true };
        for (i, (q, p)) in pairs.iter().enumerate() {
            let windows = match &template {
                Some(t) => self.tokenizer.encode_llm_pair_windows(q.as_ref(), p.as_ref(), opts.max_length, qmax, t, opts.passage_stride)?,
                None => self.tokenizer.encode_pair_windows(q.as_ref(), p.as_ref(), opts.max_length, qmax, opts.passage_stride)?,
            };
            for (e, span) in windows {
                w.items.push(e);
                w.owner.push(i);
                w.spans.push(span);
            }
        }
        self.limits.check(&w.items, &self.tokenizer)?;
        Ok(w)
    }

    /// The layers a layer-wise model will score with these options (empty
    /// for every other model).
    pub fn cutoff_layers(&self, opts: &ScoreOptions) -> Result<Vec<usize>> {
        self.model.cutoff_layers(opts.cutoff_layers.as_deref(), self.architecture)
    }

    /// Scores per scoring layer (one list for every model but the layer-wise
    /// one, which gives one list per resolved cutoff layer), in input order.
    pub fn compute_score_layers<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<Vec<f32>>> {
        block(self.compute_score_layers_async(pairs, opts))
    }

    /// `compute_score_layers`, reading results back asynchronously (required
    /// on WebGPU).
    pub async fn compute_score_layers_async<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let layers = self.compute_passage_scores_async(pairs, opts).await?;
        Ok(layers.into_iter().map(|l| l.into_iter().map(|p| p.score).collect()).collect())
    }

    /// Scores per scoring layer with, under `maxp`, each passage's best
    /// window (its span and how many windows were scored).
    pub fn compute_passage_scores<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
    ) -> Result<Vec<Vec<PassageScore>>> {
        block(self.compute_passage_scores_async(pairs, opts))
    }

    /// `compute_passage_scores`, reading results back asynchronously.
    pub async fn compute_passage_scores_async<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
    ) -> Result<Vec<Vec<PassageScore>>> {
        let cutoffs = self.cutoff_layers(opts)?;
        let windows = self.encode_windows(pairs, opts)?;
        let encoded = &windows.items;
        let lens: Vec<usize> = encoded.iter().map(Encoded::len).collect();
        let mut logits: Vec<Vec<f32>> = vec![vec![0f32; encoded.len()]; cutoffs.len().max(1)];
        for chunk in batches(&lens, opts.batch_size, opts.max_batch_tokens) {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            let outs = self.score_encoded_async(&items, &cutoffs).await?;
            if outs.len() != logits.len() {
                return Err(Error::InvalidInput(format!("the model gave {} score lists for {} layers", outs.len(), logits.len())));
            }
            for (layer, out) in logits.iter_mut().zip(outs) {
                for (&i, s) in chunk.iter().zip(out) {
                    layer[i] = s;
                }
            }
        }
        logits.iter().map(|l| windows.best(l, opts.normalize)).collect()
    }

    /// One forward pass over pairs already encoded by [`Reranker::encode`]
    /// (from any number of requests: the server batches across them): raw
    /// logits, one list per scoring layer (`cutoffs` from
    /// [`Reranker::cutoff_layers`]), in the order of `items`. Not checked
    /// for finiteness: the caller decides whose input a NaN fails.
    pub fn score_encoded(&self, items: &[&Encoded], cutoffs: &[usize]) -> Result<Vec<Vec<f32>>> {
        block(self.score_encoded_async(items, cutoffs))
    }

    /// `score_encoded`, reading results back asynchronously.
    pub async fn score_encoded_async(&self, items: &[&Encoded], cutoffs: &[usize]) -> Result<Vec<Vec<f32>>> {
        if items.is_empty() {
            return Ok(vec![Vec::new(); cutoffs.len().max(1)]);
        }
        let mut out = Vec::new();
        for t in self.model.forward(items, &self.tokenizer, cutoffs, &self.device)? {
            out.push(read_f32(t).await?);
        }
        Ok(out)
    }

    /// One score per (query, passage) pair, in input order: raw logits, or
    /// sigmoids with `normalize`. A layer-wise model must be asked for a
    /// single layer here (see `compute_score_layers`).
    pub fn compute_score<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<f32>> {
        block(self.compute_score_async(pairs, opts))
    }

    /// `compute_score`, reading results back asynchronously.
    pub async fn compute_score_async<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<f32>> {
        single_layer(self.compute_score_layers_async(pairs, opts).await?)
    }

    /// Score `docs` against `query` and return them best first, at most
    /// `top_k` (ties keep input order, NaN scores go last).
    pub fn rerank<D: AsRef<str>>(&self, query: &str, docs: &[D], top_k: Option<usize>, opts: &ScoreOptions) -> Result<Vec<Ranked>> {
        block(self.rerank_async(query, docs, top_k, opts))
    }

    /// `rerank`, reading results back asynchronously.
    pub async fn rerank_async<D: AsRef<str>>(
        &self,
        query: &str,
        docs: &[D],
        top_k: Option<usize>,
        opts: &ScoreOptions,
    ) -> Result<Vec<Ranked>> {
        Ok(self.rerank_passages_async(query, docs, top_k, opts).await?.into_iter().map(|(r, _)| r).collect())
    }

    /// `rerank` with each document's [`PassageScore`] (under `maxp`, the
    /// window that scored).
    pub fn rerank_passages<D: AsRef<str>>(
        &self,
        query: &str,
        docs: &[D],
        top_k: Option<usize>,
        opts: &ScoreOptions,
    ) -> Result<Vec<(Ranked, PassageScore)>> {
        block(self.rerank_passages_async(query, docs, top_k, opts))
    }

    /// `rerank_passages`, reading results back asynchronously.
    pub async fn rerank_passages_async<D: AsRef<str>>(
        &self,
        query: &str,
        docs: &[D],
        top_k: Option<usize>,
        opts: &ScoreOptions,
    ) -> Result<Vec<(Ranked, PassageScore)>> {
        let pairs: Vec<(&str, &str)> = docs.iter().map(|d| (query, d.as_ref())).collect();
        let best = single_layer(self.compute_passage_scores_async(&pairs, opts).await?)?;
        let scores: Vec<f32> = best.iter().map(|b| b.score).collect();
        Ok(rank(&scores, top_k).into_iter().map(|r| (r, best[r.index])).collect())
    }
}

/// The one score list of a single-layer request.
fn single_layer<T>(mut layers: Vec<Vec<T>>) -> Result<Vec<T>> {
    if layers.len() != 1 {
        return Err(Error::InvalidInput(format!(
            "{} cutoff layers give {} score lists; use compute_score_layers (rerank needs a single cutoff layer)",
            layers.len(),
            layers.len()
        )));
    }
    Ok(layers.remove(0))
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

    #[test]
    fn options_deserialize_with_defaults_in_either_case() {
        let o: ScoreOptions = serde_json::from_str(r#"{"maxLength": 64, "batch_size": 3, "cutoffLayers": [8]}"#).unwrap();
        assert_eq!(o, ScoreOptions { max_length: 64, batch_size: 3, cutoff_layers: Some(vec![8]), ..Default::default() });
        let o: ScoreOptions = serde_json::from_str(r#"{"query_max_length": null, "normalize": true}"#).unwrap();
        assert_eq!(o, ScoreOptions { normalize: true, ..Default::default() });
        let e = serde_json::from_str::<ScoreOptions>(r#"{"maxLenght": 64}"#).unwrap_err();
        assert!(e.to_string().contains("maxLenght"), "{e}");
    }
}
