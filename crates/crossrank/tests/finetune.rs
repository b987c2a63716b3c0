//! Fine-tuning against FlagEmbedding 1.4.2's encoder-only runner on
//! PyTorch (tests/fixtures/gen_finetune_steps.py): three optimizer steps
//! on bert-tiny with dropout 0 — AdamW, linear warmup, weight decay off
//! for biases and LayerNorm, gradient clipping, gradient accumulation 2 —
//! give the same losses, learning rates, gradient norms and weights.
#![cfg(feature = "train")]

mod common;

use std::sync::atomic::AtomicBool;

use common::fixtures;
use crossrank::finetune::data::{DataArgs, Group, TrainExample, read_jsonl};
use crossrank::finetune::train::{FineTuner, LoraArgs, TrainArgs};
use crossrank::{Checkpoint, Device};
use serde_json::Value;

fn reference(name: &str) -> (Value, safetensors::SafeTensors<'static>) {
    let dir = fixtures().join("finetune");
    let doc: Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let bytes: &'static [u8] = Box::leak(std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap().into_boxed_slice());
    (doc, safetensors::SafeTensors::deserialize(bytes).unwrap())
}

fn f32s(t: &safetensors::tensor::TensorView) -> Vec<f32> {
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn args_from(doc: &Value) -> (DataArgs, TrainArgs) {
    let a = &doc["args"];
    let data = DataArgs {
        train_group_size: a["train_group_size"].as_u64().unwrap() as usize,
        query_max_len: a["query_max_len"].as_u64().unwrap() as usize,
        passage_max_len: a["passage_max_len"].as_u64().unwrap() as usize,
        knowledge_distillation: a["knowledge_distillation"].as_bool().unwrap(),
        ..DataArgs::default()
    };
    let train = TrainArgs {
        learning_rate: a["learning_rate"].as_f64().unwrap(),
        per_device_train_batch_size: a["per_device_train_batch_size"].as_u64().unwrap() as usize,
        gradient_accumulation_steps: a["gradient_accumulation_steps"].as_u64().unwrap() as usize,
        warmup_ratio: a["warmup_ratio"].as_f64().unwrap(),
        weight_decay: a["weight_decay"].as_f64().unwrap(),
        max_steps: Some(a["max_steps"].as_u64().unwrap() as usize),
        max_grad_norm: a["max_grad_norm"].as_f64().unwrap(),
        ..TrainArgs::default()
    };
    (data, train)
}

/// The generator's draws: the first positive, the negatives in order.
fn groups(examples: &[TrainExample], data: &DataArgs) -> Vec<Group> {
    examples
        .iter()
        .map(|e| {
            let mut passages = vec![e.pos[0].clone()];
            passages.extend(e.neg.iter().take(data.train_group_size - 1).cloned());
            let teacher_scores = data.knowledge_distillation.then(|| {
                let mut t = vec![e.pos_scores.as_ref().unwrap()[0]];
                t.extend(e.neg_scores.as_ref().unwrap().iter().take(data.train_group_size - 1));
                t
            });
            Group { query: e.query.clone(), passages, teacher_scores, prompt: e.prompt.clone() }
        })
        .collect()
}

fn check_steps(name: &str) {
    let (doc, want) = reference(name);
    let (data, train) = args_from(&doc);
    let lines: String = doc["examples"].as_array().unwrap().iter().map(|e| format!("{e}\n")).collect();
    let examples = read_jsonl(&lines, &data).unwrap();
    let groups = groups(&examples, &data);
    let fixture = doc["fixture"].as_str().unwrap_or("bert-tiny");
    let word_table = doc["word_table"].as_str().unwrap_or("bert.embeddings.word_embeddings.weight");
    let mut tuner = FineTuner::new(Checkpoint::dir(fixtures().join(fixture)), data, train, &Device::flex()).unwrap();
    let (b, ga) = (2, 2);
    let logged = doc["logged"].as_array().unwrap();
    for (s, step_groups) in groups.chunks(b * ga).enumerate() {
        let micro: Vec<Vec<Group>> = step_groups.chunks(b).map(<[Group]>::to_vec).collect();
        let out = tuner.step(&micro).unwrap();
        let want_loss = doc["step_losses"][s].as_f64().unwrap();
        let want_norm = logged[s]["grad_norm"].as_f64().unwrap();
        let want_lr = logged[s]["learning_rate"].as_f64().unwrap();
        eprintln!(
            "{name} step {}: loss {} (want {want_loss}), grad norm {} (want {want_norm}), lr {}",
            s + 1,
            out.loss,
            out.grad_norm,
            out.learning_rate
        );
        assert!((out.loss - want_loss).abs() <= 1e-5, "step {s}: loss {} vs {want_loss}", out.loss);
        assert!((out.grad_norm - want_norm).abs() <= 1e-5 * want_norm.max(1.0), "step {s}: grad norm {} vs {want_norm}", out.grad_norm);
        assert!((out.learning_rate - want_lr).abs() <= 1e-12, "step {s}: lr {} vs {want_lr}", out.learning_rate);
    }
    // Every weight after three steps.
    let (mut worst, mut worst_name, mut compared) = (0f32, String::new(), 0usize);
    for (tensor_name, view) in want.tensors() {
        let want_vals = f32s(&view);
        let got: Vec<f32> = if tensor_name == "word_rows" {
            let table = tuner.parameter(word_table).unwrap();
            let h = view.shape()[1];
            doc["word_rows"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    let r = r.as_u64().unwrap() as usize;
                    table[r * h..(r + 1) * h].to_vec()
                })
                .collect()
        } else {
            tuner.parameter(&tensor_name).unwrap_or_else(|| panic!("no parameter {tensor_name}"))
        };
        assert_eq!(got.len(), want_vals.len(), "{tensor_name}");
        let e = got.iter().zip(&want_vals).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
        // Tensors whose exact gradient is zero: a shared logit bias under a
        // softmax over the group, a key bias under the softmax over keys
        // (q·(k + b) shifts every key's logit by q·b). Both sides compute
        // rounding noise (~1e-8) there, and Adam divides noise by its own
        // magnitude: steps of up to ±lr in a direction neither run
        // determines. What is checked there: they moved no more than Adam can.
        if tensor_name == "classifier.bias" || tensor_name.ends_with("attention.self.key.bias") {
            let lr = doc["args"]["learning_rate"].as_f64().unwrap() as f32;
            assert!(e <= 2.0 * 3.0 * lr, "{tensor_name}: {e}");
            continue;
        }
        for (g, w) in got.iter().zip(&want_vals) {
            let e = (g - w).abs();
            if e > worst {
                worst = e;
                worst_name = tensor_name.clone();
            }
        }
        compared += got.len();
    }
    eprintln!("{name}: {compared} weights, max |crossrank − FlagEmbedding| = {worst:.2e} ({worst_name})");
    assert!(compared > 10_000);
    assert!(worst <= 1e-5, "{worst_name}: {worst}");
}

