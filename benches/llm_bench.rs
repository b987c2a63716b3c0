//! LLM rerankers: pairs/s of a gemma-2b-shaped model (bge-reranker-v2-gemma:
//! hidden 2048, 8 heads, 1 kv head, head_dim 256, FFN 16384, vocab 256000)
//! and a minicpm-2b-shaped layer-wise model (hidden 2304, 36 heads, FFN
//! 5760, vocab 122753), both cut to a few layers, random-init, generated
//! under benches/models/ on first run (not committed).
//!
//!     cargo run --release -p crossrank-benches --bin llm-bench -- [--device cpu] [--dtype f32|q8|q4|q4-all] [--layers 2] [--pairs 16]
//!
//! Reports, for Gemma, the one-row "Yes" head crossrank computes against
//! the cost of the full 256000-way LM head over every position (what
//! `GemmaForCausalLM` does inside FlagEmbedding), timed as that matmul on the
//! same device; for MiniCPM, pairs/s by cutoff layer (the pass stops there).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use burn::tensor::{Distribution, Tensor};
use common::{arg, rss_gb, workload, write_random_f16};
use crossrank::device::select;
use crossrank::{Checkpoint, Reranker, ScoreOptions};

fn decoder_shapes(layers: usize, h: usize, heads: usize, kv: usize, hd: usize, ffn: usize) -> Vec<(String, Vec<usize>)> {
    let mut s = Vec::new();
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        s.push((format!("{p}.input_layernorm.weight"), vec![h]));
        s.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        s.push((format!("{p}.self_attn.q_proj.weight"), vec![heads * hd, h]));
        s.push((format!("{p}.self_attn.k_proj.weight"), vec![kv * hd, h]));
        s.push((format!("{p}.self_attn.v_proj.weight"), vec![kv * hd, h]));
        s.push((format!("{p}.self_attn.o_proj.weight"), vec![h, heads * hd]));
        s.push((format!("{p}.mlp.gate_proj.weight"), vec![ffn, h]));
        s.push((format!("{p}.mlp.up_proj.weight"), vec![ffn, h]));
        s.push((format!("{p}.mlp.down_proj.weight"), vec![h, ffn]));
    }
    s.push(("model.norm.weight".into(), vec![h]));
    s
}

fn tokenizer_files(dir: &Path, root: &Path) -> Result<()> {
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(root.join("../tests/fixtures/gemma-tiny").join(f), dir.join(f))?;
    }
    Ok(())
}

