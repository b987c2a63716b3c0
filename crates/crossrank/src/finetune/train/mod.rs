//! Training: the loop of FlagEmbedding's encoder-only reranker runner
//! (`AbsRerankerModel.forward` + transformers' `Trainer`) on Burn's
//! autodiff, CPU or GPU.
//!
//! How the model trains without a second copy of it: every trained tensor
//! is a flat f32 leaf on the autodiff device, handed to the ordinary model
//! code as a "live" weight under its checkpoint name ([`Weights::live_only`]).
//! The layers take them through tensor ops (transpose, q|k|v concat, row
//! slices), so the gradient of each comes back to its leaf; the CPU's host
//! fast paths step aside on an autodiff device (`kernels::on_host`), and a
//! host read of a live weight is an error, not a silently frozen tensor.
//! The model is rebuilt from its leaves for every micro-batch (views and
//! one concat per layer: cheap next to the pass itself).
//!
//! The optimizer and schedule are transformers 4.57's defaults as
//! FlagEmbedding 1.4.2 runs them: AdamW (torch's, decoupled decay applied
//! first), weight decay on every parameter except biases and norm weights,
//! gradients clipped to a global norm of `max_grad_norm`, the learning
//! rate from a linear (or constant / cosine) schedule with warmup, the loss
//! of each micro-batch divided by the number of micro-batches in its
//! optimizer step.
//!
//! Not reproduced: dropout (the forward pass is the inference one, as with
//! dropout 0; FlagEmbedding trains with the config's dropout), fp16/bf16
//! mixed precision (f32 throughout), Python's and torch's random streams
//! (groups and the data order come from a seeded SplitMix64 — the same
//! algorithms, different draws).
//!
//! Here: [`FineTuner`] — the trained parameters, the model built from them,
//! a micro-batch's forward/backward, the optimizer step and the loop.
//! Beside it: `args` (arguments and schedules), `full` (the encoders' full
//! fine-tuning and a bare encoder's new head), `lora` (the LLM rerankers:
//! adapters, merge, PEFT read/write, raw MiniCPM heads), `adamw` (the
//! optimizer and which parameters decay), `loss` (the group loss), `state`
//! (checkpoints, resume, the written model).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use super::data::{DataArgs, Group, Rng, TrainExample, sample_group};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::models::{Architecture, Reranking};
use crate::tokenize::{Encoded, PairTokenizer};
use crate::weights::{Live, Weights};

mod adamw;
mod args;
mod full;
mod lora;
mod loss;
mod state;

pub use adamw::decays;
use adamw::Param;
pub use args::{LoraArgs, Schedule, TrainArgs};
use lora::{Lora, is_raw_minicpm};
use state::{TrainerState, host_f32};

/// One optimizer step's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepOutcome {
    /// The step's loss: the mean of its micro-batches' losses.
    pub loss: f64,
    /// The learning rate the step used.
    pub learning_rate: f64,
    /// The gradients' global norm before clipping.
    pub grad_norm: f64,
    /// Pairs scored (forward and backward).
    pub pairs: usize,
}

/// One line of `train_log.jsonl` (transformers' `log_history` entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// The optimizer step.
    pub step: usize,
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Mean loss of the optimizer steps since the previous line.
    pub loss: f64,
    /// The learning rate this step used (as transformers logs it).
    pub learning_rate: f64,
    /// The gradients' global norm before clipping.
    pub grad_norm: f64,
}

/// Where training stands, for a progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Optimizer steps taken.
    pub step: usize,
    /// Optimizer steps of the whole run.
    pub total_steps: usize,
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Pairs trained on (forward + backward) in this process, and the
    /// seconds it took.
    pub pairs: u64,
    /// Seconds spent in this process.
    pub seconds: f64,
    /// The loss of the step just taken.
    pub last_loss: f64,
    /// Set when this step wrote a log line.
    pub logged: Option<LogLine>,
}

/// What [`FineTuner::train`] did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Optimizer steps taken (in all, a resumed run's included).
    pub steps: usize,
    /// Optimizer steps of the whole run.
    pub total_steps: usize,
    /// Pairs trained on in this process and the time it took.
    pub pairs: u64,
    /// Seconds spent in this process.
    pub seconds: f64,
    /// `pairs / seconds`.
    pub pairs_per_second: f64,
    /// Mean loss over the steps of this process.
    pub train_loss: f64,
    /// True when stopped early (the stop flag): a resumable checkpoint was saved.
    pub interrupted: bool,
    /// The final model's directory, or the checkpoint to resume from.
    pub saved: PathBuf,
}

