//! `Reranker`: FlagReranker's / FlagLLMReranker's `compute_score` — tokenize
//! as FlagEmbedding does, batch, run the model, read the scores back.
//! Beside it: `options` (`ScoreOptions`), `windows` (`maxp`: a pair's
//! windows and its best one), `ranking` (the one ranking rule).

mod options;
mod ranking;
mod windows;

use burn::tensor::Device;

pub use options::{LongPassages, ScoreOptions};
pub use ranking::{Ranked, rank, sigmoid};
pub use windows::{PassageScore, PassageWindows, Window};

use crate::batching::batches;
use crate::checkpoint::Checkpoint;
use crate::device::{block, read_f32};
use crate::error::{Error, Result};
use crate::models::{Architecture, InputLimits, Reranking};
use crate::quant::WeightDtype;
use crate::tokenize::{Encoded, LlmTemplate, PairTokenizer, Qwen3Template};

/// A reranker on one device: a cross-encoder (BERT, XLM-R) or an LLM
/// reranker (Gemma, layer-wise MiniCPM, Qwen3), picked from `config.json`.
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

    fn template(&self, opts: &ScoreOptions) -> Result<Template> {
        Ok(if self.architecture.is_llm() {
            Template::Flag(self.tokenizer.llm_template(opts.prompt.as_deref())?)
        } else if self.architecture.is_qwen3_reranker() {
            // The card's 8192 by default, capped at the model's positions (a
            // longer limit asked for is the user's: a pair past the model's
            // positions then fails the length check, as for every model).
            let max_length = opts.max_length.unwrap_or(QWEN3_MAX_LENGTH.min(self.limits.max_tokens));
            Template::Qwen3(self.tokenizer.qwen3_template(opts.prompt.as_deref())?, max_length)
        } else {
            Template::CrossEncoder
        })
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
        let limits = opts.limits(self.architecture.is_llm());
        let template = self.template(opts)?;
        let encoded = pairs
            .iter()
            .map(|(q, p)| match &template {
                Template::Flag(t) => self.tokenizer.encode_llm_pair(q.as_ref(), p.as_ref(), limits, t),
                Template::Qwen3(t, max_length) => self.tokenizer.encode_qwen3_pair(
                    q.as_ref(),
                    p.as_ref(),
                    *max_length,
                    (limits.query_prefix, limits.passage_prefix),
                    t,
                ),
                Template::CrossEncoder => self.tokenizer.encode_pair(q.as_ref(), p.as_ref(), limits),
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
            return Ok(PassageWindows::whole(self.encode(pairs, opts)?));
        }
        opts.validate()?;
        let limits = opts.limits(self.architecture.is_llm());
        let template = self.template(opts)?;
        let mut w = PassageWindows::maxp(pairs.len());
        for (i, (q, p)) in pairs.iter().enumerate() {
            let (q, p) = (q.as_ref(), p.as_ref());
            let windows = match &template {
                Template::Flag(t) => self.tokenizer.encode_llm_pair_windows(q, p, limits, t, opts.passage_stride)?,
                Template::Qwen3(t, max_length) => self.tokenizer.encode_qwen3_pair_windows(
                    q,
                    p,
                    *max_length,
                    (limits.query_prefix, limits.passage_prefix),
                    t,
                    opts.passage_stride,
                )?,
                Template::CrossEncoder => self.tokenizer.encode_pair_windows(q, p, limits, opts.passage_stride)?,
            };
            for (e, span) in windows {
                w.push(i, e, span);
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
    /// one, which gives one list per resolved cutoff layer), in input order;
    /// read back asynchronously (required on WebGPU).
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
    pub async fn compute_passage_scores_async<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
    ) -> Result<Vec<Vec<PassageScore>>> {
        self.compute_passage_scores_between_async(pairs, opts, &mut |_, _| Ok(())).await
    }

    /// [`Reranker::compute_passage_scores_async`] calling `between(done,
    /// total)` after each forward pass (inputs scored so far, of all): an
    /// error it returns — [`Error::Interrupted`] for a Ctrl-C or a cancel —
    /// stops scoring there and is returned. Progress bars and the Python
    /// package's `KeyboardInterrupt` use it.
    pub async fn compute_passage_scores_between_async<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        opts: &ScoreOptions,
        between: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<Vec<Vec<PassageScore>>> {
        let cutoffs = self.cutoff_layers(opts)?;
        let windows = self.encode_windows(pairs, opts)?;
        let encoded = &windows.items;
        let lens: Vec<usize> = encoded.iter().map(Encoded::len).collect();
        let mut logits: Vec<Vec<f32>> = vec![vec![0f32; encoded.len()]; cutoffs.len().max(1)];
        let mut done = 0;
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
            done += chunk.len();
            between(done, encoded.len())?;
        }
        logits.iter().map(|l| windows.best(l, opts.normalize)).collect()
    }

    /// One forward pass over pairs already encoded by [`Reranker::encode`]
    /// (from any number of requests: the server batches across them): raw
    /// logits, one list per scoring layer (`cutoffs` from
    /// [`Reranker::cutoff_layers`]), in the order of `items`. Not checked
    /// for finiteness: the caller decides whose input a NaN fails.
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
    pub async fn compute_score_async<Q: AsRef<str>, P: AsRef<str>>(&self, pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<f32>> {
        single_layer(self.compute_score_layers_async(pairs, opts).await?)
    }

    /// Score `docs` against `query` and return them best first, at most
    /// `top_k` (ties keep input order, NaN scores go last).
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

/// The blocking twin of each `*_async` method, for callers without an
/// executor (the CLI, the server's worker, desktop apps): the same call
/// driven to completion on this thread by `device::block` — natively it
/// blocks; in wasm it works on the CPU backend and is a typed error on
/// WebGPU, which can only read results back asynchronously.
macro_rules! blocking_twins {
    ($($name:ident $(<$($g:ident),*>)? ($($arg:ident: $ty:ty),*) -> $ret:ty = $async_name:ident;)*) => {
        impl Reranker {
            $(
                #[doc = concat!("[`Reranker::", stringify!($async_name), "`], blocking until the scores are read back.")]
                pub fn $name $(<$($g: AsRef<str>),*>)? (&self, $($arg: $ty),*) -> $ret {
                    block(self.$async_name($($arg),*))
                }
            )*
        }
    };
}

blocking_twins! {
    compute_score<Q, P>(pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<f32>> = compute_score_async;
    compute_score_layers<Q, P>(pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<Vec<f32>>> = compute_score_layers_async;
    compute_passage_scores<Q, P>(pairs: &[(Q, P)], opts: &ScoreOptions) -> Result<Vec<Vec<PassageScore>>> = compute_passage_scores_async;
    compute_passage_scores_between<Q, P>(pairs: &[(Q, P)], opts: &ScoreOptions, between: &mut dyn FnMut(usize, usize) -> Result<()>) -> Result<Vec<Vec<PassageScore>>> = compute_passage_scores_between_async;
    score_encoded(items: &[&Encoded], cutoffs: &[usize]) -> Result<Vec<Vec<f32>>> = score_encoded_async;
    rerank<D>(query: &str, docs: &[D], top_k: Option<usize>, opts: &ScoreOptions) -> Result<Vec<Ranked>> = rerank_async;
    rerank_passages<D>(query: &str, docs: &[D], top_k: Option<usize>, opts: &ScoreOptions) -> Result<Vec<(Ranked, PassageScore)>> = rerank_passages_async;
}

/// Qwen3-Reranker's default `max_length` (its card's).
const QWEN3_MAX_LENGTH: usize = 8192;

/// How a model's pairs are built.
enum Template {
    /// FlagReranker's pair (the tokenizer's pair template).
    CrossEncoder,
    /// FlagLLMReranker's "A: "/"B: " pair and prompt.
    Flag(LlmTemplate),
    /// Qwen3-Reranker's card, with the whole input's `max_length`.
    Qwen3(Qwen3Template, usize),
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
