//! Text Embeddings Inference's API: `POST /rerank`, `/predict`, `/embed`
//! and `GET /health`, `/info`, `/metrics` — TEI's bodies, status codes and
//! timing headers.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crossrank::{EmbedOptions, rank, sigmoid};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::ToSchema;

use crate::AppState;
use crate::engine::{Job, Model};
use crate::error::{ApiError, ErrorResponse};
use crate::middleware::Body;
use crate::scoring::{PassageFields, ScoreJob, ScoringFields, TruncationDirection, Window, check_batch_size, score};

/// The fields TEI's `/rerank` and `/predict` share.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct TeiFields {
    /// Logits instead of sigmoids.
    #[serde(default)]
    pub raw_scores: bool,
    /// Cut inputs longer than the model takes (default: `--auto-truncate`).
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<TruncationDirection>,
}

/// TEI's `POST /rerank` body (plus `prompt` / `cutoff_layers` for LLM rerankers).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RerankRequest {
    pub query: String,
    pub texts: Vec<String>,
    #[serde(default)]
    pub return_text: bool,
    #[serde(flatten)]
    pub tei: TeiFields,
    #[serde(flatten)]
    pub scoring: ScoringFields,
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

/// TEI: every text with its score, best first. A body with `documents`
/// instead of `texts` (Infinity's and Cohere v1's `/rerank`) is answered
/// as `/v1/rerank` answers it.
#[utoipa::path(post, path = "/rerank", request_body = RerankRequest,
    responses((status = 200, body = [Rank]), (status = 400, body = ErrorResponse), (status = 413, body = ErrorResponse),
              (status = 422, body = ErrorResponse), (status = 424, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub(crate) async fn tei_rerank(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<serde_json::Value>,
) -> Result<Response, ApiError> {
    let parse = |e: serde_json::Error| ApiError::validation(format!("Failed to deserialize the JSON body into the target type: {e}"));
    if body.get("documents").is_some() && body.get("texts").is_none() {
        return crate::cohere::rerank(&s, &headers, serde_json::from_value(body).map_err(parse)?).await;
    }
    let req: RerankRequest = serde_json::from_value(body).map_err(parse)?;
    let pairs = req.texts.iter().map(|t| (req.query.clone(), t.clone())).collect();
    let job = ScoreJob { pairs, truncate: req.tei.truncate, direction: req.tei.truncation_direction, max_length: None, fields: req.scoring };
    let out = score(&s, job).await?;
    let scores: Vec<f32> = if req.tei.raw_scores { out.scores.clone() } else { out.scores.iter().map(|&x| sigmoid(x)).collect() };
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
    #[serde(flatten)]
    pub tei: TeiFields,
    #[serde(flatten)]
    pub passages: PassageFields,
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
pub(crate) async fn predict(State(s): State<AppState>, Body(req): Body<PredictRequest>) -> Result<Response, ApiError> {
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
    let fields = ScoringFields { passages: req.passages, ..Default::default() };
    let job = ScoreJob { pairs, truncate: req.tei.truncate, direction: req.tei.truncation_direction, max_length: None, fields };
    let out = score(&s, job).await?;
    let label = |x: f32| vec![Prediction { score: if req.tei.raw_scores { x } else { sigmoid(x) }, label: "LABEL_0".into() }];
    let body = if single {
        serde_json::to_value(label(out.scores[0]))
    } else {
        serde_json::to_value(out.scores.iter().map(|&x| label(x)).collect::<Vec<_>>())
    }
    .map_err(|e| ApiError::backend(e.to_string()))?;
    Ok((out.headers(), Json(body)).into_response())
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
    /// TEI's `prompt_name`: one of the model's prompts (`config_sentence_transformers.json`;
    /// Qwen3-Embedding: "query") put before every input.
    #[serde(default)]
    pub prompt_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

#[utoipa::path(post, path = "/embed", request_body = EmbedRequest,
    responses((status = 200, body = Vec<Vec<f32>>), (status = 422, body = ErrorResponse)))]
pub(crate) async fn embed(State(s): State<AppState>, Body(req): Body<EmbedRequest>) -> Result<Response, ApiError> {
    let started = Instant::now();
    if !matches!(&*s.model, Model::Embedder(_)) {
        return Err(ApiError::validation("this server runs a reranker: use /rerank"));
    }
    let texts = match req.inputs {
        EmbedInput::One(t) => vec![t],
        EmbedInput::Many(v) => v,
    };
    check_batch_size(texts.len(), &s.config)?;
    let opts = EmbedOptions { normalize: Some(req.normalize.unwrap_or(true)), prompt_name: req.prompt_name, ..Default::default() };
    let (tx, rx) = oneshot::channel();
    s.engine.submit(Job::Embed { texts, opts, reply: tx })?;
    let vectors = rx.await.map_err(|_| ApiError::unhealthy())??;
    let mut h = HeaderMap::new();
    h.insert("x-compute-time", HeaderValue::from(started.elapsed().as_millis() as u64));
    Ok((h, Json(vectors)).into_response())
}

#[utoipa::path(get, path = "/health", responses((status = 200), (status = 503, body = ErrorResponse)))]
pub(crate) async fn health(State(s): State<AppState>) -> Result<StatusCode, ApiError> {
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
pub(crate) async fn info(State(s): State<AppState>) -> Json<Info> {
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

/// The OpenAI-style model list (`GET /v1/models`): the one served model.
pub(crate) async fn models(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "object": "list",
        "data": [{"id": s.config.model_id, "object": "model", "created": 0, "owned_by": "crossrank"}],
    }))
}

pub(crate) async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    s.metrics.queue_depth.set(s.engine.depth.load(std::sync::atomic::Ordering::SeqCst) as i64);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
}
