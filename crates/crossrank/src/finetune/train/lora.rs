//! LoRA for the LLM rerankers: adapters on the target linear layers over
//! the frozen base, merged into live projections for each pass; PEFT's
//! adapter layout read (`from_peft`) and written (`adapter/`); a raw
//! MiniCPM causal LM made into a layer-wise reranker (FlagEmbedding's
//! `from_raw_model`: new score heads as an extra frozen shard).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::Dtype;

use super::FineTuner;
use super::adamw::Param;
use super::args::{LoraArgs, TrainArgs};
use super::state::{TrainerState, host_bytes};
use crate::checkpoint::{Checkpoint, ShardBytes};
use crate::error::{Error, Result};
use crate::files::Staging;
use crate::finetune::data::{DataArgs, Rng};
use crate::models::Architecture;
use crate::quantize::{write_safetensors, write_weights};
use crate::tokenize::PairTokenizer;
use crate::weights::{Live, Weights};

/// LoRA state: the frozen weights adapted, each with its adapter pair
/// (parameters `MODULE.lora_A.weight` `[r, in]` and `MODULE.lora_B.weight`
/// `[out, r]`); the model sees `W + (alpha / r) B A`.
pub(super) struct Lora {
    scale: f64,
    rank: usize,
    alpha: f64,
    target_modules: Vec<String>,
    /// (weight name, frozen `[out, in]` weight, index of A in `params`).
    targets: Vec<(String, Tensor<2>, usize)>,
    /// Layer-wise MiniCPM: every head layer enters the loss.
    pub(super) all_layers: bool,
    /// Frozen tensors the base checkpoint does not have (the score heads
    /// of a layer-wise model made from a raw MiniCPM), as one safetensors
    /// buffer, and stored tensors the trained model leaves out (the raw
    /// model's LM head).
    base_extra: Option<Arc<Vec<u8>>>,
    pub(super) base_drop: Vec<String>,
}

impl Lora {
    /// The frozen base: the checkpoint's tensors, plus any made for it.
    pub(super) fn base_weights(&self, source: &Checkpoint) -> Result<Weights> {
        let mut shards = source.weight_files()?;
        if let Some(extra) = &self.base_extra {
            shards.push(("new score heads".into(), ShardBytes::Shared(extra.clone())));
        }
        Weights::from_shard_bytes(shards)
    }

    /// `W + scale · B A` for every target, from parameter values `values`
    /// (in `params` order).
    pub(super) fn merged(&self, params: &[Param], values: &[Tensor<1>]) -> HashMap<String, Live> {
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

impl FineTuner {
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
        let peft = match lora.from_peft.clone() {
            Some(dir) => Some(read_peft(&dir, &mut lora)?),
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
                params.push(Param::new(pname, shape, Tensor::from_data(TensorData::new(values, [n]), device)));
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

    /// LoRA's output: the checkpoint with the adapters merged into their
    /// weights (stored f32; every other tensor as it was), and the adapters
    /// themselves in PEFT's layout under `adapter/`.
    pub(super) fn write_lora(&self, lora: &Lora, staging: &Staging) -> Result<()> {
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
}

/// A PEFT adapter directory (adapter_config.json +
/// adapter_model.safetensors): its tensors; its rank, alpha and target
/// modules overwrite `lora`'s (the adapter's own settings win).
fn read_peft(dir: &Path, lora: &mut LoraArgs) -> Result<Weights> {
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
    Weights::from_shard_bytes(vec![("adapter_model.safetensors".into(), bytes)])
}

/// A raw MiniCPM causal LM (`MiniCPMForCausalLM`, or a `minicpm` config
/// without the layer-wise architecture): FlagEmbedding's `from_raw_model`.
pub(super) fn is_raw_minicpm(config: &serde_json::Value) -> bool {
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
