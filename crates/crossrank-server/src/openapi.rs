//! The OpenAPI document (`/openapi.json`, generated from the handlers
//! with utoipa) and its Redoc page (`/docs`).

use axum::response::Html;
use utoipa::OpenApi;

use crate::cohere::*;
use crate::error::{ErrorResponse, ErrorType};
use crate::scoring::{PassageFields, ScoringFields, TruncationDirection, Window};
use crate::tei::*;

pub(crate) async fn docs() -> Html<String> {
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
        TruncationDirection,
        ScoringFields,
        TeiFields,
        PassageFields
    ))
)]
pub(crate) struct ApiDoc;
