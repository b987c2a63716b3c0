//! Rerank a first stage's top-k as FlagEmbedding's `EvalReranker` does:
//! per query, the first stage's `top_k` documents by score (a stable sort:
//! ties keep the run's order), scored as (query text, document text) pairs;
//! the reranked run holds those documents with the reranker's scores.

use super::data::Dataset;
use super::metrics::Run;
use crate::error::{Error, Result};
use crate::rerank::{Reranker, ScoreOptions};

/// Each query's `k` best documents of `run`, best first (stable: ties in
/// the run's order, as Python's `sorted` leaves them).
pub fn top_k(run: &Run, k: usize) -> Run {
    run.iter()
        .map(|(q, docs)| {
            let mut v = docs.clone();
            v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
            v.truncate(k);
            (q.clone(), v)
        })
        .collect()
}

/// The (query, document) pairs to score: (query id, document index) for
/// each candidate of each query the dataset has text for, queries in the
/// dataset's order. A candidate missing from the corpus is an error.
pub fn candidate_pairs(ds: &Dataset, candidates: &Run) -> Result<Vec<(usize, usize)>> {
    let mut pairs = Vec::new();
    for (qi, (qid, _)) in ds.queries.iter().enumerate() {
        for (docid, _) in candidates.get(qid).map(Vec::as_slice).unwrap_or_default() {
            let d = ds.corpus.position(docid).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the first stage ranks document {docid:?} for query {qid:?}, but the corpus has no such document"
                ))
            })?;
            pairs.push((qi, d));
        }
    }
    Ok(pairs)
}

/// Score the candidates: one reranked run per scoring layer (one for every
/// model but a layer-wise one with several cutoff layers). `progress(done,
/// total)` is called after each chunk of pairs.
pub fn rerank(
    reranker: &Reranker,
    ds: &Dataset,
    candidates: &Run,
    opts: &ScoreOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Run>> {
    let pairs = candidate_pairs(ds, candidates)?;
    // Chunks of several batches: compute_score sorts each by length, and the
    // progress bar moves.
    let chunk = (opts.batch_size.max(1) * 8).max(256);
    let layers = reranker.cutoff_layers(opts)?.len().max(1);
    let mut runs: Vec<Run> = vec![Run::new(); layers];
    let mut done = 0;
    progress(0, pairs.len());
    for part in pairs.chunks(chunk) {
        // Borrowed texts: the corpus is not copied.
        let texts: Vec<(&str, &str)> = part.iter().map(|&(q, d)| (ds.queries[q].1.as_str(), ds.corpus.text(d))).collect();
        let scores = reranker.compute_score_layers(&texts, opts)?;
        for (run, layer) in runs.iter_mut().zip(&scores) {
            for (&(q, d), &s) in part.iter().zip(layer) {
                run.entry(ds.queries[q].0.clone()).or_default().push((ds.corpus.id(d).to_string(), s as f64));
            }
        }
        done += part.len();
        progress(done, pairs.len());
    }
    Ok(runs)
}

/// Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009), the
/// usual way to combine a lexical and a dense first stage: each document
/// scores Σ 1 / (`k` + rank) over the runs that rank it (rank from 1, each
/// run ordered by score, stable), and each query keeps its `depth` best.
/// Rank-based, so BM25's unbounded scores and cosines need no calibration;
/// `k` = 60 is the paper's constant. Ties keep the order in which the runs
/// first listed the documents.
pub fn reciprocal_rank_fusion(runs: &[&Run], k: f64, depth: usize) -> Run {
    let mut fused = Run::new();
    let mut queries: Vec<&String> = runs.iter().flat_map(|r| r.keys()).collect();
    queries.sort();
    queries.dedup();
    for q in queries {
        let mut scores: Vec<(String, f64)> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for run in runs {
            let Some(docs) = run.get(q) else { continue };
            let mut ranked: Vec<&(String, f64)> = docs.iter().collect();
            ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
            for (rank, (doc, _)) in ranked.into_iter().enumerate() {
                let add = 1.0 / (k + rank as f64 + 1.0);
                match at.get(doc) {
                    Some(&i) => scores[i].1 += add,
                    None => {
                        at.insert(doc.clone(), scores.len());
                        scores.push((doc.clone(), add));
                    }
                }
            }
        }
        scores.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
        scores.truncate(depth);
        fused.insert(q.clone(), scores);
    }
    fused
}
