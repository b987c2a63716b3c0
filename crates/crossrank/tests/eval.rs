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
