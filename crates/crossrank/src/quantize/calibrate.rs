//! Calibration for `quantize --dtype q4` / `q4-all`: the f32 model reads a
//! few dozen texts on the CPU while `nn::calibration` records what each
//! layer to be rounded by GPTQ sees.
//!
//! The built-in set (`calibration.txt`, written for this crate: queries
//! and passages of many lengths, ten languages, code, numbers, markup) is
//! what `crossrank quantize` uses unless given texts of the user's own
//! domain. A reranker reads each text paired with the next (its inputs are
//! pairs); an embedder reads each text, and the empty one.

use std::collections::{HashMap, HashSet};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::models::Task;
use crate::nn::calibration::Session;
use crate::quant::{Gram, WeightDtype};
use crate::{Device, EmbedOptions, Embedder, Reranker, ScoreOptions};

/// The built-in calibration texts, one per line.
pub const BUILTIN: &str = include_str!("calibration.txt");

/// Calibration texts from `text`: one per line, blank lines skipped.
pub fn texts_of(text: &str) -> Vec<String> {
    text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

/// The Gram matrices of the inputs of the weights in `wanted`, from `ck`
/// loaded in f32 reading `texts`. A wanted weight that no text reached is
/// an error (its layer would be rounded blind).
pub(crate) fn grams(ck: &Checkpoint, wanted: HashSet<String>, texts: &[String]) -> Result<HashMap<String, Gram>> {
    if texts.is_empty() {
        return Err(Error::InvalidInput("the calibration set has no texts".into()));
    }
    let device = Device::flex();
    let wanted_list: Vec<String> = wanted.iter().cloned().collect();
    let task = Task::of(ck)?;
    let grams = match task {
        Task::Rerank => {
            let model = Reranker::load_with_dtype(ck, &device, WeightDtype::F32)?;
            let opts = ScoreOptions::default();
            let session = Session::start(wanted);
            for i in 0..texts.len() {
                let pair = [(texts[i].as_str(), texts[(i + 1) % texts.len()].as_str())];
                model.compute_score(&pair, &opts)?;
            }
            session.finish()
        }
        _ => {
            let model = Embedder::load_with_dtype(ck, &device, WeightDtype::F32)?;
            let opts = EmbedOptions { batch_size: Some(1), ..Default::default() };
            let session = Session::start(wanted);
            for t in texts.iter().map(String::as_str).chain([""]) {
                model.embed(&[t], &opts)?;
            }
            session.finish()
        }
    };
    if let Some(missing) = wanted_list.iter().find(|n| !grams.contains_key(*n)) {
        return Err(Error::InvalidInput(format!(
            "calibration: no input reached {missing} (its layer is not run by this model's forward pass); quantize with --dtype q8 or report the model"
        )));
    }
    Ok(grams)
}