#[test]
fn three_steps_equal_flagembedding() {
    check_steps("steps");
}

/// A ModernBERT cross-encoder through FlagEmbedding's same encoder-only
/// runner: its local layers' windows are shorter than the training pairs.
#[test]
fn three_modernbert_steps_equal_flagembedding() {
    check_steps("steps-modernbert");
}

#[test]
fn three_distillation_steps_equal_flagembedding() {
    check_steps("steps-kd");
}

/// The whole loop: training writes the log and a Hugging Face checkpoint
/// that loads and scores like the trainer's own weights; a stop request
/// saves a resumable checkpoint, and resuming it ends where an
/// uninterrupted run ends.
#[test]
fn train_saves_a_loadable_model_and_resumes() {
    let (doc, _) = reference("steps");
    let (data, mut train) = args_from(&doc);
    train.max_steps = Some(4);
    train.logging_steps = 1;
    train.save_steps = 100;
    let lines: String = doc["examples"].as_array().unwrap().iter().map(|e| format!("{e}\n")).collect();
    let examples = read_jsonl(&lines, &data).unwrap();
    let ck = || Checkpoint::dir(fixtures().join("bert-tiny"));
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();

    let full = tmp.path().join("full");
    let mut t = FineTuner::new(ck(), data.clone(), train.clone(), &dev).unwrap();
    let report = t.train(&examples, &full, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!((report.steps, report.interrupted), (4, false));
    let log = std::fs::read_to_string(full.join("train_log.jsonl")).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["step"], 4);
    assert!(lines.iter().all(|l| l["loss"].as_f64().unwrap().is_finite() && l["learning_rate"].is_number()));

    // The saved checkpoint scores as the trainer does.
    let probe = vec![Group {
        query: "what is a panda?".into(),
        passages: vec!["The giant panda is a bear.".into(), "hi".into(), "Paris is in France.".into(), "x".into()],
        teacher_scores: None,
        prompt: None,
    }];
    let want = t.score(&probe).unwrap();
    let r = crossrank::Reranker::load(&Checkpoint::dir(&full), &dev).unwrap();
    let pairs: Vec<(&str, &str)> = probe[0].passages.iter().map(|p| ("what is a panda?", p.as_str())).collect();
    let opts = crossrank::ScoreOptions { max_length: Some(48), ..Default::default() };
    let got = r.compute_score(&pairs, &opts).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
    }

    // Interrupted after its first step, then resumed: the same weights.
    let part = tmp.path().join("part");
    let mut t2 = FineTuner::new(ck(), data.clone(), train.clone(), &dev).unwrap();
    let stop = AtomicBool::new(true);
    let report = t2.train(&examples, &part, &stop, &mut |_| {}).unwrap();
    assert!(report.interrupted);
    assert_eq!(report.saved, part.join("checkpoint-1"));
    let mut t3 = FineTuner::resume(&report.saved, data.clone(), train.clone(), &dev).unwrap();
    assert_eq!(t3.global_step(), 1);
    let report = t3.train(&examples, &part, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!((report.steps, report.interrupted), (4, false));
    for name in ["classifier.weight", "bert.encoder.layer.1.output.dense.weight", "bert.embeddings.LayerNorm.bias"] {
        let (a, b) = (t.parameter(name).unwrap(), t3.parameter(name).unwrap());
        let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(err < 1e-6, "{name}: {err}");
    }
    // Other arguments are refused on resume.
    let other = TrainArgs { learning_rate: 1.0, ..train };
    assert!(FineTuner::resume(&part.join("checkpoint-1"), data, other, &dev).is_err());
}

