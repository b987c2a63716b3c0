//! The Cohere-style rerank routes (`POST /v1/rerank`, `/v2/rerank`; the
//! same body Jina and Infinity clients send): documents as strings or
//! `{"text"}`, `top_n`, `return_documents`, relevance scores as sigmoids.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use crossrank::{rank, sigmoid};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorResponse};
use crate::middleware::Body;
use crate::scoring::{ScoreJob, ScoringFields, Window, score};

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
    /// Logits instead of sigmoids (Infinity's `raw_scores`).
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(flatten)]
    pub scoring: ScoringFields,
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
    /// The served model's name (`--served-model-name`, else its id).
    pub model: String,
    pub results: Vec<CohereResult>,
    pub meta: serde_json::Value,
    pub usage: serde_json::Value,
}

#[utoipa::path(post, path = "/v2/rerank", request_body = CohereRerankRequest,
    responses((status = 200, body = CohereRerankResponse), (status = 400, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub(crate) async fn cohere_rerank(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(req): Body<CohereRerankRequest>,
) -> Result<Response, ApiError> {
    rerank(&s, &headers, req).await
}

/// A Cohere / Infinity rerank body, whichever route it came through
/// (`/v1/rerank`, `/v2/rerank`, or `/rerank` with `documents`). The
/// response's `id` is the request's `x-request-id` (the router sets one on
/// every request), so a client's id and the server's logs name the same
/// request.
pub(crate) async fn rerank(s: &AppState, headers: &HeaderMap, req: CohereRerankRequest) -> Result<Response, ApiError> {
    if let Some(m) = &req.model
        && !m.is_empty()
        && m != &s.config.model_id
    {
        tracing::debug!(requested = %m, serving = %s.config.model_id, "model field ignored: one model per server");
    }
    let pairs = req.documents.iter().map(|d| (req.query.clone(), d.text().to_string())).collect();
    let job = ScoreJob { pairs, truncate: None, direction: None, max_length: req.max_tokens_per_doc, fields: req.scoring };
    let out = score(s, job).await?;
    let scores: Vec<f32> = if req.raw_scores { out.scores.clone() } else { out.scores.iter().map(|&x| sigmoid(x)).collect() };
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
        id: headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        model: s.config.model_id.clone(),
        results,
        meta: serde_json::json!({"api_version": {"version": "2"}, "billed_units": {"search_units": 1}, "tokens": {"input_tokens": out.tokens}}),
        usage: serde_json::json!({"total_tokens": out.tokens, "prompt_tokens": out.tokens}),
    };
    Ok((out.headers(), Json(body)).into_response())
}
