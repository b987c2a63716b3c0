//! What a run leaves on disk and resumes from: `checkpoint-N` (the model,
//! Adam's moments, `trainer_state.json`) and the final model in Hugging
//! Face layout — each written into a staging directory and renamed into
//! place, so no reader ever sees a half-written file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use super::FineTuner;
use super::args::{LoraArgs, TrainArgs};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::files::Staging;
use crate::finetune::data::DataArgs;
use crate::quantize::{copy_other_files, write_safetensors, write_weights};
use crate::weights::Weights;

/// Resumable position, in `checkpoint-N/trainer_state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TrainerState {
    pub(super) global_step: usize,
    /// The epoch and the next optimizer update within it.
    pub(super) epoch: usize,
    pub(super) update_in_epoch: usize,
    pub(super) total_steps: usize,
    train_args: TrainArgs,
    data_args: DataArgsState,
    /// Loss summed since the last log line, and that line's step.
    pub(super) loss_since_log: f64,
    pub(super) last_logged: usize,
    /// LoRA: the base checkpoint the adapters (`checkpoint-N/adapter`) apply to.
    #[serde(default)]
    lora_base: Option<String>,
    /// LoRA: the arguments the run started with (a resume keeps them).
    #[serde(default)]
    lora_args: Option<LoraArgs>,
}

impl TrainerState {
    /// Step 0 of a run with these arguments.
    pub(super) fn start(args: &TrainArgs, data: &DataArgs, lora: Option<(String, LoraArgs)>) -> Self {
        let (lora_base, lora_args) = lora.map_or((None, None), |(b, a)| (Some(b), Some(a)));
        TrainerState {
            global_step: 0,
            epoch: 0,
            update_in_epoch: 0,
            total_steps: 0,
            train_args: args.clone(),
            data_args: DataArgsState::from(data),
            loss_since_log: 0.0,
            last_logged: 0,
            lora_base,
            lora_args,
        }
    }
}

/// The data arguments a checkpoint was trained with (a resume must use the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DataArgsState {
    train_group_size: usize,
    query_max_len: usize,
    passage_max_len: usize,
    knowledge_distillation: bool,
}

impl From<&DataArgs> for DataArgsState {
    fn from(d: &DataArgs) -> Self {
        DataArgsState {
            train_group_size: d.train_group_size,
            query_max_len: d.query_max_len,
            passage_max_len: d.passage_max_len,
            knowledge_distillation: d.knowledge_distillation,
        }
    }
}

impl FineTuner {
    /// Continue a run from `checkpoint` (a `checkpoint-N` directory this
    /// trainer wrote): its weights, Adam's moments and the data position.
    /// The arguments must be the run's (the schedule depends on them).
    pub fn resume(checkpoint: &Path, data: DataArgs, args: TrainArgs, device: &Device) -> Result<Self> {
        let state_path = checkpoint.join("trainer_state.json");
        let bytes = std::fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let state: TrainerState = serde_json::from_slice(&bytes).map_err(|e| Error::config("trainer_state.json", e))?;
        if state.train_args != args || state.data_args != DataArgsState::from(&data) {
            return Err(Error::InvalidInput(format!(
                "{} was trained with other arguments ({:?}, {:?}): resume with the same ones",
                checkpoint.display(),
                state.train_args,
                state.data_args
            )));
        }
        let mut tuner = match &state.lora_base {
            // The adapters continue over the same base.
            Some(base) => {
                let lora = LoraArgs { from_peft: Some(checkpoint.join("adapter")), ..state.lora_args.clone().unwrap_or_default() };
                Self::new_lora(Checkpoint::dir(base), data, args, lora, device)?
            }
            None => Self::new(Checkpoint::dir(checkpoint), data, args, device)?,
        };
        let opt = Checkpoint::dir(checkpoint);
        let moments = Weights::from_shard_bytes(vec![(
            "optimizer.safetensors".into(),
            opt.read_weights_file("optimizer.safetensors")?
                .ok_or_else(|| Error::MissingFile { file: "optimizer.safetensors".into(), location: checkpoint.display().to_string() })?,
        )])?;
        for p in &mut tuner.params {
            let (m, v) = (format!("exp_avg.{}", p.name), format!("exp_avg_sq.{}", p.name));
            if moments.contains(&m) {
                let n = p.numel();
                let t = |name: &str| -> Result<Tensor<1>> { Ok(Tensor::from_data(TensorData::new(moments.f32(name, &[n])?, [n]), device)) };
                p.moments = Some((t(&m)?, t(&v)?));
            }
        }
        tuner.state = state;
        Ok(tuner)
    }

