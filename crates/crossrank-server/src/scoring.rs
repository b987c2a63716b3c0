//! The scoring path every reranking route shares: what a request asks
//! for ([`ScoreJob`], built from the API's own body), the request's
//! options over the server's defaults, tokenization on the blocking pool,
//! the model worker's passes, each pair's best window.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use crossrank::{Encoded, LongPassages};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::ToSchema;

use crate::engine::{Job, Model};
use crate::error::ApiError;
use crate::{AppState, ServerConfig};

/// TEI's `truncation_direction`: `Right` (the only one FlagEmbedding
/// does) or `Left`, in any case (TEI's clients send `right` too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ToSchema)]
pub enum TruncationDirection {
    Left,
    #[default]
    Right,
}

impl<'de> Deserialize<'de> for TruncationDirection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "left" => Ok(TruncationDirection::Left),
            "right" => Ok(TruncationDirection::Right),
            _ => Err(serde::de::Error::unknown_variant(&s, &["Right", "Left"])),
        }
    }
}

/// `long_passages: "maxp"`: the best window of a passage, as Unicode code
/// point offsets into it (Python's string indices), and how many windows
/// were scored.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub windows: usize,
}


/// How a long passage is scored: the fields every reranking body takes.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PassageFields {
    /// `truncate` (default; FlagEmbedding) or `maxp`: score windows of a
    /// long passage and keep the best (see `window` in the response).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub long_passages: Option<LongPassages>,
    /// `maxp`: passage tokens between window starts (default half a window).
    #[serde(default)]
    pub passage_stride: Option<usize>,
}

/// The scoring fields TEI's `/rerank` and the Cohere routes share, over
/// the server's defaults: the LLM rerankers' prompt and cutoff layers, the
/// instructions, and how long passages are scored.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ScoringFields {
    /// The LLM rerankers' prompt (FlagEmbedding's `prompt`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// A layer-wise reranker's scoring layer (one per request).
    #[serde(default)]
    pub cutoff_layers: Option<Vec<usize>>,
    /// Text before every query (FlagEmbedding's `query_instruction_for_rerank`;
    /// LLM rerankers default to "A: ", "" turns it off).
    #[serde(default)]
    pub query_instruction: Option<String>,
    /// Text before every passage (`passage_instruction_for_rerank`; "B: " for LLM rerankers).
    #[serde(default)]
    pub passage_instruction: Option<String>,
    #[serde(flatten)]
    pub passages: PassageFields,
}

/// What a scoring request asks for, whichever API it came through.
pub(crate) struct ScoreJob {
    pub(crate) pairs: Vec<(String, String)>,
    pub(crate) truncate: Option<bool>,
    pub(crate) direction: Option<TruncationDirection>,
    pub(crate) max_length: Option<usize>,
    pub(crate) fields: ScoringFields,
}

/// Scores of a request's pairs (raw logits) and its timings.
pub(crate) struct ScoreOutcome {
    pub(crate) scores: Vec<f32>,
    /// `maxp`: each passage's best window, in Unicode code points.
    pub(crate) windows: Vec<Option<Window>>,
    pub(crate) tokens: usize,
    tokenization: Duration,
    queue: Duration,
    inference: Duration,
    started: Instant,
}

impl ScoreOutcome {
    pub(crate) fn headers(&self) -> HeaderMap {
        let ms = |d: Duration| HeaderValue::from_str(&d.as_millis().to_string()).unwrap_or(HeaderValue::from_static("0"));
        let mut h = HeaderMap::new();
        h.insert("x-compute-time", ms(self.started.elapsed()));
        h.insert("x-total-time", ms(self.started.elapsed()));
        h.insert("x-tokenization-time", ms(self.tokenization));
        h.insert("x-queue-time", ms(self.queue));
        h.insert("x-inference-time", ms(self.inference));
        h.insert("x-compute-tokens", HeaderValue::from(self.tokens as u64));
        h
    }
}

