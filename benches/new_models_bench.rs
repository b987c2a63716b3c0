//! The rerankers people pick now, at their real shapes (random-init,
//! generated under benches/models/ on first run, not committed):
//! Qwen3-Reranker-0.6B (28 layers, hidden 1024, 16 heads / 8 kv heads of
//! 128, FFN 3072, vocab 151936, tied embeddings; f16 file the size of the
//! published bf16 one) and ModernBERT-base (22 layers, hidden 768, FFN
//! 1152, 128-token local windows, global attention every 3rd layer), with
//! BERT-base (12 layers, hidden 768, FFN 3072; positions widened to the
//! length asked for) to compare at equal length. One model and dtype per
//! process, so the peak RSS is that load's: benches/new-models/run.sh runs
//! them all and the PyTorch peers beside them.
//!
//!     new-models-bench --model qwen3|modernbert|bert [--dtype f32|q8|q4] [--tokens 512] [--pairs 16] [--batch 8] [--json FILE] [--dump-pairs FILE]
//!
//! Prints one JSON object: load seconds, weights file GB, RSS after load
//! and peak RSS (GB), tokens per pair, pairs/s (after one warm-up batch).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use common::{arg, rss_gb, workload, workload_words, write_random_f16};
use crossrank::device::select;
use crossrank::{Checkpoint, Reranker, ScoreOptions};

/// Peak resident memory of this process (VmHWM) in GB.
fn peak_rss_gb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1e6)
}

fn copy_tokenizer(dir: &Path, root: &Path, fixture: &str) -> Result<()> {
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(root.join("../tests/fixtures").join(fixture).join(f), dir.join(f))?;
    }
    Ok(())
}

