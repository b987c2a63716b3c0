//! Parity with FlagEmbedding 1.4.2 on the committed random-init fixtures:
//! token ids identical, scores within 1e-4 on the CPU and 1e-3 on wgpu
//! (XLM-R, BERT, ModernBERT).

mod common;

use common::{expected, fixtures, max_abs_err, wgpu_device};
use crossrank::{Checkpoint, Device, Reranker};

fn check(model: &str, device: &Device, tol: f32, cases: Option<&[&str]>) {
    let exp = expected(model);
    let r = Reranker::load(&Checkpoint::dir(fixtures().join(model)), device).unwrap();
    let mut worst = 0f32;
    for case in &exp.cases {
        if cases.is_some_and(|c| !c.contains(&case.name.as_str())) {
            continue;
        }
        let opts = case.options.clone();
        let enc = r.encode(&exp.pairs, &opts).unwrap();
        for (i, (got, want)) in enc.iter().zip(&case.input_ids).enumerate() {
            assert_eq!(&got.ids, want, "{model}/{}: token ids of pair {i} differ", case.name);
        }
        let scores = r.compute_score(&exp.pairs, &opts).unwrap();
        let err = max_abs_err(&scores, &case.scores);
        eprintln!("{model}/{}: max abs err {err:.2e}", case.name);
        assert!(err <= tol, "{model}/{}: max abs error {err} > {tol}\n got {scores:?}\nwant {:?}", case.name, case.scores);
        worst = worst.max(err);
    }
    eprintln!("{model}: worst max abs err {worst:.2e} (tolerance {tol:.0e})");
}

#[test]
fn xlm_roberta_matches_flagembedding_on_cpu() {
    check("xlmr-tiny", &Device::flex(), 1e-4, None);
}

#[test]
fn bert_matches_flagembedding_on_cpu() {
    check("bert-tiny", &Device::flex(), 1e-4, None);
}

/// ModernBERT (cls and mean pooling, no biases and every bias; 4 layers
/// with 2 local ones whose ±8-token window most pairs outgrow).
#[test]
fn modernbert_matches_flagembedding_on_cpu() {
    for model in ["modernbert-cls-tiny", "modernbert-mean-tiny"] {
        let r = Reranker::load(&Checkpoint::dir(fixtures().join(model)), &Device::flex()).unwrap();
        assert_eq!(r.architecture(), crossrank::Architecture::ModernBertForSequenceClassification);
        check(model, &Device::flex(), 1e-4, None);
    }
}

#[test]
fn modernbert_matches_flagembedding_on_wgpu() {
    let Some(dev) = wgpu_device() else { return };
    let cases = ["default", "max_length_16_batch_3"];
    check("modernbert-cls-tiny", &dev, 1e-3, Some(&cases));
    check("modernbert-mean-tiny", &dev, 1e-3, Some(&cases));
}

#[test]
fn both_architectures_match_flagembedding_on_wgpu() {
    let Some(dev) = wgpu_device() else { return };
    // Every case on lavapipe costs kernel compilation per new shape; these
    // three cover multi-batch padding, truncation and the sigmoid.
    let cases = ["default", "max_length_16_batch_3", "batch_4_normalize"];
    check("xlmr-tiny", &dev, 1e-3, Some(&cases));
    check("bert-tiny", &dev, 1e-3, Some(&cases));
}

#[test]
fn rerank_orders_by_the_reference_scores() {
    let exp = expected("xlmr-tiny");
    let r = Reranker::load(&Checkpoint::dir(fixtures().join("xlmr-tiny")), &Device::flex()).unwrap();
    let query = &exp.pairs[0].0;
    let docs: Vec<&str> = exp.pairs.iter().map(|p| p.1.as_str()).collect();
    let ranked = r.rerank(query, &docs, Some(5), &Default::default()).unwrap();
    assert_eq!(ranked.len(), 5);
    let scores = r.compute_score(&docs.iter().map(|d| (query.as_str(), *d)).collect::<Vec<_>>(), &Default::default()).unwrap();
    let mut want: Vec<usize> = (0..docs.len()).collect();
    want.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), want[..5]);
    assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn loads_from_memory_like_the_browser() {
    let dir = fixtures().join("bert-tiny");
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    let exp = expected("bert-tiny");
    let r = Reranker::load(&Checkpoint::memory(files), &Device::flex()).unwrap();
    let scores = r.compute_score(&exp.pairs, &exp.cases[0].options.clone()).unwrap();
    assert!(max_abs_err(&scores, &exp.cases[0].scores) <= 1e-4);
}

#[test]
fn a_token_budget_changes_batches_not_scores() {
    let exp = expected("xlmr-tiny");
    let r = Reranker::load(&Checkpoint::dir(fixtures().join("xlmr-tiny")), &Device::flex()).unwrap();
    let case = &exp.cases[0];
    for budget in [1, 40, 200] {
        let opts = crossrank::ScoreOptions { max_batch_tokens: Some(budget), ..case.options.clone() };
        let err = max_abs_err(&r.compute_score(&exp.pairs, &opts).unwrap(), &case.scores);
        assert!(err <= 1e-4, "budget {budget}: max abs err {err}");
    }
}

/// A ModernBERT checkpoint as an embedder (its encoder; the head ignored):
/// the mean of the last hidden state over real tokens, as transformers'
/// `ModernBertModel` computes it (the fixtures' `embeddings`), on the CPU
/// and wgpu — the sliding windows on the bare-encoder path.
#[test]
fn modernbert_embeds_like_transformers() {
    #[derive(serde::Deserialize)]
    struct Emb {
        texts: Vec<String>,
        max_length: usize,
        vectors: Vec<Vec<f32>>,
    }
    let mut devices = vec![Device::flex()];
    devices.extend(wgpu_device());
    for model in ["modernbert-cls-tiny", "modernbert-mean-tiny"] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures().join(model).join("expected.json")).unwrap()).unwrap();
        let e: Emb = serde_json::from_value(v["embeddings"].clone()).unwrap();
        for dev in &devices {
            let emb = crossrank::Embedder::load(&Checkpoint::dir(fixtures().join(model)), dev).unwrap();
            let opts = crossrank::EmbedOptions {
                max_length: Some(e.max_length),
                pooling: Some(crossrank::Pooling::Mean),
                normalize: Some(false),
                ..Default::default()
            };
            let got = emb.embed(&e.texts, &opts).unwrap();
            let err = got.iter().zip(&e.vectors).map(|(g, w)| max_abs_err(g, w)).fold(0f32, f32::max);
            eprintln!("{model} embeddings on {dev:?}: max abs err {err:.2e}");
            assert!(err <= 1e-4, "{model}: {err}");
        }
    }
}