/// One rule for every endpoint: at least one text (400), at most
/// `--max-client-batch-size` (422).
pub(crate) fn check_batch_size(n: usize, config: &ServerConfig) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::empty("the batch is empty: send at least one text"));
    }
    if n > config.max_client_batch_size {
        return Err(ApiError::validation(format!(
            "batch size {n} > maximum allowed batch size {} (--max-client-batch-size)",
            config.max_client_batch_size
        )));
    }
    Ok(())
}

pub(crate) async fn score(s: &AppState, job: ScoreJob) -> Result<ScoreOutcome, ApiError> {
    let started = Instant::now();
    let Model::Reranker(reranker) = &*s.model else {
        return Err(ApiError::validation("this server runs an embedding model: use /embed"));
    };
    check_batch_size(job.pairs.len(), &s.config)?;
    if matches!(job.direction, Some(TruncationDirection::Left)) {
        return Err(ApiError::validation("truncation_direction Left is not supported: FlagEmbedding truncates the passage from the right"));
    }
    let mut opts = s.config.score.clone();
    let ScoringFields { prompt, cutoff_layers, query_instruction, passage_instruction, passages } = job.fields;
    if query_instruction.is_some() {
        opts.query_instruction = query_instruction;
    }
    if passage_instruction.is_some() {
        opts.passage_instruction = passage_instruction;
    }
    if prompt.is_some() {
        opts.prompt = prompt;
    }
    if cutoff_layers.is_some() {
        opts.cutoff_layers = cutoff_layers;
    }
    if let Some(m) = job.max_length {
        opts.max_length = Some(m.max(1));
    }
    if let Some(l) = passages.long_passages {
        opts.long_passages = l;
    }
    if passages.passage_stride.is_some() {
        opts.passage_stride = passages.passage_stride;
    }
    let truncate = job.truncate.unwrap_or(s.config.auto_truncate);
    // maxp cuts nothing from the passage, so `truncate` does not apply.
    if !truncate && opts.long_passages == LongPassages::Truncate {
        // Nothing is cut to fit: a limit one past what the model takes
        // keeps every pair that fits whole and makes a longer one fail the
        // model's length check (422) instead of being truncated.
        let over = reranker.max_input_tokens().saturating_add(1);
        opts.max_length = Some(over);
        opts.query_max_length = Some(over);
    }
    let cutoffs = reranker.cutoff_layers(&opts).map_err(ApiError::from_core)?;
    if cutoffs.len() > 1 {
        return Err(ApiError::validation("one cutoff layer per request (this API returns one score per text)"));
    }
    let model = s.model.clone();
    let pairs = job.pairs;
    let t0 = Instant::now();
    let (mut windows, pairs) = tokio::task::spawn_blocking(move || match &*model {
        Model::Reranker(r) => r.encode_windows(&pairs, &opts).map(|w| (w, pairs)),
        Model::Embedder(_) => Err(crossrank::Error::InvalidInput("not a reranker".into())),
    })
    .await
    .map_err(|_| ApiError::unhealthy())?
    .map_err(ApiError::from_core)?;
    let tokenization = t0.elapsed();
    let items = std::mem::take(&mut windows.items);
    let tokens = items.iter().map(Encoded::len).sum();
    let (tx, rx) = oneshot::channel();
    s.engine.submit(Job::Score { items, cutoffs, reply: tx })?;
    s.metrics.queue_depth.set(s.engine.depth.load(std::sync::atomic::Ordering::SeqCst) as i64);
    let scored = rx.await.map_err(|_| ApiError::unhealthy())??;
    let logits = scored.layers.into_iter().next().unwrap_or_default();
    // Each pair's best window (one per pair with truncate); a non-finite
    // logit is the library's own error (and message); TEI answers it with 424.
    let best = windows.best(&logits, false).map_err(ApiError::from_core)?;
    let spans =
        best.iter().zip(&pairs).map(|(b, (_, p))| b.char_span(p).map(|(start, end)| Window { start, end, windows: b.windows })).collect();
    let scores = best.iter().map(|b| b.score).collect();
    Ok(ScoreOutcome { scores, windows: spans, tokens, tokenization, queue: scored.queue, inference: scored.inference, started })
}