/// A LoRA fixture's arguments (the generators' `args`: group size, lengths,
/// lr, batch, weight decay, steps) and its examples as the generator drew
/// their groups.
fn lora_setup(doc: &Value) -> (DataArgs, TrainArgs, Vec<Group>) {
    let a = &doc["args"];
    let data = DataArgs {
        train_group_size: a["train_group_size"].as_u64().unwrap() as usize,
        query_max_len: a["query_max_len"].as_u64().unwrap() as usize,
        passage_max_len: a["passage_max_len"].as_u64().unwrap() as usize,
        ..DataArgs::default()
    };
    let train = TrainArgs {
        learning_rate: a["learning_rate"].as_f64().unwrap(),
        per_device_train_batch_size: a["per_device_train_batch_size"].as_u64().unwrap() as usize,
        weight_decay: a["weight_decay"].as_f64().unwrap(),
        max_steps: Some(a["max_steps"].as_u64().unwrap() as usize),
        ..TrainArgs::default()
    };
    let lines: String = doc["examples"].as_array().unwrap().iter().map(|e| format!("{e}\n")).collect();
    let examples = read_jsonl(&lines, &data).unwrap();
    let groups = groups(&examples, &data);
    (data, train, groups)
}

/// LoRA on Gemma against FlagEmbedding's decoder-only runner with PEFT
/// (tests/fixtures/gen_finetune_lora.py): from the adapters PEFT drew, two
/// steps — the training inputs token for token (no "A: "/"B: ", per-example
/// prompts), the losses, gradient norms (the second is clipped) and every
/// adapter value; then the merged checkpoint scores as the trainer does.
#[test]
fn lora_steps_on_gemma_equal_flagembedding() {
    let dir = fixtures().join("finetune");
    let doc: Value = serde_json::from_slice(&std::fs::read(dir.join("lora.json")).unwrap()).unwrap();
    let (data, train, groups) = lora_setup(&doc);
    let lora = LoraArgs { lora_dropout: 0.0, from_peft: Some(dir.join("lora-init")), ..LoraArgs::default() };
    let mut tuner = FineTuner::new_lora(Checkpoint::dir(fixtures().join("gemma-tiny")), data, train, lora, &Device::flex()).unwrap();
    assert_eq!(tuner.parameter_count().0, 2 * 7 * 2, "A and B for the 7 projections of 2 layers");
    for (s, batch) in groups.chunks(2).enumerate() {
        let ids: Vec<Vec<u32>> = tuner.encode_groups(batch).unwrap().into_iter().map(|e| e.ids).collect();
        let want: Vec<Vec<u32>> = serde_json::from_value(doc["inputs"][s].clone()).unwrap();
        assert_eq!(ids, want, "step {s}: training inputs");
        let out = tuner.step(&[batch.to_vec()]).unwrap();
        let (want_loss, want_norm) = (doc["step_losses"][s].as_f64().unwrap(), doc["logged"][s]["grad_norm"].as_f64().unwrap());
        eprintln!("lora step {}: loss {} (want {want_loss}), grad norm {} (want {want_norm})", s + 1, out.loss, out.grad_norm);
        assert!((out.loss - want_loss).abs() <= 1e-5, "step {s}: loss {} vs {want_loss}", out.loss);
        assert!((out.grad_norm - want_norm).abs() <= 1e-5 * want_norm.max(1.0), "step {s}: grad norm {}", out.grad_norm);
    }
    let bytes = std::fs::read(dir.join("lora-final.safetensors")).unwrap();
    let want = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (mut worst, mut total, mut above) = (0f32, 0usize, 0usize);
    for (name, view) in want.tensors() {
        let ours = name.strip_prefix("base_model.model.").unwrap();
        let got = tuner.parameter(ours).unwrap_or_else(|| panic!("no {ours}"));
        let err = got.iter().zip(f32s(&view)).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
        above += got.iter().zip(f32s(&view)).filter(|(g, w)| (*g - *w).abs() > 1e-5).count();
        total += got.len();
        worst = worst.max(err);
    }
    eprintln!("lora: {} adapter tensors, {total} values: max |crossrank − FlagEmbedding| = {worst:.2e}, {above} above 1e-5", want.len());
    // Adam divides each gradient by its own running magnitude: where a
    // gradient is near adam_epsilon (1e-8), rounding differences between
    // the merged product (W + s·BA, here) and PEFT's separate one (x·Aᵀ·Bᵀ)
    // become update differences of up to lr × δg / eps. A handful of
    // values land there (4 of 2048 at lr 1e-3, all in one tensor); the
    // rest agree to 1e-5, and none is off by more than 5 % of one step.
    assert!(above * 100 <= total, "{above} of {total} values above 1e-5");
    assert!(worst <= 5e-5, "{worst}");

    // The merged checkpoint (adapters folded into q/k/v/o) scores as the trainer.
    let tmp = tempfile::tempdir().unwrap();
    let probe = groups[..1].to_vec();
    let want_scores = tuner.score(&probe).unwrap();
    tuner.save_model(tmp.path()).unwrap();
    assert!(tmp.path().join("adapter/adapter_model.safetensors").is_file());
    let r = crossrank::Reranker::load(&Checkpoint::dir(tmp.path()), &Device::flex()).unwrap();
    let ids = tuner.encode_groups(&probe).unwrap();
    let refs: Vec<&crossrank::Encoded> = ids.iter().collect();
    let got = r.score_encoded(&refs, &[]).unwrap().remove(0);
    for (g, w) in got.iter().zip(&want_scores) {
        assert!((g - w).abs() < 1e-4, "{got:?} vs {want_scores:?}");
    }
}

