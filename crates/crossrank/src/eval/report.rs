//! An evaluation's report: the first stage and each reranked run scored
//! against the judgments, as a markdown table (one row per measure, the
//! change from the first stage beside each reranked value) and as files —
//! `metrics.json` (mean measures), `per_query.json`, and each run as a
//! TREC run file (`first_stage.trec`, `reranked.trec` or
//! `reranked_layer_N.trec`).

use std::collections::BTreeMap;
use std::path::Path;

use super::data::{write_atomic, write_run};
use super::metrics::{Measures, Qrels, Run, evaluate, measure_names};
use crate::error::{Error, Result};

/// One run and its measures.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// `first_stage`, `reranked`, or `reranked_layer_N` for a layer-wise
    /// reranker scored at several layers.
    pub label: String,
    /// The run itself.
    pub run: Run,
    /// Measures per evaluated query (judged and ranked).
    pub per_query: BTreeMap<String, Measures>,
    /// Their means.
    pub mean: Measures,
}

impl Evaluated {
    fn new(label: String, run: Run, qrels: &Qrels, k_values: &[usize]) -> Self {
        let (per_query, mean) = evaluate(qrels, &run, k_values);
        Evaluated { label, run, per_query, mean }
    }
}

/// The first stage and the reranked runs, evaluated at the same cutoffs.
#[derive(Debug, Clone)]
pub struct Report {
    /// The measures' cutoffs.
    pub k_values: Vec<usize>,
    /// The first stage's whole run.
    pub first_stage: Evaluated,
    /// One reranked run per scoring layer.
    pub reranked: Vec<Evaluated>,
}

impl Report {
    /// Evaluate `first` (the first stage's whole run, as FlagEmbedding
    /// evaluates its retrieval results) and `reranked` (one run per scoring
    /// layer, `layers` naming them when there are several) at `k_values`.
    pub fn new(qrels: &Qrels, first: Run, reranked: Vec<Run>, layers: &[usize], k_values: &[usize]) -> Self {
        let several = reranked.len() > 1;
        let reranked = reranked
            .into_iter()
            .enumerate()
            .map(|(i, run)| {
                let label = match layers.get(i) {
                    Some(l) if several => format!("reranked_layer_{l}"),
                    _ if several => format!("reranked_{i}"),
                    _ => "reranked".to_string(),
                };
                Evaluated::new(label, run, qrels, k_values)
            })
            .collect();
        Report { k_values: k_values.to_vec(), first_stage: Evaluated::new("first_stage".into(), first, qrels, k_values), reranked }
    }

    /// Queries evaluated (judged and ranked by the first stage).
    pub fn queries(&self) -> usize {
        self.first_stage.per_query.len()
    }

    /// The markdown table: a row per measure, the first stage's mean, then
    /// each reranked run's mean with its change from the first stage.
    pub fn table(&self) -> String {
        let mut out = format!(
            "| measure | first stage | {} |\n|---|---|{}\n",
            self.reranked.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(" | "),
            "---|".repeat(self.reranked.len())
        );
        for name in measure_names(&self.k_values) {
            let first = self.first_stage.mean.get(&name).copied().unwrap_or(0.0);
            let cells: Vec<String> = self
                .reranked
                .iter()
                .map(|r| {
                    let v = r.mean.get(&name).copied().unwrap_or(0.0);
                    format!("{v:.4} ({:+.4})", v - first)
                })
                .collect();
            out.push_str(&format!("| {name} | {first:.4} | {} |\n", cells.join(" | ")));
        }
        out
    }

    /// `metrics.json`, `per_query.json` and every run as a TREC file into
    /// `dir` (created), each written aside and renamed into place.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        let json = |v: &Measures| serde_json::to_value(v).map_err(|e| Error::InvalidInput(e.to_string()));
        let pretty = |v: &serde_json::Map<String, serde_json::Value>| {
            serde_json::to_vec_pretty(v).map_err(|e| Error::InvalidInput(e.to_string()))
        };
        let all = || std::iter::once(&self.first_stage).chain(&self.reranked);
        let mut means = serde_json::Map::new();
        for e in all() {
            means.insert(e.label.clone(), json(&e.mean)?);
        }
        write_atomic(&dir.join("metrics.json"), &pretty(&means)?)?;
        let mut per_query = serde_json::Map::new();
        for q in self.first_stage.per_query.keys() {
            let mut entry = serde_json::Map::new();
            for e in all() {
                if let Some(v) = e.per_query.get(q) {
                    entry.insert(e.label.clone(), json(v)?);
                }
            }
            per_query.insert(q.clone(), entry.into());
        }
        write_atomic(&dir.join("per_query.json"), &pretty(&per_query)?)?;
        write_run(&dir.join("first_stage.trec"), &self.first_stage.run, "first_stage")?;
        for e in &self.reranked {
            write_run(&dir.join(format!("{}.trec", e.label)), &e.run, "crossrank")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(docs: &[(&str, &[(&str, f64)])]) -> Run {
        docs.iter().map(|(q, d)| (q.to_string(), d.iter().map(|(id, s)| (id.to_string(), *s)).collect())).collect()
    }

    #[test]
    fn table_and_files_report_both_runs() {
        let qrels: Qrels = HashMap::from([
            ("q1".to_string(), HashMap::from([("a".to_string(), 1)])),
            ("q2".to_string(), HashMap::from([("c".to_string(), 2)])),
        ]);
        // The first stage ranks the relevant document second for q1, first for q2.
        let first = run(&[("q1", &[("b", 2.0), ("a", 1.0)]), ("q2", &[("c", 3.0), ("d", 1.0)])]);
        // Reranked: first for both.
        let reranked = run(&[("q1", &[("a", 0.9), ("b", 0.1)]), ("q2", &[("c", 0.8), ("d", 0.2)])]);
        let r = Report::new(&qrels, first, vec![reranked], &[], &[1]);
        assert_eq!(r.queries(), 2);
        let table = r.table();
        assert!(table.starts_with("| measure | first stage | reranked |\n|---|---|---|\n"), "{table}");
        // P@1: 0.5 before, 1.0 after (+0.5).
        assert!(table.contains("| P_1 | 0.5000 | 1.0000 (+0.5000) |"), "{table}");
        let dir = tempfile::tempdir().unwrap();
        r.write(dir.path()).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("metrics.json")).unwrap()).unwrap();
        assert_eq!(m["first_stage"]["P_1"], 0.5);
        assert_eq!(m["reranked"]["P_1"], 1.0);
        let pq: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("per_query.json")).unwrap()).unwrap();
        assert_eq!(pq["q1"]["first_stage"]["P_1"], 0.0);
        assert_eq!(pq["q1"]["reranked"]["P_1"], 1.0);
        let trec = std::fs::read_to_string(dir.path().join("reranked.trec")).unwrap();
        assert!(trec.starts_with("q1 Q0 a 1 0.9 crossrank\n"), "{trec}");
        assert!(dir.path().join("first_stage.trec").exists());
    }

    #[test]
    fn several_layers_are_labelled_by_layer() {
        let r = Report::new(&Qrels::new(), Run::new(), vec![Run::new(), Run::new()], &[8, 40], &[1]);
        let labels: Vec<&str> = r.reranked.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["reranked_layer_8", "reranked_layer_40"]);
    }
}
