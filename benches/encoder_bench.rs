//! Pairs/s of a bge-reranker-base-shaped cross-encoder (XLM-R: 12 layers,
//! hidden 768, 12 heads, FFN 3072, 250002 vocab) on the CPU and on wgpu, per
//! weight dtype (f32 and the `crossrank quantize` checkpoints q8 / q4 /
//! q4-all), with the file size and the memory after load.
//!
//!     cargo run --release -p crossrank-benches --bin encoder-bench -- [--devices cpu,wgpu] [--dtypes f32,q8,q4,q4-all] [--iters 3] [--pairs 64] [--passage-words 60-180] [--dump-pairs FILE] [--json FILE]
//!
//! The random-init checkpoint is generated on first run under
//! benches/models/ (not committed; ~556 MB, f16 like a converted checkpoint).
//! Workload: 64 pairs, queries of 4–12 words, passages of 60–180 words,
//! batch 32, max_length 512.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use crossrank::device::select;
use crossrank::{Checkpoint, Reranker, ScoreOptions, WeightDtype};

mod common;
use common::{arg, rss_gb, workload_words, write_random_f16};

fn generate(dir: &Path, tokenizer: &Path) -> Result<()> {
    let (v, h, l, f, p) = (250_002usize, 768usize, 12usize, 3072usize, 514usize);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("roberta.embeddings.word_embeddings.weight".into(), vec![v, h]),
        ("roberta.embeddings.position_embeddings.weight".into(), vec![p, h]),
        ("roberta.embeddings.token_type_embeddings.weight".into(), vec![1, h]),
        ("roberta.embeddings.LayerNorm.weight".into(), vec![h]),
        ("roberta.embeddings.LayerNorm.bias".into(), vec![h]),
        ("classifier.dense.weight".into(), vec![h, h]),
        ("classifier.dense.bias".into(), vec![h]),
        ("classifier.out_proj.weight".into(), vec![1, h]),
        ("classifier.out_proj.bias".into(), vec![1]),
    ];
    for i in 0..l {
        let pre = format!("roberta.encoder.layer.{i}");
        for (n, s) in [
            ("attention.self.query", (h, h)),
            ("attention.self.key", (h, h)),
            ("attention.self.value", (h, h)),
            ("attention.output.dense", (h, h)),
            ("intermediate.dense", (f, h)),
            ("output.dense", (h, f)),
        ] {
            shapes.push((format!("{pre}.{n}.weight"), vec![s.0, s.1]));
            shapes.push((format!("{pre}.{n}.bias"), vec![s.0]));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{pre}.{n}.weight"), vec![h]));
            shapes.push((format!("{pre}.{n}.bias"), vec![h]));
        }
    }
    write_random_f16(dir, &shapes, 1.0)?;
    let config = serde_json::json!({
        "architectures": ["XLMRobertaForSequenceClassification"], "model_type": "xlm-roberta",
        "vocab_size": v, "hidden_size": h, "num_hidden_layers": l, "num_attention_heads": 12,
        "intermediate_size": f, "hidden_act": "gelu", "max_position_embeddings": p, "type_vocab_size": 1,
        "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
        "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    std::fs::copy(tokenizer, dir.join("tokenizer.json"))?;
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"pad_token": "<pad>", "model_max_length": 512}"#)?;
    Ok(())
}

