//! `first-stage-bench`: crossrank's BM25 first stage (tantivy) timed on a
//! BEIR dataset, and any TREC run scored with crossrank's metrics, so the
//! `bm25` crate's run (benches/bm25/crate-bm25) is judged by the same code.
//! benches/bm25/run.sh runs both side by side; peak memory comes from
//! `/usr/bin/time` around each process.
//!
//!   first-stage-bench tantivy DATASET SPLIT [REPEAT] [RUN_OUT]
//!   first-stage-bench eval DATASET SPLIT RUN
//!
//! REPEAT > 1 indexes the corpus that many times (ids suffixed `#r`) to
//! measure how indexing and search scale; quality is only reported for 1.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use crossrank::eval::{bm25::Bm25Index, data, metrics};

fn quality(ds: &data::Dataset, run: &metrics::Run) -> serde_json::Value {
    let (_, m) = metrics::evaluate(&ds.qrels, run, &[10, 100]);
    serde_json::json!({ "ndcg_cut_10": m["ndcg_cut_10"], "recall_100": m["recall_100"], "recip_rank": m["recip_rank"] })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(1), arg(2), arg(3)) {
        (Some("tantivy"), Some(dir), Some(split)) => {
            let repeat: usize = arg(4).unwrap_or("1").parse().context("REPEAT")?;
            let t = Instant::now();
            let mut ds = data::load(Path::new(dir), split)?;
            if repeat > 1 {
                let mut big = data::Corpus::default();
                for r in 0..repeat {
                    for i in 0..ds.corpus.len() {
                        let id = if r == 0 { ds.corpus.id(i).to_string() } else { format!("{}#{r}", ds.corpus.id(i)) };
                        big.push(id, ds.corpus.text(i).to_string()).map_err(anyhow::Error::msg)?;
                    }
                }
                ds.corpus = big;
            }
            let load_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let index = Bm25Index::build(&ds.corpus, "english", &mut |_, _| {})?;
            let index_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let run = index.retrieve(&ds.corpus, &ds.queries, 100)?;
            let query_s = t.elapsed().as_secs_f64();
            let mut out = serde_json::json!({
                "library": "tantivy 0.27", "docs": ds.corpus.len(), "queries": ds.queries.len(),
                "load_s": load_s, "index_s": index_s, "query_s": query_s,
                "queries_per_s": ds.queries.len() as f64 / query_s.max(1e-9),
            });
            if repeat == 1 {
                out["quality"] = quality(&ds, &run);
            }
            if let Some(path) = arg(5) {
                data::write_run(Path::new(path), &run, "tantivy")?;
            }
            println!("{out}");
        }
        (Some("eval"), Some(dir), Some(split)) => {
            let ds = data::load(Path::new(dir), split)?;
            let run = data::read_run(Path::new(arg(4).context("RUN")?))?;
            println!("{}", quality(&ds, &run));
        }
        _ => bail!("usage: first-stage-bench tantivy DATASET SPLIT [REPEAT] [RUN_OUT] | eval DATASET SPLIT RUN"),
    }
    Ok(())
}
