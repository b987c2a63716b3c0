//! The run's arguments: transformers' `TrainingArguments` that the
//! reranker runner uses, FlagEmbedding's LoRA arguments, and the
//! learning-rate schedules.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The learning-rate schedule (`--lr-scheduler-type`), as transformers'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Schedule {
    /// Warmup, then linear decay to 0 (transformers' default).
    #[default]
    Linear,
    /// Warmup, then a half cosine to 0.
    Cosine,
    /// The learning rate throughout (no warmup).
    Constant,
    /// Warmup, then constant.
    #[cfg_attr(feature = "clap", value(name = "constant_with_warmup"))]
    ConstantWithWarmup,
}

/// transformers `TrainingArguments` that the reranker runner uses, under
/// the same names and with the same defaults (the CLI's flags, feature `clap`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainArgs {
    /// Peak learning rate (AdamW).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 5e-5))]
    pub learning_rate: f64,
    /// Passes over the training data (fractions allowed).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3.0))]
    pub num_train_epochs: f64,
    /// Optimizer steps in all; overrides --num-train-epochs.
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_steps: Option<usize>,
    /// Groups per micro-batch (`per_device_train_batch_size`); a
    /// micro-batch scores batch × train_group_size pairs.
    #[cfg_attr(feature = "clap", arg(long = "per-device-train-batch-size", visible_alias = "batch-size", default_value_t = 8))]
    pub per_device_train_batch_size: usize,
    /// Micro-batches per optimizer step.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub gradient_accumulation_steps: usize,
    /// Warmup as a fraction of all steps.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0))]
    pub warmup_ratio: f64,
    /// Warmup steps; overrides --warmup-ratio when positive.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub warmup_steps: usize,
    /// AdamW weight decay (not on biases and norm weights).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0))]
    pub weight_decay: f64,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.9))]
    /// AdamW's first-moment decay.
    pub adam_beta1: f64,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.999))]
    /// AdamW's second-moment decay.
    pub adam_beta2: f64,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1e-8))]
    /// AdamW's denominator epsilon.
    pub adam_epsilon: f64,
    /// Global gradient-norm clip (0: none).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.0))]
    pub max_grad_norm: f64,
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Schedule::Linear))]
    /// The learning-rate schedule.
    pub lr_scheduler_type: Schedule,
    /// Seeds the data order, the group draws and a new head.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 42))]
    pub seed: u64,
    /// A train_log.jsonl line every this many steps.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 500))]
    pub logging_steps: usize,
    /// A resumable checkpoint-N every this many steps.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 500))]
    pub save_steps: usize,
}

impl Default for TrainArgs {
    fn default() -> Self {
        TrainArgs {
            learning_rate: 5e-5,
            num_train_epochs: 3.0,
            max_steps: None,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            lr_scheduler_type: Schedule::Linear,
            seed: 42,
            logging_steps: 500,
            save_steps: 500,
        }
    }
}

/// LoRA for the LLM rerankers (FlagEmbedding's decoder-only
/// `RerankerModelArguments`, same names and defaults; the CLI's flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct LoraArgs {
    /// Rank of the adapters.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 64))]
    pub lora_rank: usize,
    /// Adapters are scaled by lora_alpha / lora_rank.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 16.0))]
    pub lora_alpha: f64,
    /// Accepted for the flag set; dropout is not reproduced (a warning says so when positive).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub lora_dropout: f64,
    /// Linear layers adapted, by their last name component (FlagEmbedding's
    /// default: every projection of attention and MLP).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_value = "v_proj,q_proj,k_proj,gate_proj,down_proj,o_proj,up_proj")
    )]
    pub target_modules: Vec<String>,
    /// Start from a PEFT adapter directory (adapter_config.json +
    /// adapter_model.safetensors) instead of fresh adapters; its rank,
    /// alpha and target modules win.
    #[cfg_attr(feature = "clap", arg(long))]
    pub from_peft: Option<PathBuf>,
    /// Layer-wise MiniCPM from a raw MiniCPM causal LM (FlagEmbedding's
    /// `from_raw_model`): the first layer that gets a score head
    /// (FlagEmbedding's default 8). A layer-wise reranker checkpoint keeps
    /// its own (giving another is an error).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub start_layer: Option<usize>,
    /// Layer-wise MiniCPM from a raw causal LM: one score head per layer
    /// from `start_layer` (true) or one shared head (FlagEmbedding's
    /// default, false). Heads start as the LM head's "Yes" row, frozen.
    #[cfg_attr(feature = "clap", arg(long, num_args = 0..=1, default_missing_value = "true"))]
    #[serde(default)]
    pub head_multi: Option<bool>,
    /// Layer-wise MiniCPM: score every layer from `start_layer` while
    /// training and add FlagEmbedding's per-layer losses (cross-entropy for
    /// each, distillation from the last layer into the earlier ones), as
    /// FlagEmbedding up to 1.2 trained. Off by default: FlagEmbedding 1.4.2
    /// calls the model without `cutoff_layers`, so only the last layer's
    /// score enters its loss.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub train_all_layers: bool,
}

