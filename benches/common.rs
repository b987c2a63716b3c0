//! Shared by the benchmarks: a deterministic workload and random-init
//! checkpoint writing (no Python needed to make a model of the right shape).
#![allow(dead_code)]

use std::path::Path;

use anyhow::Result;
use safetensors::tensor::{Dtype, TensorView};

const WORDS: &[&str] = &[
    "search",
    "latency",
    "reranker",
    "passage",
    "query",
    "model",
    "index",
    "vector",
    "bear",
    "china",
    "panda",
    "mountain",
    "river",
    "history",
    "science",
    "network",
    "protocol",
    "database",
    "engine",
    "browser",
    "memory",
    "kernel",
    "matrix",
    "attention",
    "layer",
    "token",
    "language",
    "question",
    "answer",
    "document",
    "retrieval",
    "ranking",
    "quality",
    "speed",
    "hardware",
    "graphics",
    "compute",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "with",
    "on",
    "that",
    "by",
    "this",
    "from",
];

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(pub u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() as usize) % (hi - lo + 1)
    }
}

/// `n` words of the benchmark vocabulary.
pub fn words(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| WORDS[rng.range(0, WORDS.len() - 1)]).collect::<Vec<_>>().join(" ")
}

/// `n` pairs: queries of 4–12 words, passages of 60–180 words.
pub fn workload(n: usize) -> Vec<(String, String)> {
    workload_words(n, (60, 180))
}

/// `n` pairs with passages of `passage.0..passage.1` words.
pub fn workload_words(n: usize, passage: (usize, usize)) -> Vec<(String, String)> {
    let mut rng = Rng(0x5eed);
    (0..n)
        .map(|_| {
            let q = rng.range(4, 12);
            let p = rng.range(passage.0, passage.1);
            (words(&mut rng, q), words(&mut rng, p))
        })
        .collect()
}

/// Write `model.safetensors` (f16) with small uniform weights; norm weights
/// (names containing "norm.weight" / "LayerNorm.weight") get `norm_value`.
pub fn write_random_f16(dir: &Path, shapes: &[(String, Vec<usize>)], norm_value: f32) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(42);
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let norm = name.contains("LayerNorm.weight") || name.contains("norm.weight");
            let bytes = (0..n)
                .flat_map(|_| {
                    let x = if norm { norm_value } else { 0.05 * rng.uniform() };
                    half::f16::from_f32(x).to_le_bytes()
                })
                .collect();
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> =
        data.iter().map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F16, s.clone(), b)?))).collect::<Result<_>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))?;
    Ok(())
}

/// `--key value` from the command line.
/// Print the calling binary's usage (its doc comment's command line) and
/// exit on `--help` / `-h`, instead of starting a long benchmark.
pub fn help(usage: &str) {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{usage}");
        std::process::exit(0);
    }
}

pub fn arg(key: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == key).and_then(|i| args.get(i + 1)).cloned()
}

/// This process's resident memory (VmRSS) in GB (NaN where /proc is absent).
pub fn rss_gb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1e6)
}

/// The allocator the `crossrank` CLI uses (see its Cargo.toml): the CPU
/// backend's op-by-op activation buffers stay mapped instead of being
/// page-faulted in again on every op.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Never hand freed pages back (as the CLI does): `mi_option_purge_delay`.
pub fn keep_freed_pages() {
    // SAFETY: sets a process-wide mimalloc option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(15, -1) } // see crates/crossrank-cli: MI_OPTION_PURGE_DELAY
}