    /// Write the model in Hugging Face layout into `staging`.
    pub(super) fn write_model(&self, staging: &Staging) -> Result<()> {
        let new_head = self.new_head;
        copy_other_files(&self.source, staging, |f| {
            f != "config.json"
                && !f.ends_with("trainer_state.json")
                && f != "optimizer.safetensors"
                && f != "train_log.jsonl"
                // A bare encoder's sentence-transformers files would make
                // the cross-encoder load as an embedder.
                && !(new_head
                    && (f == "modules.json"
                        || f.starts_with("config_sentence_transformers")
                        || f == "sentence_bert_config.json"
                        || f.starts_with("1_Pooling")
                        || f.starts_with("2_Normalize")))
        })?;
        let config = serde_json::to_vec_pretty(&self.config).map_err(|e| Error::config("config.json", e))?;
        staging.write("config.json", &config)?;
        if let Some(lora) = &self.lora {
            return self.write_lora(lora, staging);
        }
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self.kept.clone();
        for p in &self.params {
            tensors.push((p.name.clone(), Dtype::F32, p.shape.clone(), host_bytes(p.value.clone())?));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        write_weights(staging.path(), &tensors, HashMap::from([("format".to_string(), "pt".to_string())]))?;
        Ok(())
    }

    /// `out/checkpoint-N`: the model, Adam's moments and the position,
    /// written aside and renamed into place.
    pub(super) fn save_checkpoint(&self, out: &Path) -> Result<PathBuf> {
        let target = out.join(format!("checkpoint-{}", self.state.global_step));
        let staging = Staging::new(&target)?;
        self.write_model(&staging)?;
        let mut tensors = Vec::new();
        for p in &self.params {
            if let Some((m, v)) = &p.moments {
                for (kind, t) in [("exp_avg", m), ("exp_avg_sq", v)] {
                    tensors.push((format!("{kind}.{}", p.name), Dtype::F32, vec![p.numel()], host_bytes(t.clone())?));
                }
            }
        }
        // One file, whatever its size: the moments are read back whole.
        write_safetensors(&staging.path().join("optimizer.safetensors"), &tensors, &HashMap::new())?;
        let state = serde_json::to_vec_pretty(&self.state).map_err(|e| Error::InvalidInput(e.to_string()))?;
        staging.write("trainer_state.json", &state)?;
        staging.commit()?;
        Ok(target)
    }

    /// The model as it stands into `out` (Hugging Face layout; with LoRA
    /// the merged checkpoint plus `adapter/`): written aside, then each
    /// file renamed into place (weights before config), so `out` never
    /// holds a half-written file.
    pub fn save_model(&self, out: &Path) -> Result<()> {
        let staging = Staging::new(&out.join("final"))?;
        self.write_model(&staging)?;
        let mut files: Vec<PathBuf> = Vec::new();
        collect_files(staging.path(), &mut files)?;
        files.sort_by_key(|f| f.file_name().is_some_and(|n| n == "config.json"));
        for f in files {
            let rel = f
                .strip_prefix(staging.path())
                .map_err(|_| Error::InvalidInput(format!("{} is outside the staging directory", f.display())))?;
            let dest = out.join(rel);
            if let Some(d) = dest.parent() {
                std::fs::create_dir_all(d).map_err(|e| Error::write(d, e))?;
            }
            std::fs::rename(&f, &dest).map_err(|e| Error::write(&dest, e))?;
        }
        Ok(())
    }
}

/// A tensor's values as f32, read back from the device.
pub(super) fn host_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Device(format!("{e:?}")))
}

/// A tensor's f32 values as little-endian bytes.
pub(super) fn host_bytes<const D: usize>(t: Tensor<D>) -> Result<Vec<u8>> {
    Ok(host_f32(t)?.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = e.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() { collect_files(&path, out)? } else { out.push(path) }
    }
    Ok(())
}

