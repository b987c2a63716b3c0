//! Qwen3 against transformers 4.57.6 running the model cards' own code
//! (tests/fixtures/gen_qwen3_fixtures.py), on committed random-init
//! fixtures with the real Qwen3 tokenizer: Qwen3-Reranker (input ids token
//! for token, P(yes) within 1e-4, raw log-odds within 2e-3), its seq-cls
//! conversion (the same scores as the causal form), Qwen3-Embedding
//! (last-token pooled, normalized, the query instruction).

mod common;

use common::{fixtures, max_abs_err, wgpu_device};
use crossrank::{Architecture, Checkpoint, Device, EmbedOptions, Embedder, Reranker, ScoreOptions};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    pairs: Vec<(String, String)>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    /// With `normalize: true` (the card's P(yes)).
    options: ScoreOptions,
    #[serde(default)]
    input_ids: Vec<Vec<u32>>,
    /// P(yes).
    scores: Vec<f32>,
    /// logit(yes) − logit(no).
    raw: Vec<f32>,
}

fn expected(model: &str) -> Expected {
    serde_json::from_slice(&std::fs::read(fixtures().join(model).join("expected.json")).unwrap()).unwrap()
}

fn opts(c: &ScoreOptions, normalize: bool) -> ScoreOptions {
    ScoreOptions { normalize, ..c.clone() }
}

/// Scores every case of `model`; returns the raw scores per case.
fn check(model: &str, device: &Device, tol_p: f32, tol_raw: f32, ids_from: Option<&Expected>) -> Vec<Vec<f32>> {
    let exp = expected(model);
    let r = Reranker::load(&Checkpoint::dir(fixtures().join(model)), device).unwrap();
    assert!(r.architecture().is_qwen3_reranker());
    let (mut worst_p, mut worst_raw) = (0f32, 0f32);
    let mut raws = Vec::new();
    for (k, case) in exp.cases.iter().enumerate() {
        let want_ids = ids_from.map_or(&case.input_ids, |e| &e.cases[k].input_ids);
        let enc = r.encode(&exp.pairs, &opts(&case.options, false)).unwrap();
        assert_eq!(enc.len(), want_ids.len());
        for (i, (got, want)) in enc.iter().zip(want_ids).enumerate() {
            assert_eq!(&got.ids, want, "{model}/{}: input ids of pair {i} differ", case.name);
        }
        let raw = r.compute_score(&exp.pairs, &opts(&case.options, false)).unwrap();
        let p = r.compute_score(&exp.pairs, &opts(&case.options, true)).unwrap();
        let (ep, er) = (max_abs_err(&p, &case.scores), max_abs_err(&raw, &case.raw));
        eprintln!("{model}/{}: P(yes) max abs err {ep:.2e}, raw {er:.2e}", case.name);
        assert!(ep <= tol_p, "{model}/{}: P(yes) {ep} > {tol_p}\n got {p:?}\nwant {:?}", case.name, case.scores);
        assert!(er <= tol_raw, "{model}/{}: raw {er} > {tol_raw}\n got {raw:?}\nwant {:?}", case.name, case.raw);
        worst_p = worst_p.max(ep);
        worst_raw = worst_raw.max(er);
        raws.push(raw);
    }
    eprintln!("{model}: worst P(yes) err {worst_p:.2e}, raw {worst_raw:.2e}");
    raws
}

#[test]
fn qwen3_reranker_matches_its_card_on_cpu() {
    let r = Reranker::load(&Checkpoint::dir(fixtures().join("qwen3-reranker-tiny")), &Device::flex()).unwrap();
    assert_eq!(r.architecture(), Architecture::Qwen3ForCausalLM);
    check("qwen3-reranker-tiny", &Device::flex(), 1e-4, 2e-3, None);
}

#[test]
fn qwen3_seq_cls_scores_as_the_causal_form() {
    let causal = expected("qwen3-reranker-tiny");
    let a = check("qwen3-reranker-tiny", &Device::flex(), 1e-4, 2e-3, None);
    let b = check("qwen3-seq-cls-tiny", &Device::flex(), 1e-4, 2e-3, Some(&causal));
    for (x, y) in a.iter().zip(&b) {
        let err = max_abs_err(x, y);
        assert!(err <= 1e-4, "causal vs seq-cls raw scores differ by {err}");
    }
}