impl Default for LoraArgs {
    fn default() -> Self {
        LoraArgs {
            lora_rank: 64,
            lora_alpha: 16.0,
            lora_dropout: 0.1,
            target_modules: ["v_proj", "q_proj", "k_proj", "gate_proj", "down_proj", "o_proj", "up_proj"].map(String::from).to_vec(),
            from_peft: None,
            start_layer: None,
            head_multi: None,
            train_all_layers: false,
        }
    }
}

/// LoRA state: the frozen weights adapted, each with its adapter pair

impl TrainArgs {
    pub(super) fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            return bad(format!("learning_rate must be a non-negative number, got {}", self.learning_rate));
        }
        if !(self.num_train_epochs.is_finite() && self.num_train_epochs > 0.0) && self.max_steps.is_none() {
            return bad(format!("num_train_epochs must be positive, got {}", self.num_train_epochs));
        }
        if self.max_steps == Some(0) {
            return bad("max_steps must be positive".into());
        }
        if self.per_device_train_batch_size == 0 || self.gradient_accumulation_steps == 0 {
            return bad("batch_size and gradient_accumulation_steps must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad(format!("warmup_ratio must be in [0, 1], got {}", self.warmup_ratio));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight_decay must be non-negative, got {}", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.adam_beta1) || !(0.0..1.0).contains(&self.adam_beta2) || self.adam_epsilon <= 0.0 {
            return bad("adam betas must be in [0, 1) and adam_epsilon positive".into());
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return bad(format!("max_grad_norm must be non-negative, got {}", self.max_grad_norm));
        }
        if self.logging_steps == 0 || self.save_steps == 0 {
            return bad("logging_steps and save_steps must be positive".into());
        }
        Ok(())
    }

    /// Optimizer steps for `examples` training examples
    /// (transformers: `ceil(epochs × updates per epoch)`, an update being
    /// up to `gradient_accumulation_steps` micro-batches).
    pub fn total_steps(&self, examples: usize) -> usize {
        if let Some(m) = self.max_steps {
            return m;
        }
        ((self.num_train_epochs * self.updates_per_epoch(examples) as f64).ceil() as usize).max(1)
    }

    pub(super) fn batches_per_epoch(&self, examples: usize) -> usize {
        examples.div_ceil(self.per_device_train_batch_size)
    }

    pub(super) fn updates_per_epoch(&self, examples: usize) -> usize {
        self.batches_per_epoch(examples).div_ceil(self.gradient_accumulation_steps).max(1)
    }

    /// Warmup steps of a run of `total` steps.
    pub fn warmup(&self, total: usize) -> usize {
        if self.warmup_steps > 0 { self.warmup_steps } else { (self.warmup_ratio * total as f64).ceil() as usize }
    }

    /// The learning rate of optimizer step `step` (0-based) of `total`:
    /// transformers' `lr_lambda(step)` × `learning_rate`.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let warmup = self.warmup(total);
        let (s, w, t) = (step as f64, warmup as f64, total as f64);
        let factor = match self.lr_scheduler_type {
            Schedule::Constant => 1.0,
            _ if step < warmup => s / w.max(1.0),
            Schedule::ConstantWithWarmup => 1.0,
            Schedule::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            Schedule::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        };
        self.learning_rate * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_transformers() {
        let a = TrainArgs { learning_rate: 1.0, warmup_ratio: 0.1, ..TrainArgs::default() };
        // get_linear_schedule_with_warmup(10 warmup of 100)
        assert_eq!(a.warmup(100), 10);
        assert_eq!(a.learning_rate_at(0, 100), 0.0);
        assert_eq!(a.learning_rate_at(5, 100), 0.5);
        assert_eq!(a.learning_rate_at(10, 100), 1.0);
        assert!((a.learning_rate_at(55, 100) - 0.5).abs() < 1e-12);
        assert_eq!(a.learning_rate_at(100, 100), 0.0);
        let c = TrainArgs { lr_scheduler_type: Schedule::Cosine, ..a.clone() };
        assert!((c.learning_rate_at(55, 100) - 0.5).abs() < 1e-12);
        // 10 examples, batch 3 → 4 micro-batches, GA 2 → 2 updates per epoch.
        let t = TrainArgs { per_device_train_batch_size: 3, gradient_accumulation_steps: 2, num_train_epochs: 1.5, ..a };
        assert_eq!(t.total_steps(10), 3);
    }
}
