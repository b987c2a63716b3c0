//! Evaluation as FlagEmbedding's reranker evaluation does it: a first
//! stage's top-k per query, reranked, scored with trec_eval's measures.
//! `metrics` (trec_eval semantics), `data` (BEIR and FlagEmbedding dataset
//! layouts, TREC run files), `dense` (exact cosine top-k with an
//! embedding checkpoint), `bm25` (tantivy BM25, feature `bm25`),
//! `first_stage` (the first stages by name, and their runs), `pipeline`
//! (top-k of a first stage, fusion of two, reranked), `report` (the
//! before/after table and the files an evaluation writes).

#[cfg(feature = "bm25")]
pub mod bm25;
pub mod data;
pub mod dense;
pub mod first_stage;
pub mod metrics;
pub mod pipeline;
pub mod report;

pub use first_stage::{FirstStage, StageEvent};
pub use report::Report;
