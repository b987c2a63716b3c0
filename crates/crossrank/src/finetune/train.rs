//! The training loop: FlagEmbedding's encoder-only reranker runner
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

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData, activation};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use super::data::{DataArgs, Group, Rng, TrainExample, sample_group};
use crate::checkpoint::{Checkpoint, ShardBytes};
use crate::error::{Error, Result};
use crate::files::Staging;
use crate::models::{Architecture, Reranking};
use crate::quantize::{copy_other_files, write_safetensors, write_weights};
use crate::tokenize::{Encoded, PairTokenizer};
use crate::weights::{Live, Weights};

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
    pub adam_beta1: f64,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.999))]
    pub adam_beta2: f64,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1e-8))]
    pub adam_epsilon: f64,
    /// Global gradient-norm clip (0: none).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.0))]
    pub max_grad_norm: f64,
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = Schedule::Linear))]
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
/// (parameters `MODULE.lora_A.weight` `[r, in]` and `MODULE.lora_B.weight`
/// `[out, r]`); the model sees `W + (alpha / r) B A`.
struct Lora {
    scale: f64,
    rank: usize,
    alpha: f64,
    target_modules: Vec<String>,
    /// (weight name, frozen `[out, in]` weight, index of A in `params`).
    targets: Vec<(String, Tensor<2>, usize)>,
    /// Layer-wise MiniCPM: every head layer enters the loss.
    all_layers: bool,
    /// Frozen tensors the base checkpoint does not have (the score heads
    /// of a layer-wise model made from a raw MiniCPM), as one safetensors
    /// buffer, and stored tensors the trained model leaves out (the raw
    /// model's LM head).
    base_extra: Option<Arc<Vec<u8>>>,
    base_drop: Vec<String>,
}

impl TrainArgs {
    fn check(&self) -> Result<()> {
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

    fn batches_per_epoch(&self, examples: usize) -> usize {
        examples.div_ceil(self.per_device_train_batch_size)
    }

    fn updates_per_epoch(&self, examples: usize) -> usize {
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

/// Whether transformers applies weight decay to a parameter:
/// `Trainer.get_decay_parameter_names` — not biases, not LayerNorm /
/// RMSNorm weights (by module type, which for these models is by name).
pub fn decays(name: &str) -> bool {
    let n = name.to_lowercase();
    let norm = n.split('.').any(|part| part == "norm" || part.ends_with("_norm"));
    !(n.contains("bias") || n.contains("layernorm") || n.contains("rmsnorm") || norm)
}

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
    pub step: usize,
    pub epoch: f64,
    /// Mean loss of the optimizer steps since the previous line.
    pub loss: f64,
    /// The learning rate this step used (as transformers logs it).
    pub learning_rate: f64,
    pub grad_norm: f64,
}

/// Where training stands, for a progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: usize,
    pub total_steps: usize,
    pub epoch: f64,
    /// Pairs trained on (forward + backward) in this process, and the
    /// seconds it took.
    pub pairs: u64,
    pub seconds: f64,
    pub last_loss: f64,
    /// Set when this step wrote a log line.
    pub logged: Option<LogLine>,
}

/// What [`FineTuner::train`] did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub steps: usize,
    pub total_steps: usize,
    /// Pairs trained on in this process and the time it took.
    pub pairs: u64,
    pub seconds: f64,
    pub pairs_per_second: f64,
    /// Mean loss over the steps of this process.
    pub train_loss: f64,
    /// True when stopped early (the stop flag): a resumable checkpoint was saved.
    pub interrupted: bool,
    /// The final model's directory, or the checkpoint to resume from.
    pub saved: PathBuf,
}

/// Resumable position, in `checkpoint-N/trainer_state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    global_step: usize,
    /// The epoch and the next optimizer update within it.
    epoch: usize,
    update_in_epoch: usize,
    total_steps: usize,
    train_args: TrainArgs,
    data_args: DataArgsState,
    /// Loss summed since the last log line, and that line's step.
    loss_since_log: f64,
    last_logged: usize,
    /// LoRA: the base checkpoint the adapters (`checkpoint-N/adapter`) apply to.
    #[serde(default)]
    lora_base: Option<String>,
    /// LoRA: the arguments the run started with (a resume keeps them).
    #[serde(default)]
    lora_args: Option<LoraArgs>,
}