#[test]
fn qwen3_max_length_too_small_for_the_prompt_is_an_error() {
    let r = Reranker::load(&Checkpoint::dir(fixtures().join("qwen3-reranker-tiny")), &Device::flex()).unwrap();
    let e = r.compute_score(&[("q", "d")], &ScoreOptions { max_length: Some(20), ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("max_length 20"), "{e}");
    // maxp: a long passage as windows, each within max_length; the first is
    // the truncated input and the score is the best window's.
    let long = "pandas eat bamboo and sleep a lot ".repeat(40);
    let o = ScoreOptions { max_length: Some(96), long_passages: crossrank::LongPassages::Maxp, ..Default::default() };
    let w = r.encode_windows(&[("what do pandas eat?", long.as_str())], &o).unwrap();
    assert!(w.items.len() > 2 && w.items.iter().all(|e| e.len() <= 96), "{} windows", w.items.len());
    let cut = r.encode(&[("what do pandas eat?", long.as_str())], &ScoreOptions { max_length: Some(96), ..Default::default() }).unwrap();
    assert_eq!(w.items[0], cut[0]);
}

#[test]
fn qwen3_rerankers_match_on_wgpu() {
    let Some(dev) = wgpu_device() else { return };
    let causal = expected("qwen3-reranker-tiny");
    check("qwen3-reranker-tiny", &dev, 1e-4, 2e-3, None);
    check("qwen3-seq-cls-tiny", &dev, 1e-4, 2e-3, Some(&causal));
}

#[derive(Deserialize)]
struct EmbedExpected {
    queries: Vec<String>,
    documents: Vec<String>,
    cases: Vec<EmbedCase>,
}

#[derive(Deserialize)]
struct EmbedCase {
    name: String,
    options: EmbedCaseOptions,
    queries: Vec<Vec<f32>>,
    documents: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct EmbedCaseOptions {
    #[serde(default)]
    max_length: Option<usize>,
    #[serde(default)]
    task: Option<String>,
}

fn check_embedding(device: &Device) {
    let exp: EmbedExpected =
        serde_json::from_slice(&std::fs::read(fixtures().join("qwen3-embedding-tiny/expected.json")).unwrap()).unwrap();
    let e = Embedder::load(&Checkpoint::dir(fixtures().join("qwen3-embedding-tiny")), device).unwrap();
    assert_eq!(e.prompt("query"), Some(crossrank::QWEN3_QUERY_PROMPT));
    let mut worst = 0f32;
    for case in &exp.cases {
        let o = &case.options;
        let (prompt, prompt_name) = match &o.task {
            Some(t) => (Some(format!("Instruct: {t}\nQuery:")), None),
            None => (None, Some("query".to_string())),
        };
        let q = e.embed(&exp.queries, &EmbedOptions { max_length: o.max_length, prompt, prompt_name, ..Default::default() }).unwrap();
        let d = e.embed(&exp.documents, &EmbedOptions { max_length: o.max_length, ..Default::default() }).unwrap();
        for (got, want) in q.iter().zip(&case.queries).chain(d.iter().zip(&case.documents)) {
            worst = worst.max(max_abs_err(got, want));
        }
        eprintln!("qwen3-embedding/{}: worst so far {worst:.2e}", case.name);
        assert!(worst <= 1e-4, "qwen3-embedding/{}: {worst}", case.name);
    }
    let e2 = e.embed(&["x"], &EmbedOptions { prompt_name: Some("passage".into()), ..Default::default() }).unwrap_err();
    assert!(e2.to_string().contains("no prompt named \"passage\""), "{e2}");
}

#[test]
fn qwen3_embedding_matches_its_card_on_cpu() {
    check_embedding(&Device::flex());
}

#[test]
fn qwen3_embedding_matches_on_wgpu() {
    let Some(dev) = wgpu_device() else { return };
    check_embedding(&dev);
}
