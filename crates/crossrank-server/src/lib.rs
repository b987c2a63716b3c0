//! crossrank's reranking server: an axum [`Router`] an application can
//! mount (`crossrank serve` runs it), speaking
//! - Text Embeddings Inference's API — `POST /rerank`, `/predict`,
//!   `/embed`, its error bodies, status codes and timing headers;
//! - the Cohere / Jina / Infinity style `POST /v1/rerank` and `/v2/rerank`;
//! - `GET /health`, `/info`, `/metrics` (Prometheus), `/openapi.json` and
//!   `/docs` (Redoc, generated from the handlers with utoipa).
//!
//! Requests are tokenized on tokio's blocking pool, then queued for one
//! model worker ([`engine`]) that batches across requests: the oldest
//! waiting requests' pairs, sorted longest first, cut into passes of at most
//! `max_batch_tokens` (so requests finish in arrival order). Over
//! `max_concurrent_requests` a request is refused at once (429); a client
//! that disconnects has its pairs dropped from the queue; on shutdown the
//! server stops accepting and answers everything it accepted.

mod engine;
mod error;
mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crossrank::{EmbedOptions, Encoded, LongPassages, ScoreOptions, rank, sigmoid};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot};
use utoipa::{OpenApi, ToSchema};

pub use engine::Model;
use engine::{Engine, Job};
pub use error::{ApiError, ErrorResponse, ErrorType};
use metrics::Metrics;

/// The server's limits and identity; defaults as TEI's flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Shown by `/info` and in Cohere responses.
    pub model_id: String,
    /// The weight dtype and device, for `/info`.
    pub dtype: String,
    pub device: String,
    /// Tokens per forward pass (pairs × longest pair).
    pub max_batch_tokens: usize,
    /// Pairs per forward pass at most.
    pub max_batch_pairs: usize,
    /// Texts (documents, pairs, inputs) per request.
    pub max_client_batch_size: usize,
    /// Requests in flight before new ones get 429.
    pub max_concurrent_requests: usize,
    /// Request bodies larger than this get 413.
    pub payload_limit: usize,
    /// Truncate inputs longer than the model takes when a request does not say.
    pub auto_truncate: bool,
    /// Required as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Origins allowed by CORS (`*` for any); none: no CORS headers.
    pub cors_allow_origin: Vec<String>,
    /// Scoring defaults (max_length, query_max_length, prompt, ...); a
    /// request's own fields override `prompt` and `cutoff_layers`.
    pub score: ScoreOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            model_id: "crossrank".into(),
            dtype: "f32".into(),
            device: "cpu".into(),
            max_batch_tokens: 16384,
            max_batch_pairs: 128,
            max_client_batch_size: 32,
            max_concurrent_requests: 512,
            payload_limit: 2_000_000,
            auto_truncate: true,
            api_key: None,
            cors_allow_origin: Vec::new(),
            score: ScoreOptions::default(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    model: Arc<Model>,
    engine: Arc<Engine>,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    limiter: Arc<Semaphore>,
}

/// The router, with its model worker started. Mount it, or run it with
/// [`serve`].
pub fn router(model: Model, config: ServerConfig) -> Router {
    let model = Arc::new(model);
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::start(model.clone(), config.max_batch_tokens, config.max_batch_pairs, metrics.clone()));
    let state = AppState {
        model,
        engine,
        limiter: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
        config: Arc::new(config),
        metrics,
    };
    let inference = Router::new()
        .route("/rerank", post(tei_rerank))
        .route("/predict", post(predict))
        .route("/embed", post(embed))
        .route("/v1/rerank", post(cohere_rerank))
        .route("/v2/rerank", post(cohere_rerank))
        .layer(middleware::from_fn_with_state(state.clone(), concurrency))
        .layer(DefaultBodyLimit::max(state.config.payload_limit));
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/docs", get(docs))
        .merge(inference)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state.clone());
    if let Some(cors) = cors_layer(&state.config.cors_allow_origin) {
        app = app.layer(cors);
    }
    app
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting
/// and answer every request already accepted before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new connections; answering the requests in flight");
}

fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

/// `Authorization: Bearer <key>` on every route when a key is set (CORS
/// preflights are answered before this by the CORS layer).
async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.config.api_key {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), key.as_bytes()));
        if !ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Requests in flight beyond the limit are refused at once (no queue grows
/// without bound).
async fn concurrency(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(_permit) = s.limiter.clone().try_acquire_owned() else {
        return ApiError::overloaded().into_response();
    };
    next.run(req).await
}

const ROUTES: &[&str] =
    &["/rerank", "/predict", "/embed", "/v1/rerank", "/v2/rerank", "/health", "/info", "/metrics", "/docs", "/openapi.json"];

async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = req.uri().path();
    let route = ROUTES.iter().find(|r| **r == path).copied().unwrap_or("other");
    let resp = next.run(req).await;
    s.metrics.observe_request(route, resp.status().as_u16(), start.elapsed());
    resp
}

/// JSON bodies with TEI's error shape: 413 over the payload limit, 422 for
/// anything that does not parse as the request type.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large(r.body_text())),
            Err(r) => Err(ApiError::validation(r.body_text())),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
pub enum TruncationDirection {
    Left,
    #[default]
    Right,
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

/// What a scoring request asks for, whichever API it came through.
struct ScoreJob {
    pairs: Vec<(String, String)>,
    truncate: Option<bool>,
    direction: Option<TruncationDirection>,
    prompt: Option<String>,
    cutoff_layers: Option<Vec<usize>>,
    max_length: Option<usize>,
    long_passages: Option<LongPassages>,
    passage_stride: Option<usize>,
}

/// Scores of a request's pairs (raw logits) and its timings.
struct ScoreOutcome {
    scores: Vec<f32>,
    /// `maxp`: each passage's best window, in Unicode code points.
    windows: Vec<Option<Window>>,
    tokens: usize,
    tokenization: Duration,
    queue: Duration,
    inference: Duration,
    started: Instant,
}

impl ScoreOutcome {
    fn headers(&self) -> HeaderMap {
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
fn check_batch_size(n: usize, config: &ServerConfig) -> Result<(), ApiError> {
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

async fn score(s: &AppState, job: ScoreJob) -> Result<ScoreOutcome, ApiError> {
    let started = Instant::now();
    let Model::Reranker(reranker) = &*s.model else {
        return Err(ApiError::validation("this server runs an embedding model: use /embed"));
    };
    check_batch_size(job.pairs.len(), &s.config)?;
    if matches!(job.direction, Some(TruncationDirection::Left)) {
        return Err(ApiError::validation("truncation_direction Left is not supported: FlagEmbedding truncates the passage from the right"));
    }
    let mut opts = s.config.score.clone();
    if job.prompt.is_some() {
        opts.prompt = job.prompt;
    }
    if job.cutoff_layers.is_some() {
        opts.cutoff_layers = job.cutoff_layers;
    }
    if let Some(m) = job.max_length {
        opts.max_length = m.max(1);
    }
    if let Some(l) = job.long_passages {
        opts.long_passages = l;
    }
    if job.passage_stride.is_some() {
        opts.passage_stride = job.passage_stride;
    }
    let truncate = job.truncate.unwrap_or(s.config.auto_truncate);
    // maxp cuts nothing from the passage, so `truncate` does not apply.
    if !truncate && opts.long_passages == LongPassages::Truncate {
        // Nothing is cut to fit: a limit one past what the model takes
        // keeps every pair that fits whole and makes a longer one fail the
        // model's length check (422) instead of being truncated.
        let over = reranker.max_input_tokens().saturating_add(1);
        opts.max_length = over;
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

/// TEI's `POST /rerank` body (plus `prompt` / `cutoff_layers` for LLM rerankers).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RerankRequest {
    pub query: String,
    pub texts: Vec<String>,
    /// Logits instead of sigmoids.
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub return_text: bool,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<TruncationDirection>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub cutoff_layers: Option<Vec<usize>>,
    /// `truncate` (default; FlagEmbedding) or `maxp`: score windows of a
    /// long passage and keep the best (see `window` in the response).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub long_passages: Option<LongPassages>,
    /// `maxp`: passage tokens between window starts (default half a window).
    #[serde(default)]
    pub passage_stride: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rank {
    pub index: usize,
    pub score: f32,
    /// `maxp`: the passage window that scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// TEI: every text with its score, best first.
#[utoipa::path(post, path = "/rerank", request_body = RerankRequest,
    responses((status = 200, body = [Rank]), (status = 400, body = ErrorResponse), (status = 413, body = ErrorResponse),
              (status = 422, body = ErrorResponse), (status = 424, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
async fn tei_rerank(State(s): State<AppState>, Body(req): Body<RerankRequest>) -> Result<Response, ApiError> {
    let pairs = req.texts.iter().map(|t| (req.query.clone(), t.clone())).collect();
    let job = ScoreJob {
        pairs,
        truncate: req.truncate,
        direction: req.truncation_direction,
        prompt: req.prompt,
        cutoff_layers: req.cutoff_layers,
        max_length: None,
        long_passages: req.long_passages,
        passage_stride: req.passage_stride,
    };
    let out = score(&s, job).await?;
    let scores: Vec<f32> = if req.raw_scores { out.scores.clone() } else { out.scores.iter().map(|&x| sigmoid(x)).collect() };
    let ranks: Vec<Rank> = rank(&scores, None)
        .into_iter()
        .map(|r| Rank {
            index: r.index,
            score: r.score,
            window: out.windows[r.index],
            text: req.return_text.then(|| req.texts[r.index].clone()),
        })
        .collect();
    Ok((out.headers(), Json(ranks)).into_response())
}

/// TEI's `POST /predict`: `inputs` is a pair `[query, passage]` or a list of pairs.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PredictRequest {
    pub inputs: PredictInput,
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<TruncationDirection>,
    /// `truncate` (default; FlagEmbedding) or `maxp`: score windows of a
    /// long passage and keep the best (see `window` in the response).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub long_passages: Option<LongPassages>,
    /// `maxp`: passage tokens between window starts (default half a window).
    #[serde(default)]
    pub passage_stride: Option<usize>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PredictInput {
    Single(Vec<String>),
    Batch(Vec<Vec<String>>),
    Text(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Prediction {
    pub score: f32,
    pub label: String,
}

#[utoipa::path(post, path = "/predict", request_body = PredictRequest,
    responses((status = 200, body = Vec<Prediction>), (status = 422, body = ErrorResponse)))]
async fn predict(State(s): State<AppState>, Body(req): Body<PredictRequest>) -> Result<Response, ApiError> {
    let pair = |v: Vec<String>| -> Result<(String, String), ApiError> {
        match <[String; 2]>::try_from(v) {
            Ok([q, p]) => Ok((q, p)),
            Err(v) => Err(ApiError::validation(format!("a reranker scores [query, passage] pairs; got {} texts", v.len()))),
        }
    };
    let (pairs, single) = match req.inputs {
        PredictInput::Single(v) => (vec![pair(v)?], true),
        PredictInput::Batch(vs) => (vs.into_iter().map(pair).collect::<Result<Vec<_>, _>>()?, false),
        PredictInput::Text(_) => return Err(ApiError::validation("a reranker scores [query, passage] pairs, not single texts")),
    };
    let job = ScoreJob {
        pairs,
        truncate: req.truncate,
        direction: req.truncation_direction,
        prompt: None,
        cutoff_layers: None,
        max_length: None,
        long_passages: req.long_passages,
        passage_stride: req.passage_stride,
    };
    let out = score(&s, job).await?;
    let label = |x: f32| vec![Prediction { score: if req.raw_scores { x } else { sigmoid(x) }, label: "LABEL_0".into() }];
    let body = if single {
        serde_json::to_value(label(out.scores[0]))
    } else {
        serde_json::to_value(out.scores.iter().map(|&x| label(x)).collect::<Vec<_>>())
    }
    .map_err(|e| ApiError::backend(e.to_string()))?;
    Ok((out.headers(), Json(body)).into_response())
}

/// A Cohere document: a string or `{"text": ...}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Document {
    Text(String),
    Object { text: String },
}

impl Document {
    fn text(&self) -> &str {
        match self {
            Document::Text(t) | Document::Object { text: t } => t,
        }
    }
}

/// Cohere v1/v2 (and Jina, Infinity) rerank body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CohereRerankRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub query: String,
    pub documents: Vec<Document>,
    #[serde(default)]
    pub top_n: Option<usize>,
    #[serde(default)]
    pub return_documents: Option<bool>,
    #[serde(default)]
    pub max_tokens_per_doc: Option<usize>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub cutoff_layers: Option<Vec<usize>>,
    /// `truncate` (default; FlagEmbedding) or `maxp`: score windows of a
    /// long passage and keep the best (see `window` in the response).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub long_passages: Option<LongPassages>,
    /// `maxp`: passage tokens between window starts (default half a window).
    #[serde(default)]
    pub passage_stride: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereResult {
    pub index: usize,
    pub relevance_score: f32,
    /// `maxp`: the passage window that scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<CohereDocument>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereDocument {
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereRerankResponse {
    pub id: String,
    pub results: Vec<CohereResult>,
    pub meta: serde_json::Value,
    pub usage: serde_json::Value,
}

#[utoipa::path(post, path = "/v2/rerank", request_body = CohereRerankRequest,
    responses((status = 200, body = CohereRerankResponse), (status = 400, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
async fn cohere_rerank(State(s): State<AppState>, Body(req): Body<CohereRerankRequest>) -> Result<Response, ApiError> {
    if let Some(m) = &req.model
        && !m.is_empty()
        && m != &s.config.model_id
    {
        tracing::debug!(requested = %m, serving = %s.config.model_id, "model field ignored: one model per server");
    }
    let pairs = req.documents.iter().map(|d| (req.query.clone(), d.text().to_string())).collect();
    let job = ScoreJob {
        pairs,
        truncate: None,
        direction: None,
        prompt: req.prompt,
        cutoff_layers: req.cutoff_layers,
        max_length: req.max_tokens_per_doc,
        long_passages: req.long_passages,
        passage_stride: req.passage_stride,
    };
    let out = score(&s, job).await?;
    let scores: Vec<f32> = out.scores.iter().map(|&x| sigmoid(x)).collect();
    let results = rank(&scores, req.top_n)
        .into_iter()
        .map(|r| CohereResult {
            index: r.index,
            relevance_score: r.score,
            window: out.windows[r.index],
            document: req.return_documents.unwrap_or(false).then(|| CohereDocument { text: req.documents[r.index].text().to_string() }),
        })
        .collect();
    let body = CohereRerankResponse {
        id: request_id(),
        results,
        meta: serde_json::json!({"api_version": {"version": "2"}, "billed_units": {"search_units": 1}, "tokens": {"input_tokens": out.tokens}}),
        usage: serde_json::json!({"total_tokens": out.tokens, "prompt_tokens": out.tokens}),
    };
    Ok((out.headers(), Json(body)).into_response())
}

/// A unique id per response (time and a counter; not a secret).
fn request_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{t:x}-{:x}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// TEI's `POST /embed`. Texts are cut to the checkpoint's max length
/// (sentence-transformers' rule) whatever `truncate` says.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedRequest {
    pub inputs: EmbedInput,
    #[serde(default)]
    pub normalize: Option<bool>,
    #[serde(default)]
    pub truncate: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

#[utoipa::path(post, path = "/embed", request_body = EmbedRequest,
    responses((status = 200, body = Vec<Vec<f32>>), (status = 422, body = ErrorResponse)))]
async fn embed(State(s): State<AppState>, Body(req): Body<EmbedRequest>) -> Result<Response, ApiError> {
    let started = Instant::now();
    if !matches!(&*s.model, Model::Embedder(_)) {
        return Err(ApiError::validation("this server runs a reranker: use /rerank"));
    }
    let texts = match req.inputs {
        EmbedInput::One(t) => vec![t],
        EmbedInput::Many(v) => v,
    };
    check_batch_size(texts.len(), &s.config)?;
    let opts = EmbedOptions { normalize: Some(req.normalize.unwrap_or(true)), ..Default::default() };
    let (tx, rx) = oneshot::channel();
    s.engine.submit(Job::Embed { texts, opts, reply: tx })?;
    let vectors = rx.await.map_err(|_| ApiError::unhealthy())??;
    let mut h = HeaderMap::new();
    h.insert("x-compute-time", HeaderValue::from(started.elapsed().as_millis() as u64));
    Ok((h, Json(vectors)).into_response())
}

#[utoipa::path(get, path = "/health", responses((status = 200), (status = 503, body = ErrorResponse)))]
async fn health(State(s): State<AppState>) -> Result<StatusCode, ApiError> {
    if s.engine.alive.load(std::sync::atomic::Ordering::SeqCst) { Ok(StatusCode::OK) } else { Err(ApiError::unhealthy()) }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Info {
    pub model_id: String,
    pub model_type: String,
    pub architecture: String,
    pub dtype: String,
    pub device: String,
    pub max_input_length: usize,
    pub max_batch_tokens: usize,
    pub max_client_batch_size: usize,
    pub max_concurrent_requests: usize,
    pub payload_limit: usize,
    pub auto_truncate: bool,
    pub version: String,
}

#[utoipa::path(get, path = "/info", responses((status = 200, body = Info)))]
async fn info(State(s): State<AppState>) -> Json<Info> {
    let c = &s.config;
    let (model_type, architecture, max_input_length) = match &*s.model {
        Model::Reranker(r) => ("reranker", format!("{:?}", r.architecture()), r.max_input_tokens()),
        Model::Embedder(_) => ("embedding", "encoder".to_string(), 0),
    };
    Json(Info {
        model_id: c.model_id.clone(),
        model_type: model_type.into(),
        architecture,
        dtype: c.dtype.clone(),
        device: c.device.clone(),
        max_input_length,
        max_batch_tokens: c.max_batch_tokens,
        max_client_batch_size: c.max_client_batch_size,
        max_concurrent_requests: c.max_concurrent_requests,
        payload_limit: c.payload_limit,
        auto_truncate: c.auto_truncate,
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    s.metrics.queue_depth.set(s.engine.depth.load(std::sync::atomic::Ordering::SeqCst) as i64);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
}

async fn docs() -> Html<String> {
    Html(utoipa_redoc::Redoc::new(ApiDoc::openapi()).to_html())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "crossrank", description = "Rerank (query, passage) pairs with the bge-reranker family: TEI- and Cohere-style APIs"),
    paths(tei_rerank, predict, cohere_rerank, embed, health, info),
    components(schemas(
        RerankRequest,
        Rank,
        Window,
        PredictRequest,
        PredictInput,
        Prediction,
        CohereRerankRequest,
        CohereRerankResponse,
        CohereResult,
        CohereDocument,
        Document,
        EmbedRequest,
        EmbedInput,
        Info,
        ErrorResponse,
        ErrorType,
        TruncationDirection
    ))
)]
struct ApiDoc;
