//! Errors as TEI answers them: `{"error": "...", "error_type": "..."}`
//! with TEI's status codes (400 empty, 401 unauthorized, 413 payload too
//! large, 422 validation / tokenizer, 424 backend, 429 overloaded, 503
//! unhealthy).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum ErrorType {
    Validation,
    Tokenizer,
    Overloaded,
    Backend,
    Empty,
    Unhealthy,
    Unauthorized,
    PayloadTooLarge,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: String,
    pub error_type: ErrorType,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorResponse,
}

impl ApiError {
    fn new(status: StatusCode, error_type: ErrorType, message: impl Into<String>) -> Self {
        Self { status, body: ErrorResponse { error: message.into(), error_type } }
    }
    pub fn validation(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorType::Validation, m)
    }
    pub fn empty(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorType::Empty, m)
    }
    pub fn overloaded() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, ErrorType::Overloaded, "Model is overloaded")
    }
    pub fn unhealthy() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorType::Unhealthy, "the model worker is not running")
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorType::Unauthorized, "Unauthorized: send Authorization: Bearer <api key>")
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorType::PayloadTooLarge, m)
    }
    pub fn backend(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FAILED_DEPENDENCY, ErrorType::Backend, m)
    }

    /// A library error as TEI would classify it.
    pub fn from_core(e: crossrank::Error) -> Self {
        use crossrank::Error as E;
        match e {
            E::InvalidInput(_) => Self::validation(e.to_string()),
            E::Tokenizer(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorType::Tokenizer, e.to_string()),
            _ => Self::backend(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
