//! Evaluation: trec_eval's measures against pytrec_eval (generated cases,
//! tests/fixtures/gen_eval_metrics.py), dataset layouts and TREC run files.

use std::collections::HashMap;
use std::path::PathBuf;

use crossrank::eval::data::{self, Corpus};
use crossrank::eval::metrics::{Qrels, Run, evaluate, measure_names};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn measures_equal_pytrec_eval_and_flagembedding_mrr() {
    let cases: Value = serde_json::from_slice(&std::fs::read(fixtures().join("eval/metrics-cases.json")).unwrap()).unwrap();
    let k_values: Vec<usize> = serde_json::from_value(cases["k_values"].clone()).unwrap();
    let (mut checked, mut worst) = (0usize, 0f64);
    for (c, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
        let qrels: Qrels = serde_json::from_value(case["qrels"].clone()).unwrap();
        let run: Run = serde_json::from_value::<HashMap<String, Vec<(String, f64)>>>(case["run"].clone()).unwrap();
        let (per_query, mean) = evaluate(&qrels, &run, &k_values);
        let want = case["per_query"].as_object().unwrap();
        // The same queries are evaluated (run and judged).
        let mut got_q: Vec<&String> = per_query.keys().collect();
        let mut want_q: Vec<&String> = want.keys().collect();
        got_q.sort();
        want_q.sort();
        assert_eq!(got_q, want_q, "case {c}: evaluated queries");
        for (q, w) in want {
            for name in measure_names(&k_values) {
                let Some(wv) = w.get(&name).and_then(Value::as_f64) else { panic!("case {c} {q}: reference lacks {name}") };
                let gv = per_query[q][&name];
                worst = worst.max((gv - wv).abs());
                assert!((gv - wv).abs() <= 1e-9, "case {c} query {q} {name}: {gv} vs pytrec_eval {wv}");
                checked += 1;
            }
        }
        // The mean is over the evaluated queries.
        let n = want.len() as f64;
        let want_mean: f64 = want.values().map(|w| w["ndcg_cut_10"].as_f64().unwrap()).sum::<f64>() / n;
        assert!((mean["ndcg_cut_10"] - want_mean).abs() <= 1e-9);
    }
    eprintln!("{checked} values equal to pytrec_eval / FlagEmbedding's MRR (worst |diff| {worst:.1e})");
    assert!(checked > 5000);
}