/// A raw MiniCPM causal LM made from the layer-wise fixture exactly as
/// tests/fixtures/gen_finetune_layerwise.py makes it: no score heads, the
/// reranker's config fields gone, `MiniCPMForCausalLM`, tied embeddings.
fn derive_raw_minicpm(dst: &std::path::Path) {
    let src = fixtures().join("minicpm-layerwise-tiny");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    let obj = cfg.as_object_mut().unwrap();
    for k in ["start_layer", "head_multi", "head_type"] {
        obj.remove(k);
    }
    obj.insert("architectures".into(), serde_json::json!(["MiniCPMForCausalLM"]));
    obj.insert("tie_word_embeddings".into(), Value::Bool(true));
    std::fs::write(dst.join("config.json"), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| !n.starts_with("lm_head.")).collect();
    safetensors::serialize_to_file(kept, None, &dst.join("model.safetensors")).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
}

/// LoRA on the layer-wise MiniCPM against FlagEmbedding's layer-wise runner
/// (tests/fixtures/gen_finetune_layerwise.py), two steps from PEFT's
/// adapters in each of its ways in: the reranker itself
/// (`from_finetuned_model`), a raw MiniCPM given new heads from its "Yes"
/// row (`from_raw_model`, start_layer 3, head_multi), and every head layer
/// in the loss (`train_all_layers`: per-layer cross-entropy plus the last
/// layer distilled into the earlier ones). Inputs token for token, losses,
/// gradient norms, adapters; the saved checkpoint loads and scores as the
/// trainer (for the raw model: with FlagEmbedding's initial heads).
#[test]
fn lora_steps_on_layerwise_minicpm_equal_flagembedding() {
    let dir = fixtures().join("finetune");
    let doc: Value = serde_json::from_slice(&std::fs::read(dir.join("layerwise.json")).unwrap()).unwrap();
    let (data, train, groups) = lora_setup(&doc);
    let raw = tempfile::tempdir().unwrap();
    derive_raw_minicpm(raw.path());
    for run in ["finetuned", "raw", "all"] {
        let r = &doc["runs"][run];
        let model = if run == "raw" { raw.path().to_path_buf() } else { fixtures().join("minicpm-layerwise-tiny") };
        let lora = LoraArgs {
            lora_dropout: 0.0,
            from_peft: Some(dir.join(format!("layerwise-{run}-init"))),
            start_layer: r["extra"]["start_layer"].as_u64().map(|v| v as usize),
            head_multi: r["extra"]["head_multi"].as_bool(),
            train_all_layers: r["all_layers"].as_bool().unwrap(),
            ..LoraArgs::default()
        };
        let mut tuner = FineTuner::new_lora(Checkpoint::dir(&model), data.clone(), train.clone(), lora, &Device::flex()).unwrap();
        assert_eq!(tuner.parameter_count().0, 2 * 7 * 4, "{run}: A and B for the 7 projections of 4 layers");
        for (s, batch) in groups.chunks(2).enumerate() {
            let ids: Vec<Vec<u32>> = tuner.encode_groups(batch).unwrap().into_iter().map(|e| e.ids).collect();
            let want: Vec<Vec<u32>> = serde_json::from_value(r["inputs"][s].clone()).unwrap();
            assert_eq!(ids, want, "{run} step {s}: training inputs");
            let out = tuner.step(&[batch.to_vec()]).unwrap();
            let (want_loss, want_norm) = (r["step_losses"][s].as_f64().unwrap(), r["logged"][s]["grad_norm"].as_f64().unwrap());
            eprintln!("{run} step {}: loss {} (want {want_loss}), grad norm {} (want {want_norm})", s + 1, out.loss, out.grad_norm);
            assert!((out.loss - want_loss).abs() <= 1e-5, "{run} step {s}: loss {} vs {want_loss}", out.loss);
            assert!((out.grad_norm - want_norm).abs() <= 1e-5 * want_norm.max(1.0), "{run} step {s}: grad norm {}", out.grad_norm);
        }
        let bytes = std::fs::read(dir.join(format!("layerwise-{run}-final.safetensors"))).unwrap();
        let want = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (mut worst, mut total, mut above) = (0f32, 0usize, 0usize);
        for (name, view) in want.tensors() {
            let Some(ours) = name.strip_prefix("base_model.model.") else { continue };
            let got = tuner.parameter(ours).unwrap_or_else(|| panic!("no {ours}"));
            worst = worst.max(got.iter().zip(f32s(&view)).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max));
            above += got.iter().zip(f32s(&view)).filter(|(g, w)| (*g - *w).abs() > 1e-5).count();
            total += got.len();
        }
        eprintln!("{run}: {total} adapter values: max |crossrank − FlagEmbedding| = {worst:.2e}, {above} above 1e-5");
        // Every adapter value within 1e-5 (measured: ≤ 1.4e-6; no gradient
        // here sits near adam_epsilon, unlike one tensor of the Gemma run).
        assert!(above == 0 && worst <= 1e-5, "{run}: {above} of {total} values above 1e-5, max {worst}");

        // The saved checkpoint: merged weights (+ for the raw model the
        // heads FlagEmbedding made), loads as a layer-wise reranker and
        // scores as the trainer.
        let out = tempfile::tempdir().unwrap();
        let probe = groups[..2].to_vec();
        let want_scores = tuner.score(&probe).unwrap();
        tuner.save_model(out.path()).unwrap();
        let saved = std::fs::read(out.path().join("model.safetensors")).unwrap();
        let saved = safetensors::SafeTensors::deserialize(&saved).unwrap();
        if run == "raw" {
            let cfg: Value = serde_json::from_slice(&std::fs::read(out.path().join("config.json")).unwrap()).unwrap();
            assert_eq!(cfg["architectures"][0], "LayerWiseMiniCPMForCausalLM");
            assert_eq!((cfg["start_layer"].as_u64(), cfg["head_multi"].as_bool()), (Some(3), Some(true)));
            for j in 0..2 {
                let name = format!("lm_head.{j}.linear_head.weight");
                let got = f32s(&saved.tensor(&name).unwrap());
                let want = f32s(&want.tensor(&format!("heads.{name}")).unwrap());
                assert_eq!(got, want, "{name}: FlagEmbedding's head from the \"Yes\" row");
            }
            assert!(saved.tensor("lm_head.weight").is_err(), "the raw LM head is not part of the reranker");
        }
        let reranker = crossrank::Reranker::load(&Checkpoint::dir(out.path()), &Device::flex()).unwrap();
        let ids = tuner.encode_groups(&probe).unwrap();
        let refs: Vec<&crossrank::Encoded> = ids.iter().collect();
        let cutoffs = reranker.cutoff_layers(&crossrank::ScoreOptions::default()).unwrap();
        let got = reranker.score_encoded(&refs, &cutoffs).unwrap().remove(0);
        for (g, w) in got.iter().zip(&want_scores) {
            assert!((g - w).abs() < 1e-4, "{run}: {got:?} vs {want_scores:?}");
        }
    }
    // The flags that shape a raw model's heads cannot rewrite a reranker's.
    let lora = LoraArgs { start_layer: Some(3), ..LoraArgs::default() };
    let err =
        FineTuner::new_lora(Checkpoint::dir(fixtures().join("minicpm-layerwise-tiny")), data.clone(), train.clone(), lora, &Device::flex());
    assert!(err.err().unwrap().to_string().contains("start_layer 2"));
    let lora = LoraArgs { train_all_layers: true, ..LoraArgs::default() };
    assert!(
        FineTuner::new_lora(Checkpoint::dir(fixtures().join("gemma-tiny")), data.clone(), train.clone(), lora, &Device::flex()).is_err()
    );
    // FlagEmbedding's default start_layer (8) is past this model's 4 layers.
    let err = FineTuner::new_lora(Checkpoint::dir(raw.path()), data, train, LoraArgs::default(), &Device::flex());
    assert!(err.err().unwrap().to_string().contains("start_layer 8"));
}

