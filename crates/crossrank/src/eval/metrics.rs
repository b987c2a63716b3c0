//! IR metrics with trec_eval's semantics (what pytrec_eval and therefore
//! FlagEmbedding's evaluation report), plus FlagEmbedding's MRR@k.
//!
//! - A run's documents are ranked by score, descending; ties go to the
//!   larger document id first (trec_eval compares docnos with `strcmp`,
//!   reversed) — never the run's own order.
//! - A judgment of 1 or more is relevant (trec_eval's default
//!   `relevance_level`); nDCG gains are the judgment values (negative ones
//!   count as 0); documents the qrels do not judge are not relevant.
//! - A query without judgments is not evaluated (pytrec_eval leaves it out
//!   of its result, and averages are over the evaluated queries); a query
//!   judged but not run is not evaluated either.
//! - `MRR@k` is FlagEmbedding 1.4.2's `evaluate_mrr`: a stable sort by score,
//!   so ties keep the run's order, then the reciprocal rank of the first
//!   document judged above 0 within the first k.
//!
//! Checked against pytrec_eval (pytrec-eval-terrier) to 1e-9 on generated
//! cases: tests/fixtures/gen_eval_metrics.py, crates/crossrank/tests/eval.rs.

use std::collections::{BTreeMap, HashMap};

/// Judgments: query id → document id → relevance.
pub type Qrels = HashMap<String, HashMap<String, i32>>;

/// A ranking per query: (document id, score), in the order the run gave them.
pub type Run = HashMap<String, Vec<(String, f64)>>;

/// Measure name → value, for one query or averaged.
pub type Measures = BTreeMap<String, f64>;

/// The measures [`evaluate_query`] computes for `k_values`, by name:
/// `ndcg_cut_k`, `map_cut_k`, `recall_k`, `P_k`, `MRR@k`, `recip_rank`.
pub fn measure_names(k_values: &[usize]) -> Vec<String> {
    let mut names = Vec::new();
    for prefix in ["ndcg_cut_", "map_cut_", "recall_", "P_", "MRR@"] {
        names.extend(k_values.iter().map(|k| format!("{prefix}{k}")));
    }
    names.push("recip_rank".into());
    names
}

/// Ranked as trec_eval ranks: score descending, then document id descending.
pub fn trec_order(ranked: &[(String, f64)]) -> Vec<(&str, f64)> {
    let mut v: Vec<(&str, f64)> = ranked.iter().map(|(d, s)| (d.as_str(), *s)).collect();
    v.sort_by(|a, b| by_score(b.1, a.1).then_with(|| b.0.as_bytes().cmp(a.0.as_bytes())));
    v
}

/// Scores compared as C and Python compare them: -0.0 equals 0.0 (a NaN,
/// which runs cannot hold, sorts as equal).
fn by_score(a: f64, b: f64) -> std::cmp::Ordering {
    a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
}

/// Every measure of one query, or None when the query has no judgments.
pub fn evaluate_query(judged: Option<&HashMap<String, i32>>, ranked: &[(String, f64)], k_values: &[usize]) -> Option<Measures> {
    let judged = judged?;
    let rel = |d: &str| judged.get(d).copied().unwrap_or(0);
    let order = trec_order(ranked);
    let num_rel = judged.values().filter(|&&r| r >= 1).count();
    // Ideal gains, best first.
    let mut ideal: Vec<f64> = judged.values().filter(|&&r| r > 0).map(|&r| r as f64).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));

    let mut out = Measures::new();
    for &k in k_values {
        let top = &order[..order.len().min(k)];
        let (mut hits, mut ap, mut dcg) = (0usize, 0.0f64, 0.0f64);
        for (i, (d, _)) in top.iter().enumerate() {
            let r = rel(d);
            if r > 0 {
                dcg += r as f64 / ((i + 2) as f64).log2();
            }
            if r >= 1 {
                hits += 1;
                ap += hits as f64 / (i + 1) as f64;
            }
        }
        let idcg: f64 = ideal.iter().take(k).enumerate().map(|(i, g)| g / ((i + 2) as f64).log2()).sum();
        out.insert(format!("ndcg_cut_{k}"), if idcg > 0.0 { dcg / idcg } else { 0.0 });
        out.insert(format!("map_cut_{k}"), if num_rel > 0 { ap / num_rel as f64 } else { 0.0 });
        out.insert(format!("recall_{k}"), if num_rel > 0 { hits as f64 / num_rel as f64 } else { 0.0 });
        out.insert(format!("P_{k}"), hits as f64 / k as f64);
    }
    let first = order.iter().position(|(d, _)| rel(d) >= 1);
    out.insert("recip_rank".into(), first.map_or(0.0, |i| 1.0 / (i + 1) as f64));

    // FlagEmbedding's MRR@k: stable sort (ties in run order).
    let mut stable: Vec<(&str, f64)> = ranked.iter().map(|(d, s)| (d.as_str(), *s)).collect();
    stable.sort_by(|a, b| by_score(b.1, a.1));
    for &k in k_values {
        let rr = stable.iter().take(k).position(|(d, _)| rel(d) > 0).map_or(0.0, |i| 1.0 / (i + 1) as f64);
        out.insert(format!("MRR@{k}"), rr);
    }
    Some(out)
}

/// Per-query measures of every query that is both run and judged, and
/// their mean (over those queries).
pub fn evaluate(qrels: &Qrels, run: &Run, k_values: &[usize]) -> (BTreeMap<String, Measures>, Measures) {
    let per_query: BTreeMap<String, Measures> =
        run.iter().filter_map(|(q, ranked)| Some((q.clone(), evaluate_query(qrels.get(q), ranked, k_values)?))).collect();
    let mut mean = Measures::new();
    for m in per_query.values() {
        for (name, v) in m {
            *mean.entry(name.clone()).or_default() += v;
        }
    }
    let n = per_query.len().max(1) as f64;
    mean.values_mut().for_each(|v| *v /= n);
    (per_query, mean)
}