/// A cross-encoder being fine-tuned (full fine-tuning of every float
/// tensor), from a sequence-classification checkpoint or a bare encoder
/// given a new one-logit head.
pub struct FineTuner {
    source: Checkpoint,
    /// `config.json` of the model being trained (rewritten for a new head).
    config: serde_json::Value,
    architecture: Architecture,
    /// Set when the source was a bare encoder: its sentence-transformers
    /// files are not copied to a cross-encoder.
    new_head: bool,
    tokenizer: PairTokenizer,
    params: Vec<Param>,
    /// Stored tensors that are not float (e.g. `position_ids`), saved as they were.
    kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    data: DataArgs,
    args: TrainArgs,
    device: Device,
    state: TrainerState,
    /// Set for an LLM reranker: only its adapters train.
    lora: Option<Lora>,
}

impl FineTuner {
    /// Start training `ck` as its architecture trains: full fine-tuning for
    /// the encoders ([`FineTuner::new`]), LoRA with `lora` for the LLM
    /// rerankers ([`FineTuner::new_lora`]).
    pub fn start(ck: Checkpoint, data: DataArgs, args: TrainArgs, lora: LoraArgs, device: &Device) -> Result<Self> {
        let config: serde_json::Value = serde_json::from_slice(&ck.read("config.json")?).map_err(|e| Error::config("config.json", e))?;
        if is_raw_minicpm(&config) || Architecture::of(&ck)?.is_llm() {
            Self::new_lora(ck, data, args, lora, device)
        } else {
            Self::new(ck, data, args, device)
        }
    }

    /// The number of trained tensors and values.
    pub fn parameter_count(&self) -> (usize, usize) {
        (self.params.len(), self.params.iter().map(Param::numel).sum())
    }

    /// Optimizer steps taken.
    pub fn global_step(&self) -> usize {
        self.state.global_step
    }

    /// The current value of a trained tensor (flat, row-major), by its
    /// checkpoint name.
    pub fn parameter(&self, name: &str) -> Option<Vec<f32>> {
        let p = self.params.iter().find(|p| p.name == name)?;
        host_f32(p.value.clone()).ok()
    }

    /// The model from parameter values `values` (leaves or plain tensors):
    /// the values themselves as the weights, or with LoRA the merged
    /// projections `W + scale · B A` over the frozen checkpoint.
    fn build(&self, values: &[Tensor<1>], device: &Device) -> Result<Reranking> {
        let config = serde_json::to_vec(&self.config).map_err(|e| Error::config("config.json", e))?;
        let weights = || -> Result<Weights> {
            match &self.lora {
                Some(lora) => Ok(lora.base_weights(&self.source)?.with_live(lora.merged(&self.params, values))),
                None => Ok(Weights::live_only(
                    self.params.iter().zip(values).map(|(p, v)| (p.name.clone(), as_live(v.clone(), &p.shape))).collect(),
                )),
            }
        };
        let (model, _, _) = Reranking::from_weights(weights, &config, self.architecture, &self.tokenizer, device)?;
        Ok(model)
    }

    fn model(&self) -> Result<Reranking> {
        let values: Vec<Tensor<1>> = self.params.iter().map(|p| p.value.clone()).collect();
        self.build(&values, &self.device)
    }

    /// The pairs of `groups`, group after group (FlagEmbedding's collator
    /// flattens them in that order), as the model takes them: the
    /// encoder's pair construction, or the LLM rerankers' training input.
    pub fn encode_groups(&self, groups: &[Group]) -> Result<Vec<Encoded>> {
        let (q, p) = (self.data.query_max_len, self.data.passage_max_len);
        if self.architecture.is_llm() {
            let mut out = Vec::new();
            for g in groups {
                let template = self.tokenizer.llm_template(g.prompt.as_deref())?;
                for passage in &g.passages {
                    out.push(self.tokenizer.encode_llm_train_pair(&g.query, passage, q, p, &template)?);
                }
            }
            return Ok(out);
        }
        groups
            .iter()
            .flat_map(|g| g.passages.iter().map(move |passage| (g.query.as_str(), passage.as_str())))
            .map(|(query, passage)| self.tokenizer.encode_pair_capped(query, passage, q + p, q + p / 4, p + q / 2))
            .collect()
    }