/// The same three steps on wgpu (lavapipe in CI): autodiff over the GPU
/// backend gives FlagEmbedding's losses and weights as the CPU does.
#[test]
fn three_steps_on_wgpu_equal_flagembedding() {
    let Some(dev) = common::wgpu_device() else { return };
    let (doc, want) = reference("steps");
    let (data, train) = args_from(&doc);
    let lines: String = doc["examples"].as_array().unwrap().iter().map(|e| format!("{e}\n")).collect();
    let examples = read_jsonl(&lines, &data).unwrap();
    let groups = groups(&examples, &data);
    let mut tuner = FineTuner::new(Checkpoint::dir(fixtures().join("bert-tiny")), data, train, &dev).unwrap();
    for (s, step_groups) in groups.chunks(4).enumerate() {
        let micro: Vec<Vec<Group>> = step_groups.chunks(2).map(<[Group]>::to_vec).collect();
        let out = tuner.step(&micro).unwrap();
        let want_loss = doc["step_losses"][s].as_f64().unwrap();
        eprintln!("wgpu step {}: loss {} (want {want_loss})", s + 1, out.loss);
        assert!((out.loss - want_loss).abs() <= 1e-4, "step {s}: {} vs {want_loss}", out.loss);
    }
    let mut worst = 0f32;
    for (name, view) in want.tensors() {
        if name == "word_rows" || name == "classifier.bias" || name.ends_with("attention.self.key.bias") {
            continue;
        }
        let got = tuner.parameter(&name).unwrap();
        worst = got.iter().zip(f32s(&view)).map(|(g, w)| (g - w).abs()).fold(worst, f32::max);
    }
    eprintln!("wgpu: max weight difference {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
}
