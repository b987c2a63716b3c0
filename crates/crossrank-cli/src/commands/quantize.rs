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
    /// Calibration texts for q4 / q4-all (a text file, one text per line;
    /// a reranker reads each paired with the next): texts of your own
    /// domain instead of the built-in set. Other dtypes take none.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    let dtype: WeightDtype = a.dtype.parse()?;
    let ck = Checkpoint::resolve(&a.model, true)?;
    let report = match &a.calibration {
        Some(path) => {
            if !dtype.calibrated() {
                anyhow::bail!("--calibration is for q4 and q4-all (the calibrated dtypes), not {}", dtype.as_str());
            }
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--calibration {}: {e}", path.display()))?;
            let texts = crossrank::quantize::calibrate::texts_of(&text);
            crossrank::quantize::quantize_checkpoint_with(&ck, dtype, &a.out, &texts)?
        }
        None => crossrank::quantize::quantize_checkpoint(&ck, dtype, &a.out)?,
    };
    print_json(&report)
}