#[test]
fn ties_are_broken_by_docno_descending_as_trec_eval() {
    // Equal scores: trec_eval ranks "d9" before "d10" (strcmp, reversed),
    // whatever the run's order.
    let qrels: Qrels = [("q".to_string(), [("d10".to_string(), 1)].into_iter().collect())].into_iter().collect();
    let run: Run = [("q".to_string(), vec![("d10".to_string(), 1.0), ("d9".to_string(), 1.0)])].into_iter().collect();
    let (pq, _) = evaluate(&qrels, &run, &[1]);
    assert_eq!(pq["q"]["P_1"], 0.0);
    assert_eq!(pq["q"]["recip_rank"], 0.5);
    // FlagEmbedding's MRR keeps the run's order for ties.
    assert_eq!(pq["q"]["MRR@1"], 1.0);
    // -0.0 ties with 0.0 (C's and Python's comparisons), so the docno decides.
    let run: Run = [("q".to_string(), vec![("d9".to_string(), -0.0), ("d10".to_string(), 0.0)])].into_iter().collect();
    assert_eq!(evaluate(&qrels, &run, &[1]).0["q"]["recip_rank"], 0.5);
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crossrank-eval-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn loads_beir_and_flagembedding_layouts_alike() {
    let beir = tempdir("beir");
    write(
        &beir,
        "corpus.jsonl",
        "{\"_id\": \"d1\", \"title\": \"Pandas\", \"text\": \"The giant panda is a bear.\"}\n\n{\"_id\": 2, \"title\": \"\", \"text\": \"  Paris is in France. \"}\n",
    );
    write(&beir, "queries.jsonl", "{\"_id\": \"q1\", \"text\": \"what is a panda?\"}\n{\"_id\": \"q2\", \"text\": \"unjudged\"}\n");
    write(&beir, "qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t2\t0\n");
    let flag = tempdir("flag");
    write(
        &flag,
        "corpus.jsonl",
        "{\"id\": \"d1\", \"title\": \"Pandas\", \"text\": \"The giant panda is a bear.\"}\n{\"id\": \"2\", \"text\": \"  Paris is in France. \"}\n",
    );
    write(&flag, "test_queries.jsonl", "{\"id\": \"q1\", \"text\": \"what is a panda?\"}\n");
    write(
        &flag,
        "test_qrels.jsonl",
        "{\"qid\": \"q1\", \"docid\": \"d1\", \"relevance\": 2}\n{\"qid\": \"q1\", \"docid\": \"2\", \"relevance\": 0}\n",
    );
    for (dir, layout) in [(&beir, "beir"), (&flag, "flagembedding")] {
        let ds = data::load(dir, "test").unwrap();
        assert_eq!(ds.layout, layout);
        assert_eq!(ds.corpus.len(), 2);
        // FlagEmbedding's text: "{title} {text}".strip()
        assert_eq!(ds.corpus.get("d1"), Some("Pandas The giant panda is a bear."));
        assert_eq!(ds.corpus.get("2"), Some("Paris is in France."));
        // Only the split's judged queries.
        assert_eq!(ds.queries, vec![("q1".to_string(), "what is a panda?".to_string())]);
        assert_eq!(ds.qrels["q1"]["d1"], 2);
        assert_eq!(ds.qrels["q1"]["2"], 0);
    }
    let e = data::load(&beir, "dev").err().unwrap().to_string();
    assert!(e.contains("qrels/dev.tsv") && e.contains("dev_qrels.jsonl"), "{e}");
    assert!(data::load(&beir, "../x").is_err());
    // Bad lines are typed errors naming the line.
    write(&beir, "queries.jsonl", "{\"_id\": \"q1\", \"text\": \"a\"}\n{\"_id\": \"q1\", \"text\": \"b\"}\n");
    let e = data::load(&beir, "test").err().unwrap().to_string();
    assert!(e.contains("line 2") && e.contains("twice"), "{e}");
    write(&beir, "queries.jsonl", "{\"_id\": \"q1\"}\n");
    assert!(data::load(&beir, "test").err().unwrap().to_string().contains("line 1"));
    write(&beir, "queries.jsonl", "{\"_id\": \"q9\", \"text\": \"x\"}\n");
    assert!(data::load(&beir, "test").err().unwrap().to_string().contains("no text"));
    write(&beir, "qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tx\n");
    assert!(data::load(&beir, "test").err().unwrap().to_string().contains("line 2"));
    let mut c = Corpus::default();
    c.push("a".into(), "x".into()).unwrap();
    assert!(c.push("a".into(), "y".into()).is_err());
    let _ = std::fs::remove_dir_all(beir);
    let _ = std::fs::remove_dir_all(flag);
}

#[test]
fn trec_run_files_round_trip_in_trec_order() {
    let dir = tempdir("run");
    let run: Run = [
        ("q2".to_string(), vec![("d1".to_string(), 0.5), ("d3".to_string(), 2.0), ("d2".to_string(), 0.5)]),
        ("q1".to_string(), vec![("x".to_string(), -1.25)]),
    ]
    .into_iter()
    .collect();
    let path = dir.join("run.trec");
    data::write_run(&path, &run, "crossrank").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "q1 Q0 x 1 -1.25 crossrank\nq2 Q0 d3 1 2 crossrank\nq2 Q0 d2 2 0.5 crossrank\nq2 Q0 d1 3 0.5 crossrank\n");
    let back = data::read_run(&path).unwrap();
    assert_eq!(back["q2"], vec![("d3".to_string(), 2.0), ("d2".to_string(), 0.5), ("d1".to_string(), 0.5)]);
    std::fs::write(&path, "q1 Q0 a 1 1.0 t\nq1 Q0 a 2 0.5 t\n").unwrap();
    assert!(data::read_run(&path).err().unwrap().to_string().contains("twice"));
    std::fs::write(&path, "q1 Q0 a 1 NaN t\n").unwrap();
    assert!(data::read_run(&path).err().unwrap().to_string().contains("line 1"));
    std::fs::write(&path, "q1 a 1\n").unwrap();
    assert!(data::read_run(&path).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

/// BM25 as Lucene (and tantivy, and Elasticsearch in BEIR's baseline)
/// computes it, by hand: idf = ln(1 + (N - n + 0.5) / (n + 0.5)),
/// tf part = tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), k1 = 1.2,
/// b = 0.75, dl counting analysed tokens (stop words out). The words are
/// ones English stemming leaves alone, so the counts are plain to read.
#[cfg(feature = "bm25")]
#[test]
fn bm25_scores_are_lucene_bm25_over_the_analysed_text() {
    use crossrank::eval::bm25::Bm25Index;
    let mut corpus = Corpus::default();
    let docs = ["Cat dog bird", "cat cat fish", "dog the fish fish fish", "a bird sings", "Running runners run."];
    for (i, t) in docs.iter().enumerate() {
        corpus.push(format!("d{i}"), t.to_string()).unwrap();
    }
    let index = Bm25Index::build(&corpus, "english", &mut |_, _| {}).unwrap();
    // Analysed lengths: 3, 3, 4 ("the" dropped), 2 ("a" dropped), 3.
    let dl = [3.0f64, 3.0, 4.0, 2.0, 3.0];
    let avgdl = dl.iter().sum::<f64>() / dl.len() as f64;
    let n_docs = docs.len() as f64;
    let idf = |n: f64| (1.0 + (n_docs - n + 0.5) / (n + 0.5)).ln();
    let part = |tf: f64, d: usize| tf * 2.2 / (tf + 1.2 * (1.0 - 0.75 + 0.75 * dl[d] / avgdl));
    // "The CAT and the fish": cat (in d0 once, d1 twice), fish (d1 once, d2 three times).
    let want = [(1usize, idf(2.0) * part(2.0, 1) + idf(2.0) * part(1.0, 1)), (2, idf(2.0) * part(3.0, 2)), (0, idf(2.0) * part(1.0, 0))];
    let got = index.search("The CAT and the fish", 10).unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    for ((gd, gs), (wd, ws)) in got.iter().zip(&want) {
        assert_eq!(gd, wd, "{got:?}");
        assert!((*gs as f64 - ws).abs() < 1e-5, "d{gd}: {gs} vs {ws}");
    }
    // k cuts the list; stemming joins "runs" to "running"/"run"; stop
    // words alone match nothing; query syntax is just text.
    assert_eq!(index.search("cat fish", 1).unwrap().len(), 1);
    let run = index.search("runs", 10).unwrap();
    assert_eq!(run.iter().map(|h| h.0).collect::<Vec<_>>(), vec![4]);
    assert!((run[0].1 as f64 - idf(1.0) * part(2.0, 4)).abs() < 1e-5);
    assert!(index.search("the a and", 10).unwrap().is_empty());
    assert!(index.search("", 10).unwrap().is_empty());
    // bird (d0, d3), sing (d3), dog (d0, d2); AND and OR are stop words.
    assert_eq!(index.search("bird AND (sings OR \"dog", 10).unwrap().len(), 3);
    // Other languages; an unknown one is a typed error naming the choices.
    assert!(Bm25Index::build(&corpus, "none", &mut |_, _| {}).unwrap().search("runs", 10).unwrap().is_empty());
    let e = Bm25Index::build(&corpus, "klingon", &mut |_, _| {}).err().unwrap().to_string();
    assert!(e.contains("klingon") && e.contains("english"), "{e}");
}

#[test]
fn reciprocal_rank_fusion_sums_one_over_60_plus_rank() {
    use crossrank::eval::pipeline::reciprocal_rank_fusion;
    let run = |v: &[(&str, &str, f64)]| {
        let mut r = Run::new();
        for (q, d, s) in v {
            r.entry(q.to_string()).or_default().push((d.to_string(), *s));
        }
        r
    };
    // Ranks come from scores, not file order.
    let a = run(&[("q", "x", 1.0), ("q", "y", 9.0), ("q", "z", 5.0), ("p", "x", 1.0)]);
    let b = run(&[("q", "z", 0.9), ("q", "w", 0.8), ("r", "x", 0.1)]);
    let f = reciprocal_rank_fusion(&[&a, &b], 60.0, 3);
    let r = |rank: f64| 1.0 / (60.0 + rank);
    // q: y 1/61, z 1/62 + 1/61, x 1/63, w 1/62 → z, y, w (x cut by depth 3).
    let q: Vec<(&str, f64)> = f["q"].iter().map(|(d, s)| (d.as_str(), *s)).collect();
    assert_eq!(q.iter().map(|x| x.0).collect::<Vec<_>>(), ["z", "y", "w"]);
    for ((_, g), w) in q.iter().zip([r(2.0) + r(1.0), r(1.0), r(2.0)]) {
        assert!((g - w).abs() < 1e-15);
    }
    // A query in one run only keeps that run's ranking.
    assert_eq!(f["p"], vec![("x".to_string(), r(1.0))]);
    assert_eq!(f["r"], vec![("x".to_string(), r(1.0))]);
}
