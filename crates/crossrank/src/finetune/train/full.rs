//! Full fine-tuning of the cross-encoders (BERT, XLM-RoBERTa, ModernBERT): every float
//! tensor of the checkpoint trains; a bare encoder (`BertModel`,
//! `XLMRobertaModel`, e.g. all-MiniLM-L6-v2) becomes a sequence
//! classifier with a new one-logit head, initialised as transformers does.

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::Dtype;

use super::adamw::Param;
use super::args::{LoraArgs, TrainArgs};
use super::lora::is_raw_minicpm;
use super::state::TrainerState;
use super::FineTuner;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::finetune::data::{DataArgs, Rng};
use crate::models::Architecture;
use crate::tokenize::PairTokenizer;
use crate::weights::Weights;

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
            Architecture::BertForSequenceClassification
            | Architecture::XlmRobertaForSequenceClassification
            | Architecture::ModernBertForSequenceClassification => (source_arch, None),
            Architecture::BertModel => (Architecture::BertForSequenceClassification, Some("bert.")),
            Architecture::XlmRobertaModel => (Architecture::XlmRobertaForSequenceClassification, Some("roberta.")),
            Architecture::GemmaForCausalLM | Architecture::LayerWiseMiniCpmForCausalLM => {
                return Self::new_lora(ck, data, args, LoraArgs::default(), device);
            }
            // FlagEmbedding 1.4.2 has no Qwen3 reranker trainer to match
            // step for step; scoring and embedding are what crossrank runs.
            a @ (Architecture::Qwen3ForCausalLM
            | Architecture::Qwen3ForSequenceClassification
            | Architecture::Qwen3Model) => {
                return Err(Error::InvalidInput(format!(
                    "fine-tuning {a:?} is not supported (FlagEmbedding 1.4.2 has no Qwen3 reranker trainer to match); \
                     crossrank fine-tunes BERT / XLM-R / ModernBERT cross-encoders and the Gemma / MiniCPM LLM rerankers"
                )));
            }
            // A new ModernBERT head (prediction head + classifier) would need
            // transformers' ModernBERT initialisation replayed; start from a
            // ModernBertForSequenceClassification checkpoint instead.
            Architecture::ModernBertModel => {
                return Err(Error::InvalidInput(
                    "fine-tune a ModernBertForSequenceClassification checkpoint (a bare ModernBERT encoder gets no new head here)".into(),
                ));
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
                Param::new(name, shape, Tensor::from_data(TensorData::new(values, [n]), &inner))
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
