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

//!
//! Modules: `scoring` (the path every reranking route shares), `tei` and
//! `cohere` (each API's bodies and handlers), `middleware` (auth, CORS,
//! limits, metrics, the JSON extractor), `openapi`, `engine` (the model
//! worker), `metrics` (Prometheus), `signal` (shutdown), `error`.

mod cohere;
mod engine;
mod error;
mod metrics;
mod middleware;
mod openapi;
mod scoring;
mod signal;
mod tei;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::{Json, Router};
use crossrank::ScoreOptions;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;

pub use cohere::{CohereDocument, CohereRerankRequest, CohereRerankResponse, CohereResult, Document};
pub use engine::Model;
use engine::Engine;
pub use error::{ApiError, ErrorResponse, ErrorType};
use metrics::Metrics;
pub use scoring::{PassageFields, ScoringFields, TruncationDirection, Window};
pub use signal::{shutdown_signal, termination};
pub use tei::{EmbedInput, EmbedRequest, Info, PredictInput, PredictRequest, Prediction, Rank, RerankRequest, TeiFields};

/// The server's limits and identity; defaults as TEI's flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The served model's name: shown by `/info`, `/v1/models` and in
    /// Cohere responses.
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
    /// Required as `Authorization: Bearer <key>` when set — on every route
    /// but `/health`, `/ping` and (unless `protect_metrics`) `/metrics`.
    pub api_key: Option<String>,
    /// `/metrics` needs the key too.
    pub protect_metrics: bool,
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
            protect_metrics: false,
            cors_allow_origin: Vec::new(),
            score: ScoreOptions::default(),
        }
    }
}

/// What every handler and middleware shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) model: Arc<Model>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limiter: Arc<Semaphore>,
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
        .route("/rerank", post(tei::tei_rerank))
        .route("/predict", post(tei::predict))
        .route("/embed", post(tei::embed))
        .route("/v1/rerank", post(cohere::cohere_rerank))
        .route("/v2/rerank", post(cohere::cohere_rerank))
        .layer(from_fn_with_state(state.clone(), middleware::concurrency))
        .layer(DefaultBodyLimit::max(state.config.payload_limit));
    let mut app = Router::new()
        .route("/health", get(tei::health))
        .route("/ping", get(tei::health))
        .route("/v1/models", get(tei::models))
        .route("/info", get(tei::info))
        .route("/metrics", get(tei::metrics_text))
        .route("/openapi.json", get(|| async { Json(openapi::ApiDoc::openapi()) }))
        .route("/docs", get(openapi::docs))
        .merge(inference)
        .layer(from_fn_with_state(state.clone(), middleware::observe))
        .layer(from_fn_with_state(state.clone(), middleware::auth))
        .with_state(state.clone())
        // Request ids: a client's `x-request-id` kept, else a new UUID; on
        // the response and in every log line of the request.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(middleware::request_span).on_response(DefaultOnResponse::new().level(Level::INFO)))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    if let Some(cors) = middleware::cors_layer(&state.config.cors_allow_origin) {
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
