//! `crossrank score`: (query, passage) pairs from JSON Lines → scores.

use anyhow::Result;
use clap::Args;
use crossrank::{Reranker, ScoreOptions};

use super::{ModelArgs, print_json, read_input};

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    score: ScoreOptions,
    /// JSON Lines file of {"query": ..., "passage": ...}; `-` for stdin.
    #[arg(long, default_value = "-")]
    input: String,
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let pairs = crossrank::jsonl::pairs(&read_input(&a.input)?)?;
    let (ck, dev, dtype) = a.model.open()?;
    let r = Reranker::load_with_dtype(&ck, &dev.device, dtype)?;
    let mut layers = r.compute_score_layers(&pairs, &a.score)?;
    if layers.len() == 1 { print_json(&layers.remove(0)) } else { print_json(&layers) }
}
