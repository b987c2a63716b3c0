//! BM25 with the `bm25` crate (2.3) on a BEIR dataset: the embedder fitted
//! to the corpus (English: stop words, Snowball stemming; k1 = 1.2,
//! b = 0.75, as tantivy), one sparse embedding per document in its `Scorer`
//! (texts are not kept), top 100 per judged query of SPLIT. Writes a TREC run
//! and prints timings as JSON; `first-stage-bench eval` scores the run.
//!
//!   crate-bm25-bench DATASET SPLIT REPEAT RUN_OUT

use std::io::{BufRead, Write};
use std::time::Instant;

use bm25::{EmbedderBuilder, Language, Scorer};

fn jsonl(path: &str) -> Vec<serde_json::Value> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    std::io::BufReader::new(f).lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (dir, split, repeat, out) = (&a[1], &a[2], a[3].parse::<usize>().unwrap(), &a[4]);
    let t = Instant::now();
    let mut ids = Vec::new();
    let mut texts = Vec::new();
    for r in 0..repeat {
        for d in jsonl(&format!("{dir}/corpus.jsonl")) {
            let id = d["_id"].as_str().unwrap();
            ids.push(if r == 0 { id.to_string() } else { format!("{id}#{r}") });
            texts.push(format!("{} {}", d["title"].as_str().unwrap_or(""), d["text"].as_str().unwrap_or("")).trim().to_string());
        }
    }
    let judged: std::collections::HashSet<String> = std::fs::read_to_string(format!("{dir}/qrels/{split}.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    let queries: Vec<(String, String)> = jsonl(&format!("{dir}/queries.jsonl"))
        .into_iter()
        .map(|q| (q["_id"].as_str().unwrap().to_string(), q["text"].as_str().unwrap().to_string()))
        .filter(|(id, _)| judged.contains(id))
        .collect();
    let load_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embedder = EmbedderBuilder::<u32>::with_fit_to_corpus(Language::English, &refs).build();
    let mut scorer = Scorer::<usize>::new();
    for (i, text) in texts.iter().enumerate() {
        scorer.upsert(&i, embedder.embed(text));
    }
    drop(refs);
    // The scorer holds embeddings only; texts are not needed any more.
    drop(texts);
    let index_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut run = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    for (qid, text) in &queries {
        let hits = scorer.matches(&embedder.embed(text));
        for (rank, hit) in hits.iter().take(100).enumerate() {
            writeln!(run, "{qid} Q0 {} {} {} bm25crate", ids[hit.id], rank + 1, hit.score).unwrap();
        }
    }
    run.flush().unwrap();
    let query_s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "library": "bm25 2.3", "docs": ids.len(), "queries": queries.len(), "load_s": load_s,
            "index_s": index_s, "query_s": query_s, "queries_per_s": queries.len() as f64 / query_s.max(1e-9),
        })
    );
}
