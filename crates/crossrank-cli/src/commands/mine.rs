//! `crossrank mine`: training files from a judged split and a first stage
//! (FlagEmbedding's hn_mine).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use crossrank::finetune::mine;

use super::{first_stage, print_json};

#[derive(Args)]
pub struct MineArgs {
    /// The dataset directory (BEIR or FlagEmbedding layout, as `eval`).
    #[arg(long)]
    dataset: PathBuf,
    #[arg(long, default_value = "train")]
    split: String,
    /// The first stage ranking the candidates (as `eval --first-stage`).
    #[arg(long, default_value = "bm25")]
    first_stage: String,
    /// Ranks START-END (0-based, END excluded) to draw negatives from.
    #[arg(long, default_value = "2-200")]
    range_for_sampling: String,
    #[arg(long, default_value_t = 15)]
    negative_number: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Device of a dense first stage.
    #[arg(long, default_value = "auto")]
    device: String,
    /// The JSON Lines file written (through a temporary file).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: MineArgs) -> Result<()> {
    let t = std::time::Instant::now();
    let ds = crossrank::eval::data::load(&a.dataset, &a.split)?;
    let args = mine::MineArgs { negative_number: a.negative_number, seed: a.seed, ..a.range_for_sampling.parse()? };
    let run = first_stage(&a.first_stage, &a.device, &ds, args.range.1)?;
    let examples = mine::mine(&ds, &run, &args)?;
    crossrank::eval::data::write_atomic(&a.out, mine::to_jsonl(&examples).as_bytes())?;
    let negatives: usize = examples.iter().map(|e| e.neg.len()).sum();
    print_json(&serde_json::json!({
        "out": a.out, "examples": examples.len(), "negatives": negatives,
        "queries_without_positive": ds.queries.len() - examples.len(),
        "seconds": t.elapsed().as_secs_f64(),
    }))
}
