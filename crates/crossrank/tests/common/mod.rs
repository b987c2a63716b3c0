//! Shared helpers of the integration tests: fixture paths and the expected
//! values the Python generators committed.
#![allow(dead_code)]

use std::path::PathBuf;

use crossrank::ScoreOptions;
use serde::Deserialize;

/// wgpu: on CI this runs on Mesa lavapipe, which .ci/run installs and marks
/// as required (CROSSRANK_REQUIRE_WGPU=1); elsewhere a missing adapter skips.
pub fn wgpu_device() -> Option<crossrank::Device> {
    use crossrank::device::{DeviceChoice, select};
    match select(DeviceChoice::Wgpu) {
        Ok(d) => Some(d.device),
        Err(e) if std::env::var("CROSSRANK_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
            panic!("CROSSRANK_REQUIRE_WGPU=1 but wgpu is unavailable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no wgpu adapter ({e}); install mesa-vulkan-drivers");
            None
        }
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[derive(Deserialize)]
pub struct Expected {
    pub pairs: Vec<(String, String)>,
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
pub struct Case {
    pub name: String,
    /// The fixture's options, read as the library reads every options object.
    pub options: ScoreOptions,
    pub input_ids: Vec<Vec<u32>>,
    pub scores: Vec<f32>,
}

pub fn expected(model: &str) -> Expected {
    let path = fixtures().join(model).join("expected.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

pub fn max_abs_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every case of any fixture (encoder or LLM): pairs, and per case the
/// options and the reference scores of its first scoring layer.
pub fn all_cases(model: &str) -> (Vec<(String, String)>, Vec<(ScoreOptions, Vec<f32>)>) {
    let path = fixtures().join(model).join("expected.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let pairs: Vec<(String, String)> = serde_json::from_value(v["pairs"].clone()).unwrap();
    let cases = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let opts: ScoreOptions = serde_json::from_value(case["options"].clone()).unwrap();
            let scores = &case["scores"];
            let scores = if scores[0].is_array() { &scores[0] } else { scores };
            (opts, serde_json::from_value(scores.clone()).unwrap())
        })
        .collect();
    (pairs, cases)
}