fn qwen3(dir: &Path, root: &Path) -> Result<()> {
    let (layers, h, heads, kv, hd, ffn, vocab) = (28, 1024, 16, 8, 128, 3072, 151_936);
    let mut shapes = Vec::new();
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        shapes.push((format!("{p}.input_layernorm.weight"), vec![h]));
        shapes.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        shapes.push((format!("{p}.self_attn.q_norm.weight"), vec![hd]));
        shapes.push((format!("{p}.self_attn.k_norm.weight"), vec![hd]));
        shapes.push((format!("{p}.self_attn.q_proj.weight"), vec![heads * hd, h]));
        shapes.push((format!("{p}.self_attn.k_proj.weight"), vec![kv * hd, h]));
        shapes.push((format!("{p}.self_attn.v_proj.weight"), vec![kv * hd, h]));
        shapes.push((format!("{p}.self_attn.o_proj.weight"), vec![h, heads * hd]));
        shapes.push((format!("{p}.mlp.gate_proj.weight"), vec![ffn, h]));
        shapes.push((format!("{p}.mlp.up_proj.weight"), vec![ffn, h]));
        shapes.push((format!("{p}.mlp.down_proj.weight"), vec![h, ffn]));
    }
    shapes.push(("model.norm.weight".into(), vec![h]));
    shapes.push(("model.embed_tokens.weight".into(), vec![vocab, h]));
    write_random_f16(dir, &shapes, 1.0)?;
    let config = serde_json::json!({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": vocab, "hidden_size": h,
        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
        "head_dim": hd, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "hidden_act": "silu", "attention_bias": false,
        "max_position_embeddings": 40960, "tie_word_embeddings": true, "use_sliding_window": false,
        "bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643, "torch_dtype": "float16"
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    copy_tokenizer(dir, root, "qwen3-reranker-tiny")
}

fn modernbert(dir: &Path, root: &Path) -> Result<()> {
    let (layers, h, ffn, vocab) = (22, 768, 1152, 50_368);
    let mut shapes = vec![("model.embeddings.tok_embeddings.weight".to_string(), vec![vocab, h])];
    shapes.push(("model.embeddings.norm.weight".into(), vec![h]));
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        if l > 0 {
            shapes.push((format!("{p}.attn_norm.weight"), vec![h]));
        }
        shapes.push((format!("{p}.attn.Wqkv.weight"), vec![3 * h, h]));
        shapes.push((format!("{p}.attn.Wo.weight"), vec![h, h]));
        shapes.push((format!("{p}.mlp_norm.weight"), vec![h]));
        shapes.push((format!("{p}.mlp.Wi.weight"), vec![2 * ffn, h]));
        shapes.push((format!("{p}.mlp.Wo.weight"), vec![h, ffn]));
    }
    for (n, s) in [
        ("model.final_norm.weight", vec![h]),
        ("head.dense.weight", vec![h, h]),
        ("head.norm.weight", vec![h]),
        ("classifier.weight", vec![1, h]),
        ("classifier.bias", vec![1]),
    ] {
        shapes.push((n.into(), s));
    }
    write_random_f16(dir, &shapes, 1.0)?;
    let config = serde_json::json!({
        "architectures": ["ModernBertForSequenceClassification"], "model_type": "modernbert", "vocab_size": vocab,
        "hidden_size": h, "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": 12,
        "hidden_activation": "gelu", "max_position_embeddings": 8192, "norm_eps": 1e-5, "norm_bias": false,
        "global_rope_theta": 160000.0, "local_rope_theta": 10000.0, "global_attn_every_n_layers": 3, "local_attention": 128,
        "classifier_pooling": "mean", "classifier_activation": "gelu", "num_labels": 1, "pad_token_id": 0,
        "cls_token_id": 101, "sep_token_id": 102, "bos_token_id": 101, "eos_token_id": 102, "torch_dtype": "float16"
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    copy_tokenizer(dir, root, "modernbert-cls-tiny")
}

fn bert(dir: &Path, root: &Path, positions: usize) -> Result<()> {
    let (layers, h, ffn, vocab) = (12, 768, 3072, 30_522);
    let mut shapes = vec![
        ("bert.embeddings.word_embeddings.weight".to_string(), vec![vocab, h]),
        ("bert.embeddings.position_embeddings.weight".into(), vec![positions, h]),
        ("bert.embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("bert.embeddings.LayerNorm.weight".into(), vec![h]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..layers {
        let p = format!("bert.encoder.layer.{l}");
        for (n, s) in [
            ("attention.self.query", vec![h, h]),
            ("attention.self.key", vec![h, h]),
            ("attention.self.value", vec![h, h]),
            ("attention.output.dense", vec![h, h]),
            ("intermediate.dense", vec![ffn, h]),
            ("output.dense", vec![h, ffn]),
        ] {
            shapes.push((format!("{p}.{n}.bias"), vec![s[0]]));
            shapes.push((format!("{p}.{n}.weight"), s));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}.{n}.weight"), vec![h]));
            shapes.push((format!("{p}.{n}.bias"), vec![h]));
        }
    }
    for (n, s) in [
        ("bert.pooler.dense.weight", vec![h, h]),
        ("bert.pooler.dense.bias", vec![h]),
        ("classifier.weight", vec![1, h]),
        ("classifier.bias", vec![1]),
    ] {
        shapes.push((n.into(), s));
    }
    write_random_f16(dir, &shapes, 1.0)?;
    let config = serde_json::json!({
        "architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": vocab, "hidden_size": h,
        "num_hidden_layers": layers, "num_attention_heads": 12, "intermediate_size": ffn, "hidden_act": "gelu",
        "max_position_embeddings": positions, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "num_labels": 1,
        "pad_token_id": 0, "torch_dtype": "float16"
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    copy_tokenizer(dir, root, "bert-tiny")
}

fn main() -> Result<()> {
    common::help(
        "usage: new-models-bench --model qwen3|modernbert|bert [--dtype f32|q8|q4] [--tokens 512] [--pairs 16] [--batch 8] [--json FILE] [--dump-pairs FILE]",
    );
    common::keep_freed_pages();
    let model = arg("--model").unwrap_or_else(|| "qwen3".into());
    let dtype: crossrank::WeightDtype = arg("--dtype").unwrap_or_else(|| "f32".into()).parse()?;
    let tokens: usize = arg("--tokens").map(|s| s.parse()).transpose()?.unwrap_or(512);
    let n: usize = arg("--pairs").map(|s| s.parse()).transpose()?.unwrap_or(16);
    let batch: usize = arg("--batch").map(|s| s.parse()).transpose()?.unwrap_or(8);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dev = select("cpu".parse()?)?.device;
    let (dir, pairs, opts) = match model.as_str() {
        "qwen3" => {
            let dir = root.join("models/qwen3-reranker-0.6b-shape");
            if !dir.join("model.safetensors").exists() {
                eprintln!("generating {} ...", dir.display());
                qwen3(&dir, &root)?;
            }
            // The card's defaults (max_length 8192: nothing is cut).
            (dir, workload(n), ScoreOptions { batch_size: batch, ..Default::default() })
        }
        "modernbert" | "bert" => {
            let dir = if model == "bert" {
                root.join(format!("models/bert-base-shape-{}", tokens.max(512)))
            } else {
                root.join("models/modernbert-base-shape")
            };
            if !dir.join("model.safetensors").exists() {
                eprintln!("generating {} ...", dir.display());
                if model == "bert" { bert(&dir, &root, tokens.max(512))? } else { modernbert(&dir, &root)? }
            }
            // Passages long enough that every pair fills `tokens`.
            let pairs = workload_words(n, (tokens + 50, tokens + 100));
            (dir, pairs, ScoreOptions { batch_size: batch, max_length: Some(tokens), ..Default::default() })
        }
        other => bail!("unknown --model {other:?}: qwen3, modernbert or bert"),
    };
    if let Some(p) = arg("--dump-pairs") {
        std::fs::write(p, serde_json::to_vec(&pairs)?)?;
    }
    let file_gb = std::fs::metadata(dir.join("model.safetensors"))?.len() as f64 / 1e9;
    let t = Instant::now();
    let r = Reranker::load_with_dtype(&Checkpoint::dir(&dir), &dev, dtype)?;
    let load_s = t.elapsed().as_secs_f64();
    let rss_load = rss_gb();
    let per_pair = r.encode(&pairs, &opts)?.iter().map(|e| e.len()).sum::<usize>() as f64 / n as f64;
    r.compute_score(&pairs[..batch.min(n)], &opts)?; // warm-up
    let t = Instant::now();
    let scores = r.compute_score(&pairs, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    assert!(scores.iter().all(|s| s.is_finite()));
    let row = serde_json::json!({
        "system": format!("crossrank CPU {}", dtype.as_str()), "model": model, "dtype": dtype.as_str(),
        "tokens_per_pair": per_pair, "pairs": n, "batch": batch, "load_s": load_s, "file_gb": file_gb,
        "rss_after_load_gb": rss_load, "peak_rss_gb": peak_rss_gb(), "pairs_per_s": n as f64 / secs,
    });
    println!("{row}");
    if let Some(p) = arg("--json") {
        std::fs::write(p, serde_json::to_vec_pretty(&row)?)?;
    }
    Ok(())
}
