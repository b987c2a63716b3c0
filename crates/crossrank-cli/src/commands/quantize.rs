//! `crossrank quantize`: a quantized copy of a checkpoint.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use crossrank::{Checkpoint, WeightDtype};

use super::print_json;

#[derive(Args)]
pub struct QuantizeArgs {
    /// A checkpoint directory or a Hugging Face repo id.
    #[arg(long)]
    model: String,
    /// f16, q8, int8 (q8's weights, marked to run with 8-bit activations),
    /// q4 or q4-all.
    #[arg(long)]
    dtype: String,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    let dtype: WeightDtype = a.dtype.parse()?;
    let ck = Checkpoint::resolve(&a.model, true)?;
    let report = crossrank::quantize::quantize_checkpoint(&ck, dtype, &a.out)?;
    print_json(&report)
}