fn main() -> Result<()> {
    common::help(
        "usage: encoder-bench [--devices cpu,wgpu] [--dtypes f32,f16,q8,q4,q4-all] [--iters 3] [--pairs 64] [--passage-words 60-180] [--batch 32] [--dump-pairs FILE] [--json FILE]",
    );
    common::keep_freed_pages();
    let devices = arg("--devices").unwrap_or_else(|| "cpu,wgpu".into());
    let dtypes = arg("--dtypes").unwrap_or_else(|| "f32,q8,q4".into());
    let iters: usize = arg("--iters").map(|s| s.parse()).transpose()?.unwrap_or(3);
    let n: usize = arg("--pairs").map(|s| s.parse()).transpose()?.unwrap_or(64);
    // benches/: the working directory's (a binary carried to another machine
    // runs from the repository root there, see benches/gpu/run.sh), else
    // where it was built.
    let root = [PathBuf::from("benches"), PathBuf::from(env!("CARGO_MANIFEST_DIR"))]
        .into_iter()
        .find(|p| p.join("encoder_bench.rs").exists())
        .context("run from the repository root (benches/ not found)")?;
    let dir = root.join("models/bge-reranker-base-random");
    if !dir.join("model.safetensors").exists() {
        eprintln!("generating {} ...", dir.display());
        generate(&dir, &root.join("../tests/fixtures/xlmr-tiny/tokenizer.json")).context("generating the model")?;
    }
    // `--passage-words 300-340` gives the long-input case (near 512 tokens).
    let words = match arg("--passage-words") {
        Some(r) => {
            let (a, b) = r.split_once('-').context("--passage-words A-B")?;
            (a.parse()?, b.parse()?)
        }
        None => (60, 180),
    };
    let pairs = workload_words(n, words);
    // The peers (benches/peers/peers.py) score exactly these pairs.
    if let Some(path) = arg("--dump-pairs") {
        std::fs::write(&path, serde_json::to_vec(&pairs)?)?;
        eprintln!("wrote {} pairs to {path}", pairs.len());
    }
    // FlagReranker's compute_score batches by 32 in benches/peers/peers.py too;
    // the GPU run raises both with `--batch`.
    let batch_size: usize = arg("--batch").map(|s| s.parse()).transpose()?.unwrap_or(32);
    let opts = ScoreOptions { batch_size, max_length: Some(512), ..Default::default() };
    let mut rows = Vec::new();
    let int8 = crossrank::device::cpu_int8_kernels();
    println!("CPU int8 kernels: {int8}\n");
    println!(
        "| device | dtype | model.safetensors MB | load s | RSS after load GB | first call s | pairs/s (mean of {iters}) | tokens/pair |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for dt in dtypes.split(',') {
        let dtype: WeightDtype = dt.parse()?;
        // Quantized dtypes load the checkpoint `crossrank quantize` writes:
        // what a browser would download. The generated checkpoint is f16
        // already, so f16 loads it as it is.
        let model = if matches!(dtype, WeightDtype::F32 | WeightDtype::F16) {
            dir.clone()
        } else {
            let q = root.join(format!("models/bge-reranker-base-random-{}", dtype.as_str()));
            if !q.join("model.safetensors").exists() {
                eprintln!("quantizing to {} ...", q.display());
                crossrank::quantize::quantize_checkpoint(&Checkpoint::dir(&dir), dtype, &q)?;
            }
            q
        };
        let file_mb = std::fs::metadata(model.join("model.safetensors"))?.len() as f64 / 1e6;
        for d in devices.split(',') {
            let sel = match select(d.parse()?) {
                Ok(s) => s,
                Err(e) => {
                    println!("| {d} | {dt} | unavailable: {e} | | | | | |");
                    continue;
                }
            };
            let t = Instant::now();
            let r = Reranker::load_with_dtype(&Checkpoint::dir(&model), &sel.device, dtype)?;
            let load = t.elapsed().as_secs_f64();
            let rss = rss_gb();
            let enc = r.encode(&pairs, &opts)?;
            let tokens = enc.iter().map(|e| e.len()).sum::<usize>() as f64 / enc.len() as f64;
            let t = Instant::now();
            r.compute_score(&pairs, &opts)?;
            let first = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut scores = Vec::new();
            for _ in 0..iters {
                scores = r.compute_score(&pairs, &opts)?;
            }
            let per = t.elapsed().as_secs_f64() / iters as f64;
            let pps = pairs.len() as f64 / per;
            println!("| {d} | {dt} | {file_mb:.0} | {load:.2} | {rss:.2} | {first:.2} | {pps:.2} | {tokens:.0} |");
            rows.push(serde_json::json!({
                "system": format!("crossrank {d} {dt}"), "device": d, "dtype": dt, "file_mb": file_mb,
                "load_s": load, "rss_gb": rss, "first_s": first, "pairs_per_s": pps, "tokens_per_pair": tokens,
                "batch": batch_size, "scores": scores, "cpu_int8": int8,
            }));
            drop(r);
        }
    }
    if let Some(path) = arg("--json") {
        std::fs::write(&path, serde_json::to_vec_pretty(&rows)?)?;
    }
    Ok(())
}
