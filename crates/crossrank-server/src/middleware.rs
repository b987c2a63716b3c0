//! The layers around every route: CORS, `Authorization: Bearer` when a
//! key is set, the in-flight limit (429), request metrics, and the JSON
//! body extractor with TEI's error shape.

use std::time::Instant;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::AppState;
use crate::error::ApiError;

pub(crate) fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
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

/// The span every log line of a request carries: method, path and its
/// `x-request-id`.
pub(crate) fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

/// Routes answered without the key: what load balancers and Kubernetes
/// probe (`/metrics` too unless `protect_metrics`).
const OPEN: &[&str] = &["/health", "/ping"];

/// `Authorization: Bearer <key>` on every route but the probes when a key
/// is set (CORS preflights are answered before this by the CORS layer).
pub(crate) async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = OPEN.contains(&path) || (path == "/metrics" && !s.config.protect_metrics);
    if let Some(key) = s.config.api_key.as_ref().filter(|_| !open) {
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
pub(crate) async fn concurrency(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(_permit) = s.limiter.clone().try_acquire_owned() else {
        return ApiError::overloaded().into_response();
    };
    next.run(req).await
}

const ROUTES: &[&str] = &[
    "/rerank",
    "/predict",
    "/embed",
    "/v1/rerank",
    "/v2/rerank",
    "/health",
    "/ping",
    "/info",
    "/metrics",
    "/v1/models",
    "/docs",
    "/openapi.json",
];

pub(crate) async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let path = req.uri().path();
    let route = ROUTES.iter().find(|r| **r == path).copied().unwrap_or("other");
    let resp = next.run(req).await;
    s.metrics.observe_request(route, resp.status().as_u16(), start.elapsed());
    resp
}

/// JSON bodies with TEI's error shape: 413 over the payload limit, 422 for
/// anything that does not parse as the request type.
pub(crate) struct Body<T>(pub(crate) T);

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