    /// Scores of pairs with the current weights (no gradient), e.g. to
    /// check a trained model.
    pub fn score(&self, groups: &[Group]) -> Result<Vec<f32>> {
        let items = self.encode_groups(groups)?;
        let refs: Vec<&Encoded> = items.iter().collect();
        let model = self.model()?;
        // The model's own score: a layer-wise model's last layer.
        let cutoffs = model.cutoff_layers(None, self.architecture)?;
        let logits = model.forward(&refs, &self.tokenizer, &cutoffs, &self.device)?.remove(0);
        host_f32(logits)
    }

    /// One micro-batch: forward, the group loss, backward with the loss
    /// divided by `parts`; gradients added to each parameter's sum.
    fn micro_batch(&mut self, groups: &[Group], parts: usize) -> Result<f64> {
        let g = self.data.train_group_size;
        if groups.iter().any(|x| x.passages.len() != g) {
            return Err(Error::InvalidInput(format!("every group must hold train_group_size = {g} passages")));
        }
        let items = self.encode_groups(groups)?;
        let refs: Vec<&Encoded> = items.iter().collect();
        let ad = self.device.clone().autodiff();
        let leaves: Vec<Tensor<1>> = self.params.iter().map(|p| p.value.clone().autodiff().require_grad()).collect();
        let model = self.build(&leaves, &ad)?;
        // FlagEmbedding 1.4.2 scores a layer-wise model at its last layer
        // only (no cutoff_layers); train_all_layers scores every head layer.
        let cutoffs = match &self.lora {
            Some(l) if l.all_layers => model.scoring_layers(),
            _ => model.cutoff_layers(None, self.architecture)?,
        };
        let b = groups.len();
        let grouped: Vec<Tensor<2>> =
            model.forward(&refs, &self.tokenizer, &cutoffs, &ad)?.into_iter().map(|l| l.reshape([b, g])).collect();
        let loss = loss::group_loss(&grouped, groups, self.data.knowledge_distillation, &ad)?;
        let value = f64::from(loss.clone().inner().into_scalar::<f32>());
        if !value.is_finite() {
            return Err(Error::NonFinite { value: value as f32, index: 0 });
        }
        let grads = loss.div_scalar(parts as f32).backward();
        for (p, leaf) in self.params.iter_mut().zip(&leaves) {
            if let Some(grad) = leaf.grad(&grads) {
                p.grad = Some(match p.grad.take() {
                    Some(sum) => sum + grad,
                    None => grad,
                });
            }
        }
        Ok(value)
    }

    /// One optimizer step over `micro_batches` (each a list of groups):
    /// gradients accumulated, clipped, AdamW at the scheduled rate.
    pub fn step(&mut self, micro_batches: &[Vec<Group>]) -> Result<StepOutcome> {
        if micro_batches.is_empty() {
            return Err(Error::InvalidInput("an optimizer step needs at least one micro-batch".into()));
        }
        let total = self.state.total_steps.max(self.args.max_steps.unwrap_or(0)).max(self.state.global_step + 1);
        let lr = self.args.learning_rate_at(self.state.global_step, total);
        let mut loss = 0.0;
        let mut pairs = 0;
        for mb in micro_batches {
            loss += self.micro_batch(mb, micro_batches.len())? / micro_batches.len() as f64;
            pairs += mb.len() * self.data.train_group_size;
        }
        let grad_norm = adamw::step(&mut self.params, &self.args, lr, self.state.global_step);
        self.state.global_step += 1;
        Ok(StepOutcome { loss, learning_rate: lr, grad_norm, pairs })
    }