impl TrainerState {
    /// Step 0 of a run with these arguments.
    fn start(args: &TrainArgs, data: &DataArgs, lora: Option<(String, LoraArgs)>) -> Self {
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

/// A trained tensor: its value and Adam's moments (on the device, without
/// autodiff), its gradient summed over the micro-batches of a step.
struct Param {
    name: String,
    shape: Vec<usize>,
    value: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
    grad: Option<Tensor<1>>,
    decay: bool,
}

impl Param {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
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

/// transformers' `_init_weights` for a new linear layer: weight ~
/// N(0, initializer_range), bias 0 — drawn from `rng` (Box–Muller).
fn normal(n: usize, std: f64, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
            let u2 = rng.next_f64();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
        })
        .collect()
}

impl FineTuner {
    /// Start from checkpoint `ck` on `device` (any device; training runs on
    /// its autodiff form). A bare encoder (`BertModel`, `XLMRobertaModel`,
    /// e.g. all-MiniLM-L6-v2) gets a new classification head with one
    /// logit, initialised as transformers does (`seed` draws it).
    pub fn new(ck: Checkpoint, data: DataArgs, args: TrainArgs, device: &Device) -> Result<Self> {
        data.check()?;
        args.check()?;
        let config_bytes = ck.read("config.json")?;
        let mut config: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| Error::config("config.json", e))?;
        if is_raw_minicpm(&config) {
            return Self::new_lora(ck, data, args, LoraArgs::default(), device);
        }
        let source_arch = Architecture::from_config_json(&config_bytes)?;
        let (architecture, prefix) = match source_arch {
            Architecture::BertForSequenceClassification | Architecture::XlmRobertaForSequenceClassification => (source_arch, None),
            Architecture::BertModel => (Architecture::BertForSequenceClassification, Some("bert.")),
            Architecture::XlmRobertaModel => (Architecture::XlmRobertaForSequenceClassification, Some("roberta.")),
            Architecture::GemmaForCausalLM | Architecture::LayerWiseMiniCpmForCausalLM => {
                return Self::new_lora(ck, data, args, LoraArgs::default(), device);
            }
        };
        let new_head = prefix.is_some();
        if let (Some(_), Some(obj)) = (prefix, config.as_object_mut()) {
            let name = if architecture == Architecture::BertForSequenceClassification {
                "BertForSequenceClassification"
            } else {
                "XLMRobertaForSequenceClassification"
            };
            obj.insert("architectures".into(), serde_json::json!([name]));
            obj.insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
            obj.insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
            obj.remove("num_labels");
        }
        let weights = Weights::open(&ck)?;
        let mut names: Vec<String> = weights.names().map(str::to_string).collect();
        names.sort();
        let (mut params, mut kept) = (Vec::new(), Vec::new());
        for stored in names {
            let (dtype, shape, bytes) = weights.raw(&stored).ok_or_else(|| Error::MissingTensor { name: stored.clone() })?;
            if [".q8", ".q4", ".qscale"].iter().any(|s| stored.ends_with(s)) {
                return Err(Error::InvalidInput(format!(
                    "{stored}: the checkpoint is quantized; fine-tune the f32/bf16/f16 original and quantize the result"
                )));
            }
            let name = match prefix {
                Some(p) if !stored.starts_with(p) => format!("{p}{stored}"),
                _ => stored.clone(),
            };
            // A bare encoder's MLM/NSP heads do not belong to a classifier.
            if new_head && (name.starts_with("cls.") || name.starts_with("lm_head.")) {
                continue;
            }
            if matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                let shape = shape.to_vec();
                let values = weights.f32(&stored, &shape)?;
                params.push((name, shape, values));
            } else {
                kept.push((name, dtype, shape.to_vec(), bytes.to_vec()));
            }
        }
        drop(weights);
        if new_head {
            let std = config.get("initializer_range").and_then(|v| v.as_f64()).unwrap_or(0.02);
            let mut rng = Rng::new(args.seed ^ 0x6865_6164);
            let h =
                config.get("hidden_size").and_then(|v| v.as_u64()).ok_or_else(|| Error::config("config.json", "no hidden_size"))? as usize;
            let mut add = |name: &str, shape: Vec<usize>, values: Vec<f32>| {
                if !params.iter().any(|p| p.0 == name) {
                    params.push((name.to_string(), shape, values));
                }
            };
            let layers: &[(&str, usize)] = if architecture == Architecture::BertForSequenceClassification {
                &[("bert.pooler.dense", h), ("classifier", 1)]
            } else {
                &[("classifier.dense", h), ("classifier.out_proj", 1)]
            };
            for &(layer, out) in layers {
                add(&format!("{layer}.weight"), vec![out, h], normal(out * h, std, &mut rng));
                add(&format!("{layer}.bias"), vec![out], vec![0.0; out]);
            }
        }
        let inner = device.clone();
        let params = params
            .into_iter()
            .map(|(name, shape, values)| {
                let n = values.len();
                Param {
                    decay: decays(&name),
                    value: Tensor::from_data(TensorData::new(values, [n]), &inner),
                    name,
                    shape,
                    moments: None,
                    grad: None,
                }
            })
            .collect();
        let tokenizer = PairTokenizer::from_checkpoint(&ck)?;
        let state = TrainerState::start(&args, &data, None);
        let tuner = FineTuner {
            source: ck,
            config,
            architecture,
            new_head,
            tokenizer,
            params,
            kept,
            data,
            args,
            device: device.clone(),
            state,
            lora: None,
        };
        // Fail now, not at the first step, when the weights do not make the model.
        tuner.model()?;
        Ok(tuner)
    }

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

    /// Start LoRA training of an LLM reranker: adapters on the
    /// `target_modules` linear layers, everything else frozen; fresh
    /// adapters as PEFT draws them (A: Kaiming-uniform, B: zeros; `seed`
    /// draws A) or `from_peft`'s. Gemma (bge-reranker-v2-gemma), a
    /// layer-wise MiniCPM reranker (FlagEmbedding's `from_finetuned_model`)
    /// or a raw MiniCPM causal LM made into one (`from_raw_model`: score
    /// heads for `start_layer..` from its LM head's "Yes" row).
    pub fn new_lora(ck: Checkpoint, data: DataArgs, args: TrainArgs, lora: LoraArgs, device: &Device) -> Result<Self> {
        data.check()?;
        args.check()?;
        let config_bytes = ck.read("config.json")?;
        let mut config: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| Error::config("config.json", e))?;
        let raw_minicpm = is_raw_minicpm(&config);
        let architecture =
            if raw_minicpm { Architecture::LayerWiseMiniCpmForCausalLM } else { Architecture::from_config_json(&config_bytes)? };
        if !architecture.is_llm() {
            return Err(Error::InvalidInput(format!(
                "LoRA training is for the LLM rerankers (Gemma, layer-wise MiniCPM), not {architecture:?}"
            )));
        }
        let layerwise_flags = lora.start_layer.is_some() || lora.head_multi.is_some() || lora.train_all_layers;
        if architecture == Architecture::GemmaForCausalLM && layerwise_flags {
            return Err(Error::InvalidInput(
                "start_layer, head_multi and train_all_layers apply to the layer-wise MiniCPM, not Gemma".into(),
            ));
        }
        if architecture == Architecture::LayerWiseMiniCpmForCausalLM && !raw_minicpm {
            // FlagEmbedding's from_finetuned_model: the checkpoint's heads and
            // settings stand (its flags only shape a raw model's new heads).
            let own_start = config.get("start_layer").and_then(|v| v.as_u64()).unwrap_or(8) as usize;
            let own_multi = config.get("head_multi").and_then(|v| v.as_bool()).unwrap_or(true);
            if lora.start_layer.is_some_and(|s| s != own_start) || lora.head_multi.is_some_and(|h| h != own_multi) {
                return Err(Error::InvalidInput(format!(
                    "this layer-wise reranker has start_layer {own_start} and head_multi {own_multi}; \
                     start_layer / head_multi choose the heads of a raw MiniCPM (from_raw_model) and cannot change them"
                )));
            }
        }
        let tokenizer = PairTokenizer::from_checkpoint(&ck)?;
        let (base_extra, base_drop) = if raw_minicpm {
            let (extra, new_config) = raw_minicpm_heads(&ck, &config, &tokenizer, &lora)?;
            config = new_config;
            (Some(Arc::new(extra)), vec!["lm_head.weight".to_string()])
        } else {
            (None, Vec::new())
        };
        let start_args = lora.clone();
        // A PEFT adapter's own settings win.
        let mut lora = lora;
        let peft = match &lora.from_peft {
            Some(dir) => {
                let adapter = Checkpoint::dir(dir);
                let cfg: serde_json::Value = adapter
                    .read_json("adapter_config.json")?
                    .ok_or_else(|| Error::MissingFile { file: "adapter_config.json".into(), location: dir.display().to_string() })?;
                if let Some(r) = cfg.get("r").and_then(|v| v.as_u64()) {
                    lora.lora_rank = r as usize;
                }
                if let Some(a) = cfg.get("lora_alpha").and_then(|v| v.as_f64()) {
                    lora.lora_alpha = a;
                }
                if let Some(t) = cfg.get("target_modules").and_then(|v| v.as_array()) {
                    lora.target_modules = t.iter().filter_map(|x| x.as_str().map(String::from)).collect();
                }
                let bytes = adapter
                    .read_weights_file("adapter_model.safetensors")?
                    .ok_or_else(|| Error::MissingFile { file: "adapter_model.safetensors".into(), location: dir.display().to_string() })?;
                Some(Weights::from_shard_bytes(vec![("adapter_model.safetensors".into(), bytes)])?)
            }
            None => None,
        };
        if lora.lora_rank == 0 || !(lora.lora_alpha.is_finite() && lora.lora_alpha > 0.0) || lora.target_modules.is_empty() {
            return Err(Error::InvalidInput("LoRA needs a positive lora_rank and lora_alpha and a target module".into()));
        }
        if lora.lora_dropout > 0.0 {
            tracing::warn!("lora_dropout {} is not applied: crossrank trains without dropout", lora.lora_dropout);
        }
        let weights = Weights::open(&ck)?;
        let mut names: Vec<String> = weights
            .names()
            .filter(|n| {
                n.strip_suffix(".weight").is_some_and(|m| lora.target_modules.iter().any(|t| m.rsplit('.').next() == Some(t.as_str())))
            })
            .map(str::to_string)
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(Error::InvalidInput(format!("no linear layer of the model is named by target_modules {:?}", lora.target_modules)));
        }
        let r = lora.lora_rank;
        let mut rng = Rng::new(args.seed ^ 0x6c6f_7261);
        let (mut params, mut targets) = (Vec::new(), Vec::new());
        for name in names {
            let Some(&[out, inp]) = weights.shape(&name).map(<[usize]>::to_vec).as_deref() else {
                return Err(Error::InvalidInput(format!("{name} is not a matrix: LoRA adapts linear layers")));
            };
            let w = Tensor::<2>::from_data(TensorData::new(weights.f32(&name, &[out, inp])?, [out, inp]), device);
            let module = name.strip_suffix(".weight").unwrap_or(&name).to_string();
            let (a, b) = match &peft {
                Some(p) => {
                    let key = |part: &str| format!("base_model.model.{module}.{part}.weight");
                    (p.f32(&key("lora_A"), &[r, inp])?, p.f32(&key("lora_B"), &[out, r])?)
                }
                None => {
                    // torch's kaiming_uniform_(a = sqrt(5)): U(±1/sqrt(fan_in)).
                    let bound = 1.0 / (inp as f64).sqrt();
                    let a = (0..r * inp).map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32).collect();
                    (a, vec![0.0; out * r])
                }
            };
            targets.push((name.clone(), w, params.len()));
            for (part, shape, values) in [("lora_A", vec![r, inp], a), ("lora_B", vec![out, r], b)] {
                let n = values.len();
                let pname = format!("{module}.{part}.weight");
                params.push(Param {
                    decay: decays(&pname),
                    value: Tensor::from_data(TensorData::new(values, [n]), device),
                    name: pname,
                    shape,
                    moments: None,
                    grad: None,
                });
            }
        }
        drop(weights);
        let state = TrainerState::start(&args, &data, Some((ck.location(), LoraArgs { from_peft: None, ..start_args })));
        let lora = Lora {
            scale: lora.lora_alpha / r as f64,
            rank: r,
            alpha: lora.lora_alpha,
            target_modules: lora.target_modules.clone(),
            targets,
            all_layers: lora.train_all_layers,
            base_extra,
            base_drop,
        };
        let tuner = FineTuner {
            source: ck,
            config,
            architecture,
            new_head: false,
            tokenizer,
            params,
            kept: Vec::new(),
            data,
            args,
            device: device.clone(),
            state,
            lora: Some(lora),
        };
        tuner.model()?;
        Ok(tuner)
    }

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
        let log_probs: Vec<Tensor<2>> = grouped.iter().map(|l| activation::log_softmax(l.clone(), 1)).collect();
        // Cross-entropy with the positive (index 0) as the target, mean over
        // groups; summed over the scored layers (CrossDecoderModel.forward).
        let mut loss = log_probs[0].clone().slice([0..b, 0..1]).mean().neg();
        for lp in &log_probs[1..] {
            loss = loss - lp.clone().slice([0..b, 0..1]).mean();
        }
        let distill = |loss: Tensor<1>, lp: &Tensor<2>, teacher: &Tensor<2>| loss - (lp.clone() * teacher.clone()).sum_dim(1).mean();
        if !self.data.knowledge_distillation && log_probs.len() > 1 {
            // No teacher scores: the last layer teaches the earlier ones.
            let teacher = activation::softmax(grouped[grouped.len() - 1].clone().detach(), 1);
            for lp in &log_probs[..log_probs.len() - 1] {
                loss = distill(loss, lp, &teacher);
            }
        }
        if self.data.knowledge_distillation {
            let mut teacher = Vec::with_capacity(b * g);
            for group in groups {
                let t = group
                    .teacher_scores
                    .as_ref()
                    .ok_or_else(|| Error::InvalidInput("knowledge distillation needs teacher scores in every group".into()))?;
                // softmax of the teacher's scores, in f64.
                let max = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = t.iter().map(|x| (x - max).exp()).collect();
                let s: f64 = e.iter().sum();
                teacher.extend(e.iter().map(|x| (x / s) as f32));
            }
            let teacher = Tensor::<2>::from_data(TensorData::new(teacher, [b, g]), &ad);
            for lp in &log_probs {
                loss = distill(loss, lp, &teacher);
            }
        }
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
        // torch.nn.utils.clip_grad_norm_: the norm of all gradients.
        let sq: f64 =
            self.params.iter().filter_map(|p| p.grad.as_ref()).map(|g| f64::from(g.clone().square().sum().into_scalar::<f32>())).sum();
        let grad_norm = sq.sqrt();
        let clip = if self.args.max_grad_norm > 0.0 { (self.args.max_grad_norm / (grad_norm + 1e-6)).min(1.0) } else { 1.0 };
        let t = (self.state.global_step + 1) as i32;
        let (b1, b2, eps) = (self.args.adam_beta1, self.args.adam_beta2, self.args.adam_epsilon);
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let wd = self.args.weight_decay;
        for p in &mut self.params {
            let Some(mut g) = p.grad.take() else { continue };
            if clip < 1.0 {
                g = g.mul_scalar(clip as f32);
            }
            let (m, v) = match p.moments.take() {
                Some(mv) => mv,
                None => (g.zeros_like(), g.zeros_like()),
            };
            let mut value = p.value.clone();
            if p.decay && wd > 0.0 {
                value = value.mul_scalar((1.0 - lr * wd) as f32);
            }
            // torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
            let m = m.clone() + (g.clone() - m).mul_scalar((1.0 - b1) as f32);
            let v = v.mul_scalar(b2 as f32) + g.clone().square().mul_scalar((1.0 - b2) as f32);
            let denom = v.clone().sqrt().div_scalar(bc2_sqrt as f32).add_scalar(eps as f32);
            p.value = value - (m.clone() / denom).mul_scalar((lr / bc1) as f32);
            p.moments = Some((m, v));
        }
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

    /// Write the model in Hugging Face layout into `staging`.
    fn write_model(&self, staging: &Staging) -> Result<()> {
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

    /// LoRA's output: the checkpoint with the adapters merged into their
    /// weights (stored f32; every other tensor as it was), and the adapters
    /// themselves in PEFT's layout under `adapter/`.
    fn write_lora(&self, lora: &Lora, staging: &Staging) -> Result<()> {
        let weights = lora.base_weights(&self.source)?;
        let values: Vec<Tensor<1>> = self.params.iter().map(|p| p.value.clone()).collect();
        let merged = lora.merged(&self.params, &values);
        let mut names: Vec<String> = weights.names().filter(|n| !lora.base_drop.iter().any(|d| d == n)).map(str::to_string).collect();
        names.sort();
        let mut tensors = Vec::with_capacity(names.len());
        for name in names {
            match merged.get(&name) {
                Some(Live::Matrix(t)) => tensors.push((name.clone(), Dtype::F32, t.dims().to_vec(), host_bytes(t.clone())?)),
                _ => {
                    let (dtype, shape, bytes) = weights.raw(&name).ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
                    tensors.push((name.clone(), dtype, shape.to_vec(), bytes.to_vec()));
                }
            }
        }
        write_weights(staging.path(), &tensors, HashMap::from([("format".to_string(), "pt".to_string())]))?;
        let adapter: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self
            .params
            .iter()
            .map(|p| Ok((format!("base_model.model.{}", p.name), Dtype::F32, p.shape.clone(), host_bytes(p.value.clone())?)))
            .collect::<Result<_>>()?;
        let dir = staging.path().join("adapter");
        std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
        write_safetensors(&dir.join("adapter_model.safetensors"), &adapter, &HashMap::from([("format".to_string(), "pt".to_string())]))?;
        let config = serde_json::json!({
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": lora.rank, "lora_alpha": lora.alpha,
            "lora_dropout": 0.0, "target_modules": lora.target_modules, "bias": "none",
            "base_model_name_or_path": self.source.location(), "inference_mode": true,
        });
        staging
            .write("adapter/adapter_config.json", &serde_json::to_vec_pretty(&config).map_err(|e| Error::InvalidInput(e.to_string()))?)?;
        Ok(())
    }

    /// `out/checkpoint-N`: the model, Adam's moments and the position,
    /// written aside and renamed into place.
    fn save_checkpoint(&self, out: &Path) -> Result<PathBuf> {
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

impl Lora {
    /// The frozen base: the checkpoint's tensors, plus any made for it.
    fn base_weights(&self, source: &Checkpoint) -> Result<Weights> {
        let mut shards = source.weight_files()?;
        if let Some(extra) = &self.base_extra {
            shards.push(("new score heads".into(), ShardBytes::Shared(extra.clone())));
        }
        Weights::from_shard_bytes(shards)
    }

    /// `W + scale · B A` for every target, from parameter values `values`
    /// (in `params` order).
    fn merged(&self, params: &[Param], values: &[Tensor<1>]) -> HashMap<String, Live> {
        self.targets
            .iter()
            .map(|(name, w, i)| {
                let (pa, pb) = (&params[*i], &params[*i + 1]);
                let a = values[*i].clone().reshape([pa.shape[0], pa.shape[1]]);
                let b = values[*i + 1].clone().reshape([pb.shape[0], pb.shape[1]]);
                (name.clone(), Live::Matrix(w.clone() + b.matmul(a).mul_scalar(self.scale as f32)))
            })
            .collect()
    }
}

/// A raw MiniCPM causal LM (`MiniCPMForCausalLM`, or a `minicpm` config
/// without the layer-wise architecture): FlagEmbedding's `from_raw_model`.
fn is_raw_minicpm(config: &serde_json::Value) -> bool {
    let arch = config.get("architectures").and_then(|a| a.get(0)).and_then(|a| a.as_str());
    match arch {
        Some(a) => a == "MiniCPMForCausalLM",
        None => config.get("model_type").and_then(|m| m.as_str()) == Some("minicpm"),
    }
}

/// FlagEmbedding's `get_model` for `from_raw_model` with head_type
/// "simple": one-logit heads `lm_head.{j}.linear_head.weight` for layers
/// `start_layer..=num_hidden_layers` (or one `lm_head.linear_head.weight`
/// without head_multi), each the LM head's row for the last token of
/// "Yes" (the tied embedding row unless `tie_word_embeddings` is false).
/// Returns the heads as a safetensors buffer and the layer-wise config.
///
/// The config points transformers at FlagEmbedding's model code on the
/// Hub (`BAAI/bge-reranker-v2-minicpm-layerwise`), as FlagEmbedding's own
/// merged output does by taking that repository's config.
fn raw_minicpm_heads(
    ck: &Checkpoint,
    config: &serde_json::Value,
    tokenizer: &PairTokenizer,
    lora: &LoraArgs,
) -> Result<(Vec<u8>, serde_json::Value)> {
    let get =
        |k: &str| config.get(k).and_then(|v| v.as_u64()).map(|v| v as usize).ok_or_else(|| Error::config("config.json", format!("no {k}")));
    let (hidden, vocab, layers) = (get("hidden_size")?, get("vocab_size")?, get("num_hidden_layers")?);
    let start_layer = lora.start_layer.unwrap_or(8);
    let head_multi = lora.head_multi.unwrap_or(false);
    if start_layer > layers {
        return Err(Error::InvalidInput(format!(
            "start_layer {start_layer} is past the model's {layers} layers (FlagEmbedding's default is 8: give --start-layer)"
        )));
    }
    let yes = tokenizer.last_token("Yes")?;
    if yes as usize >= vocab {
        return Err(Error::InvalidInput(format!("the tokenizer's \"Yes\" (id {yes}) is outside the vocabulary ({vocab})")));
    }
    let weights = Weights::open(ck)?;
    let tied = config.get("tie_word_embeddings").and_then(|v| v.as_bool()).unwrap_or(true);
    let head = if tied || !weights.contains("lm_head.weight") { "model.embed_tokens.weight" } else { "lm_head.weight" };
    let row: Vec<u8> = weights.row(head, &[vocab, hidden], yes as usize)?.iter().flat_map(|v| v.to_le_bytes()).collect();
    let names: Vec<String> = if head_multi {
        (0..=layers - start_layer).map(|j| format!("lm_head.{j}.linear_head.weight")).collect()
    } else {
        vec!["lm_head.linear_head.weight".into()]
    };
    let views = names
        .iter()
        .map(|n| {
            safetensors::tensor::TensorView::new(Dtype::F32, vec![1, hidden], &row)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::InvalidInput(format!("{n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| Error::InvalidInput(format!("score heads: {e}")))?;
    let mut config = config.clone();
    if let Some(obj) = config.as_object_mut() {
        obj.insert("architectures".into(), serde_json::json!(["LayerWiseMiniCPMForCausalLM"]));
        obj.insert("start_layer".into(), serde_json::json!(start_layer));
        obj.insert("head_multi".into(), serde_json::json!(head_multi));
        obj.insert("head_type".into(), serde_json::json!("simple"));
        let hub = "BAAI/bge-reranker-v2-minicpm-layerwise--";
        obj.insert(
            "auto_map".into(),
            serde_json::json!({
                "AutoConfig": format!("{hub}configuration_minicpm_reranker.LayerWiseMiniCPMConfig"),
                "AutoModel": format!("{hub}modeling_minicpm_reranker.LayerWiseMiniCPMModel"),
                "AutoModelForCausalLM": format!("{hub}modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM"),
            }),
        );
    }
    Ok((bytes, config))
}

/// A tensor's values as f32, read back from the device.
fn host_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Device(format!("{e:?}")))
}

/// A tensor's f32 values as little-endian bytes.
fn host_bytes<const D: usize>(t: Tensor<D>) -> Result<Vec<u8>> {
    Ok(host_f32(t)?.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = e.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() { collect_files(&path, out)? } else { out.push(path) }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_names_match_transformers() {
        for n in ["bert.encoder.layer.0.attention.self.query.weight", "classifier.weight", "model.layers.0.mlp.up_proj.weight"] {
            assert!(decays(n), "{n}");
        }
        for n in [
            "bert.encoder.layer.0.attention.self.query.bias",
            "bert.embeddings.LayerNorm.weight",
            "model.layers.0.input_layernorm.weight",
            "model.norm.weight",
            "model.layers.1.post_attention_layernorm.weight",
        ] {
            assert!(!decays(n), "{n}");
        }
    }

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
