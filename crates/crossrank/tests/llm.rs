//! LLM rerankers vs FlagEmbedding 1.4.2 on the committed random-init
//! fixtures: bge-reranker-v2-gemma's architecture (FlagLLMReranker) and
//! bge-reranker-v2-minicpm-layerwise's (LayerWiseFlagLLMReranker). Input
//! ids identical (BOS, "A: "/"B: ", truncation, separator, prompt), scores
//! within 1e-3 on the CPU and 2e-3 on wgpu, per requested layer.

mod common;

use common::{fixtures, max_abs_err, wgpu_device};
use crossrank::{Architecture, Checkpoint, Device, Reranker, ScoreOptions};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    pairs: Vec<(String, String)>,
    cases: Vec<Case>,
    #[serde(default)]
    yes_token: Option<u32>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    options: ScoreOptions,
    input_ids: Vec<Vec<u32>>,
    /// One list per scoring layer.
    scores: Vec<Vec<f32>>,
}

fn check(model: &str, device: &Device, tol: f32, only: Option<&[&str]>) {
    let exp: Expected = serde_json::from_slice(&std::fs::read(fixtures().join(model).join("expected.json")).unwrap()).unwrap();
    let r = Reranker::load(&Checkpoint::dir(fixtures().join(model)), device).unwrap();
    assert!(r.architecture().is_llm());
    if let Some(yes) = exp.yes_token {
        assert_eq!(r.score_token(), Some(yes), "the scoring token must be tokenizer('Yes')[0]");
    }
    let mut worst = 0f32;
    for case in &exp.cases {
        if only.is_some_and(|o| !o.contains(&case.name.as_str())) {
            continue;
        }
        let opts = case.options.clone();
        let enc = r.encode(&exp.pairs, &opts).unwrap();
        for (i, (got, want)) in enc.iter().zip(&case.input_ids).enumerate() {
            assert_eq!(&got.ids, want, "{model}/{}: input ids of pair {i} differ", case.name);
        }
        let layers = r.compute_score_layers(&exp.pairs, &opts).unwrap();
        assert_eq!(layers.len(), case.scores.len(), "{model}/{}: number of score lists", case.name);
        for (l, (got, want)) in layers.iter().zip(&case.scores).enumerate() {
            let err = max_abs_err(got, want);
            eprintln!("{model}/{} layer-list {l}: max abs err {err:.2e}", case.name);
            assert!(err <= tol, "{model}/{} list {l}: {err} > {tol}\n got {got:?}\nwant {want:?}", case.name);
            worst = worst.max(err);
        }
    }
    eprintln!("{model}: worst max abs err {worst:.2e} (tolerance {tol:.0e})");
}

#[test]
fn gemma_matches_flag_llm_reranker_on_cpu() {
    check("gemma-tiny", &Device::flex(), 1e-3, None);
}

#[test]
fn minicpm_layerwise_matches_on_cpu() {
    check("minicpm-layerwise-tiny", &Device::flex(), 1e-3, None);
}

#[test]
fn llm_rerankers_match_on_wgpu() {
    let Some(dev) = wgpu_device() else { return };
    check("gemma-tiny", &dev, 2e-3, Some(&["default", "max_length_16_batch_3"]));
    check("minicpm-layerwise-tiny", &dev, 2e-3, Some(&["cutoff_2_4", "max_length_32_cutoff_2_3_4_batch_3"]));
}

#[test]
fn cutoff_layers_are_validated() {
    let r = Reranker::load(&Checkpoint::dir(fixtures().join("minicpm-layerwise-tiny")), &Device::flex()).unwrap();
    assert_eq!(r.architecture(), Architecture::LayerWiseMiniCpmForCausalLM);
    let opts = |c: Vec<usize>| crossrank::ScoreOptions { cutoff_layers: Some(c), ..Default::default() };
    // start_layer is 2, num_hidden_layers 4: nothing valid left is an error.
    assert!(matches!(r.cutoff_layers(&opts(vec![0, 1, 9])), Err(crossrank::Error::InvalidInput(_))));
    assert_eq!(r.cutoff_layers(&opts(vec![1, 3])).unwrap(), vec![3]);
    // Several layers through compute_score is a typed error, not a silent pick.
    let e = r.compute_score(&[("q", "p")], &opts(vec![2, 4])).unwrap_err();
    assert!(matches!(e, crossrank::Error::InvalidInput(_)), "{e}");
    // Cross-encoders reject layer options.
    let bert = Reranker::load(&Checkpoint::dir(fixtures().join("bert-tiny")), &Device::flex()).unwrap();
    assert!(bert.compute_score(&[("q", "p")], &opts(vec![2])).is_err());
}