    /// Train on `examples` to the end of the schedule (or until `stop` is
    /// set: then a resumable `checkpoint-N` is saved), writing into `out`:
    /// `train_log.jsonl`, a `checkpoint-N` every `save_steps`, and at the
    /// end the model itself (config.json, model.safetensors, tokenizer
    /// files: Hugging Face layout).
    pub fn train(
        &mut self,
        examples: &[TrainExample],
        out: &Path,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<TrainReport> {
        if examples.is_empty() {
            return Err(Error::InvalidInput("no training examples".into()));
        }
        let total = self.args.total_steps(examples.len());
        self.state.total_steps = total;
        std::fs::create_dir_all(out).map_err(|e| Error::write(out, e))?;
        let log_path = out.join("train_log.jsonl");
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| Error::write(&log_path, e))?;
        let (b, ga) = (self.args.per_device_train_batch_size, self.args.gradient_accumulation_steps);
        let updates = self.args.updates_per_epoch(examples.len()) as f64;
        let started = Instant::now();
        let (mut pairs, mut loss_sum, mut steps_here) = (0u64, 0.0, 0usize);
        while self.state.global_step < total {
            let epoch = self.state.epoch;
            let order = epoch_order(examples.len(), self.args.seed, epoch);
            let batches: Vec<&[usize]> = order.chunks(b).collect();
            let epoch_updates: Vec<&[&[usize]]> = batches.chunks(ga).collect();
            while self.state.update_in_epoch < epoch_updates.len() && self.state.global_step < total {
                let update = epoch_updates[self.state.update_in_epoch];
                let micro = update
                    .iter()
                    .map(|batch| {
                        batch
                            .iter()
                            .map(|&i| sample_group(&examples[i], &self.data, &mut item_rng(self.args.seed, epoch, i)))
                            .collect::<Result<Vec<_>>>()
                    })
                    .collect::<Result<Vec<_>>>()?;
                let outcome = self.step(&micro)?;
                self.state.update_in_epoch += 1;
                pairs += outcome.pairs as u64;
                loss_sum += outcome.loss;
                steps_here += 1;
                self.state.loss_since_log += outcome.loss;
                let step = self.state.global_step;
                let epoch_f = epoch as f64 + self.state.update_in_epoch as f64 / updates;
                let mut logged = None;
                if step % self.args.logging_steps == 0 || step == total {
                    let line = LogLine {
                        step,
                        epoch: epoch_f,
                        loss: self.state.loss_since_log / (step - self.state.last_logged) as f64,
                        learning_rate: outcome.learning_rate,
                        grad_norm: outcome.grad_norm,
                    };
                    let text = serde_json::to_string(&line).map_err(|e| Error::InvalidInput(e.to_string()))?;
                    writeln!(log, "{text}").and_then(|()| log.flush()).map_err(|e| Error::write(&log_path, e))?;
                    self.state.loss_since_log = 0.0;
                    self.state.last_logged = step;
                    logged = Some(line);
                }
                progress(&Progress {
                    step,
                    total_steps: total,
                    epoch: epoch_f,
                    pairs,
                    seconds: started.elapsed().as_secs_f64(),
                    last_loss: outcome.loss,
                    logged,
                });
                if step < total && step % self.args.save_steps == 0 {
                    self.save_checkpoint(out)?;
                }
                if stop.load(Ordering::SeqCst) && step < total {
                    let saved = self.save_checkpoint(out)?;
                    return Ok(self.report(pairs, started, loss_sum, steps_here, total, true, saved));
                }
            }
            if self.state.update_in_epoch >= epoch_updates.len() {
                self.state.epoch += 1;
                self.state.update_in_epoch = 0;
            }
        }
        self.save_model(out)?;
        Ok(self.report(pairs, started, loss_sum, steps_here, total, false, out.to_path_buf()))
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        pairs: u64,
        started: Instant,
        loss: f64,
        steps: usize,
        total: usize,
        interrupted: bool,
        saved: PathBuf,
    ) -> TrainReport {
        let seconds = started.elapsed().as_secs_f64();
        TrainReport {
            steps: self.state.global_step,
            total_steps: total,
            pairs,
            seconds,
            pairs_per_second: pairs as f64 / seconds.max(1e-9),
            train_loss: if steps > 0 { loss / steps as f64 } else { f64::NAN },
            interrupted,
            saved,
        }
    }
}

/// A flat leaf viewed in its checkpoint shape.
fn as_live(t: Tensor<1>, shape: &[usize]) -> Live {
    match *shape {
        [r, c] => Live::Matrix(t.reshape([r, c])),
        [n] => Live::Vector(t.reshape([n])),
        _ => Live::Vector(t),
    }
}

/// The examples' order in `epoch` (transformers' RandomSampler: a fresh
/// permutation per epoch, from the seed).
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
    order
}

/// The group draw of example `i` in `epoch`: its own stream, so a resumed
/// run draws what the uninterrupted one would have.
fn item_rng(seed: u64, epoch: usize, i: usize) -> Rng {
    let mut r = Rng::new(seed.wrapping_add((epoch as u64) << 40).wrapping_add(i as u64));
    r.next_u64();
    r
}