fn gemma(dir: &Path, root: &Path, layers: usize) -> Result<()> {
    let mut shapes = decoder_shapes(layers, 2048, 8, 1, 256, 16384);
    shapes.push(("model.embed_tokens.weight".into(), vec![256000, 2048]));
    write_random_f16(dir, &shapes, 0.0)?;
    let config = serde_json::json!({
        "architectures": ["GemmaForCausalLM"], "model_type": "gemma", "vocab_size": 256000, "hidden_size": 2048,
        "intermediate_size": 16384, "num_hidden_layers": layers, "num_attention_heads": 8, "num_key_value_heads": 1,
        "head_dim": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "gelu",
        "max_position_embeddings": 8192, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    tokenizer_files(dir, root)
}

fn minicpm(dir: &Path, root: &Path, layers: usize) -> Result<()> {
    let mut shapes = decoder_shapes(layers, 2304, 36, 36, 64, 5760);
    // The Gemma tokenizer stands in for MiniCPM's (not available here), so
    // the vocabulary is Gemma's; the layers are MiniCPM-2B's.
    shapes.push(("model.embed_tokens.weight".into(), vec![256000, 2304]));
    for j in 0..layers {
        shapes.push((format!("lm_head.{j}.linear_head.weight"), vec![1, 2304]));
    }
    write_random_f16(dir, &shapes, 1.0)?;
    let config = serde_json::json!({
        "architectures": ["LayerWiseMiniCPMForCausalLM"], "vocab_size": 256000, "hidden_size": 2304,
        "intermediate_size": 5760, "num_hidden_layers": layers, "num_attention_heads": 36, "num_key_value_heads": 36,
        "hidden_act": "silu", "rms_norm_eps": 1e-5, "scale_emb": 12, "scale_depth": 1.4, "dim_model_base": 256,
        "start_layer": 1, "head_multi": true, "head_type": "simple", "pad_token_id": 0, "bos_token_id": 2
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    tokenizer_files(dir, root)
}

fn time<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let r = f()?;
    Ok((r, t.elapsed().as_secs_f64()))
}

fn main() -> Result<()> {
    common::help("usage: llm-bench [--device cpu] [--dtype f32|q8|q4|q4-all] [--layers 2] [--pairs 16]");
    common::keep_freed_pages();
    let device = arg("--device").unwrap_or_else(|| "cpu".into());
    // Weight storage (quantized at load): f32, q8, q4, q4-all.
    let dtype: crossrank::WeightDtype = arg("--dtype").unwrap_or_else(|| "f32".into()).parse()?;
    let layers: usize = arg("--layers").map(|s| s.parse()).transpose()?.unwrap_or(2);
    let n: usize = arg("--pairs").map(|s| s.parse()).transpose()?.unwrap_or(16);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dev = select(device.parse()?)?.device;
    let pairs = workload(n);
    let opts = ScoreOptions { batch_size: 8, ..Default::default() };

    let gdir = root.join(format!("models/gemma-2b-shape-{layers}l"));
    if !gdir.join("model.safetensors").exists() {
        eprintln!("generating {} ...", gdir.display());
        gemma(&gdir, &root, layers)?;
    }
    let (r, load) = time(|| Ok(Reranker::load_with_dtype(&Checkpoint::dir(&gdir), &dev, dtype)?))?;
    let rss = rss_gb();
    let tokens: usize = r.encode(&pairs, &opts)?.iter().map(|e| e.len()).sum();
    r.compute_score(&pairs[..opts.batch_size.min(n)], &opts)?; // warm-up
    let (_, secs) = time(|| Ok(r.compute_score(&pairs, &opts)?))?;
    drop(r);
    // The full head FlagEmbedding's GemmaForCausalLM computes: every position × 256000.
    let hidden = Tensor::<2>::random([tokens / n * opts.batch_size, 2048], Distribution::Default, &dev);
    let head = Tensor::<2>::random([2048, 256000], Distribution::Default, &dev);
    let _ = hidden.clone().slice([0..8, 0..2048]).matmul(head.clone()).sum().into_scalar::<f32>();
    let (_, head_secs) = time(|| Ok(hidden.matmul(head).sum().into_scalar::<f32>()))?;
    let batches = n.div_ceil(opts.batch_size) as f64;
    println!(
        "## gemma-2b shape, {layers} layers, {device}, weights {}, {n} pairs, {:.0} tokens/pair, batch 8",
        dtype.as_str(),
        tokens as f64 / n as f64
    );
    println!("| | value |\n|---|---|");
    println!("| load s | {load:.1} |");
    println!("| RSS after load GB | {rss:.2} |");
    println!("| one-row head: pairs/s | {:.3} |", n as f64 / secs);
    println!("| full 256000-way head over all positions: extra s per batch | {head_secs:.2} |");
    println!("| full head: pairs/s (same body) | {:.3} |", n as f64 / (secs + head_secs * batches));
    println!("| full-head logits memory per batch (f32) | {:.2} GB |", (tokens / n * 8 * 256000 * 4) as f64 / 1e9);

    let mdir = root.join(format!("models/minicpm-2b-shape-{layers}l"));
    if !mdir.join("model.safetensors").exists() {
        eprintln!("generating {} ...", mdir.display());
        minicpm(&mdir, &root, layers)?;
    }
    let r = Reranker::load_with_dtype(&Checkpoint::dir(&mdir), &dev, dtype)?;
    println!("\n## minicpm-2b shape (layer-wise), {layers} layers, {device}\n| cutoff layer | pairs/s |\n|---|---|");
    for cutoff in 1..=layers {
        let o = ScoreOptions { cutoff_layers: Some(vec![cutoff]), ..opts.clone() };
        r.compute_score(&pairs[..opts.batch_size.min(n)], &o)?;
        let (_, secs) = time(|| Ok(r.compute_score(&pairs, &o)?))?;
        println!("| {cutoff} | {:.3} |", n as f64 / secs);
    }
    Ok(())
}
