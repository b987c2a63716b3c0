//! The first stage a reranker reranks, named as `crossrank eval
//! --first-stage` and `crossrank mine --first-stage` name it:
//!
//! - `bm25` — BEIR's BM25 (tantivy, English analyzer); `bm25:LANGUAGE` for
//!   another Snowball language, `bm25:none` for none (feature `bm25`);
//! - `dense:MODEL` — an embedding checkpoint (directory or Hub repo id):
//!   exact cosine top-k over the corpus;
//! - `bm25[:LANGUAGE]+dense:MODEL` — the two fused by reciprocal rank
//!   (k = 60);
//! - anything else — a TREC run file (`qid Q0 docid rank score tag`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use super::data::{self, Dataset};
use super::metrics::Run;
use super::{dense, pipeline};
use crate::checkpoint::Checkpoint;
use crate::device::DeviceChoice;
use crate::embed::{EmbedOptions, Embedder};
use crate::error::{Error, Result};

/// Reciprocal rank fusion's constant (the paper's).
const RRF_K: f64 = 60.0;

/// A first stage, parsed from its name ([`FromStr`]); [`FirstStage::run`]
/// produces its ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstStage {
    /// BM25 with a Snowball `language` (`english` by default, `none`).
    Bm25 {
        /// A Snowball language name, or `none`.
        language: String,
    },
    /// Exact cosine top-k with the embedding checkpoint `model`.
    Dense {
        /// A checkpoint directory or a Hub repo id.
        model: String,
    },
    /// `first` and dense retrieval with `model`, fused by reciprocal rank.
    Fused {
        /// The lexical stage.
        first: Box<FirstStage>,
        /// The embedding checkpoint of the dense stage.
        model: String,
    },
    /// A TREC run file.
    RunFile(PathBuf),
}

impl FromStr for FirstStage {
    type Err = Error;
    fn from_str(spec: &str) -> Result<Self> {
        if spec.is_empty() {
            return Err(Error::InvalidInput("the first stage is empty: bm25, dense:MODEL, bm25+dense:MODEL or a TREC run file".into()));
        }
        if spec.starts_with("bm25")
            && let Some((lexical, model)) = spec.split_once("+dense:")
        {
            return Ok(FirstStage::Fused { first: Box::new(lexical.parse()?), model: model.to_string() });
        }
        if let Some(model) = spec.strip_prefix("dense:") {
            return Ok(FirstStage::Dense { model: model.to_string() });
        }
        if spec == "bm25" || spec.starts_with("bm25:") {
            return Ok(FirstStage::Bm25 { language: spec.strip_prefix("bm25:").unwrap_or("english").to_string() });
        }
        Ok(FirstStage::RunFile(PathBuf::from(spec)))
    }
}

/// What [`FirstStage::run`] reports while it works.
#[derive(Debug, Clone)]
pub enum StageEvent {
    /// `done` of `total` documents indexed or embedded.
    Progress {
        /// Documents done.
        done: usize,
        /// Documents in all.
        total: usize,
    },
    /// A stage finished: one line saying what it did and how long it took.
    Finished(String),
}

impl FirstStage {
    /// The embedding checkpoint a dense stage (alone or fused) loads.
    pub fn embedder(&self) -> Option<&str> {
        match self {
            FirstStage::Dense { model } | FirstStage::Fused { model, .. } => Some(model),
            FirstStage::Bm25 { .. } | FirstStage::RunFile(_) => None,
        }
    }

    /// Each query's `depth` best documents of `ds`. A dense stage loads its
    /// embedder on `device`; `event` hears progress and each stage's end.
    pub fn run(&self, ds: &Dataset, depth: usize, device: DeviceChoice, event: &mut dyn FnMut(StageEvent)) -> Result<Run> {
        match self {
            FirstStage::Fused { first, model } => {
                let a = first.run(ds, depth, device, event)?;
                let b = FirstStage::Dense { model: model.clone() }.run(ds, depth, device, event)?;
                Ok(pipeline::reciprocal_rank_fusion(&[&a, &b], RRF_K, depth))
            }
            FirstStage::Dense { model } => {
                let ck = Checkpoint::resolve(model, true)?;
                let dev = crate::device::select(device)?;
                let embedder = Embedder::load(&ck, &dev.device)?;
                let t = Instant::now();
                let run = dense::retrieve(&embedder, ds, depth, &EmbedOptions::default(), &mut |done, total| {
                    event(StageEvent::Progress { done, total })
                })?;
                event(StageEvent::Finished(format!(
                    "dense first stage ({model}): {} documents embedded in {:.1} s",
                    ds.corpus.len(),
                    t.elapsed().as_secs_f64()
                )));
                Ok(run)
            }
            FirstStage::Bm25 { language } => bm25(ds, language, depth, event),
            FirstStage::RunFile(path) => data::read_run(Path::new(path)),
        }
    }
}

#[cfg(feature = "bm25")]
fn bm25(ds: &Dataset, language: &str, depth: usize, event: &mut dyn FnMut(StageEvent)) -> Result<Run> {
    let t = Instant::now();
    let index = super::bm25::Bm25Index::build(&ds.corpus, language, &mut |done, total| event(StageEvent::Progress { done, total }))?;
    let indexed = t.elapsed().as_secs_f64();
    let run = index.retrieve(&ds.corpus, &ds.queries, depth)?;
    event(StageEvent::Finished(format!(
        "BM25 first stage ({language}): {} documents indexed in {indexed:.1} s, {} queries in {:.2} s",
        ds.corpus.len(),
        ds.queries.len(),
        t.elapsed().as_secs_f64() - indexed
    )));
    Ok(run)
}

#[cfg(not(feature = "bm25"))]
fn bm25(_: &Dataset, _: &str, _: usize, _: &mut dyn FnMut(StageEvent)) -> Result<Run> {
    Err(Error::InvalidInput("this build of crossrank has no BM25 first stage (feature bm25)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_the_cli_documents_them() {
        let p = |s: &str| s.parse::<FirstStage>().unwrap();
        assert_eq!(p("bm25"), FirstStage::Bm25 { language: "english".into() });
        assert_eq!(p("bm25:german"), FirstStage::Bm25 { language: "german".into() });
        assert_eq!(p("dense:BAAI/bge-small-en-v1.5"), FirstStage::Dense { model: "BAAI/bge-small-en-v1.5".into() });
        assert_eq!(
            p("bm25:none+dense:./m"),
            FirstStage::Fused { first: Box::new(FirstStage::Bm25 { language: "none".into() }), model: "./m".into() }
        );
        assert_eq!(p("runs/bm25.trec"), FirstStage::RunFile("runs/bm25.trec".into()));
        // "+dense:" fuses only after a BM25 stage; elsewhere it is a file name.
        assert_eq!(p("x+dense:m"), FirstStage::RunFile("x+dense:m".into()));
        assert!("".parse::<FirstStage>().is_err());
        assert_eq!(p("bm25+dense:m").embedder(), Some("m"));
        assert_eq!(p("bm25").embedder(), None);
    }
}
