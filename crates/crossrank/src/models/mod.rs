//! The models: one file per architecture, each with its `config.json`
//! beside it. The encoders share BERT's layers (xlm_roberta adds RoBERTa's
//! position ids and head); the LLM rerankers share `nn`'s decoder block.
//! Here: which architecture a checkpoint is, and dispatch — loading each,
//! each model's input layout (encoders: packed sequences; decoders: padded
//! to a multiple of 8, as FlagLLMReranker's collator does) and its forward
//! pass. Nothing here or below names a device.

mod bert;
mod gemma;
mod minicpm;
mod modernbert;
mod qwen3;
mod xlm_roberta;

use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::nn::{Packing, Pooling};
use crate::quant::WeightDtype;
use crate::tokenize::{Encoded, PairTokenizer};
use crate::weights::Weights;
use bert::{BertForSequenceClassification, BertModel, EncoderConfig};
use gemma::{Gemma, GemmaConfig};
use minicpm::{MiniCpm, MiniCpmConfig};
use modernbert::{ModernBertConfig, ModernBertEncoder, ModernBertForSequenceClassification, modernbert_prefix};
use qwen3::{Qwen3, Qwen3Config};
use xlm_roberta::{XlmRobertaForSequenceClassification, XlmRobertaModel};

/// The architectures crossrank runs, picked from `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Architecture {
    /// `XLMRobertaForSequenceClassification`: bge-reranker-base / large / v2-m3.
    XlmRobertaForSequenceClassification,
    /// `BertForSequenceClassification`: ms-marco MiniLM cross-encoders.
    BertForSequenceClassification,
    /// `BertModel`: a bare BERT encoder (all-MiniLM-L6-v2), for embeddings.
    BertModel,
    /// `XLMRobertaModel`: a bare XLM-R encoder (bge-m3 style), for embeddings.
    XlmRobertaModel,
    /// `GemmaForCausalLM`: bge-reranker-v2-gemma (FlagLLMReranker).
    GemmaForCausalLM,
    /// `LayerWiseMiniCPMForCausalLM`: bge-reranker-v2-minicpm-layerwise.
    LayerWiseMiniCpmForCausalLM,
    /// `Qwen3ForCausalLM`: Qwen3-Reranker (scored as its model card does);
    /// embeds as Qwen3-Embedding.
    Qwen3ForCausalLM,
    /// `Qwen3ForSequenceClassification`: Qwen3-Reranker's `-seq-cls`
    /// conversions (one label: the yes row minus the no row).
    Qwen3ForSequenceClassification,
    /// `Qwen3Model`: a bare Qwen3 decoder (Qwen3-Embedding), for embeddings.
    Qwen3Model,
    /// `ModernBertForSequenceClassification`: gte-reranker-modernbert-base
    /// and the sentence-transformers ModernBERT cross-encoders.
    ModernBertForSequenceClassification,
    /// `ModernBertModel`: a bare ModernBERT encoder, for embeddings.
    ModernBertModel,
}

impl Architecture {
    /// True for the two encoder families that score (query, passage) pairs.
    pub fn is_cross_encoder(self) -> bool {
        matches!(
            self,
            Self::XlmRobertaForSequenceClassification | Self::BertForSequenceClassification | Self::ModernBertForSequenceClassification
        )
    }

    /// True for the ModernBERT family.
    pub fn is_modernbert(self) -> bool {
        matches!(self, Self::ModernBertForSequenceClassification | Self::ModernBertModel)
    }

    /// True for the decoder-only (LLM) rerankers FlagLLMReranker and
    /// LayerWiseFlagLLMReranker run (their "A: "/"B: " template and prompt).
    pub fn is_llm(self) -> bool {
        matches!(self, Self::GemmaForCausalLM | Self::LayerWiseMiniCpmForCausalLM)
    }

    /// True for Qwen3-Reranker in either form (its model card's template).
    pub fn is_qwen3_reranker(self) -> bool {
        matches!(self, Self::Qwen3ForCausalLM | Self::Qwen3ForSequenceClassification)
    }

    /// True for the Qwen3 family (rerankers and Qwen3-Embedding).
    pub fn is_qwen3(self) -> bool {
        self.is_qwen3_reranker() || self == Self::Qwen3Model
    }

    /// The architecture of a checkpoint, from its `config.json`.
    pub fn of(ck: &Checkpoint) -> Result<Self> {
        Self::from_config_json(&ck.read("config.json")?)
    }

    /// The architecture a `config.json` names: `architectures[0]` first,
    /// `model_type` when the list is absent.
    pub(crate) fn from_config_json(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Names {
            #[serde(default)]
            architectures: Vec<String>,
            #[serde(default)]
            model_type: String,
        }
        let n: Names = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        Self::from_names(n.architectures.first().map(String::as_str), &n.model_type)
    }

    fn from_names(architecture: Option<&str>, model_type: &str) -> Result<Self> {
        Ok(match (architecture, model_type) {
            (Some("XLMRobertaForSequenceClassification" | "RobertaForSequenceClassification"), _) => {
                Self::XlmRobertaForSequenceClassification
            }
            (Some("BertForSequenceClassification"), _) => Self::BertForSequenceClassification,
            (Some("BertModel"), _) => Self::BertModel,
            (Some("XLMRobertaModel" | "RobertaModel"), _) => Self::XlmRobertaModel,
            (Some("GemmaForCausalLM"), _) => Self::GemmaForCausalLM,
            (Some("LayerWiseMiniCPMForCausalLM"), _) => Self::LayerWiseMiniCpmForCausalLM,
            (Some("Qwen3ForCausalLM"), _) => Self::Qwen3ForCausalLM,
            (Some("Qwen3ForSequenceClassification"), _) => Self::Qwen3ForSequenceClassification,
            (Some("Qwen3Model"), _) => Self::Qwen3Model,
            (Some("ModernBertForSequenceClassification"), _) => Self::ModernBertForSequenceClassification,
            (Some("ModernBertModel" | "ModernBertForMaskedLM"), _) => Self::ModernBertModel,
            (Some(other), _) => return Err(Error::UnsupportedArchitecture(other.to_string())),
            (None, "bert") => Self::BertModel,
            (None, "xlm-roberta" | "roberta") => Self::XlmRobertaModel,
            (None, "gemma") => Self::GemmaForCausalLM,
            (None, "qwen3") => Self::Qwen3Model,
            (None, "modernbert") => Self::ModernBertModel,
            (None, other) => {
                return Err(Error::UnsupportedArchitecture(format!("model_type {other:?}")));
            }
        })
    }

    /// True when position ids follow RoBERTa's padding-aware scheme.
    fn is_roberta(self) -> bool {
        matches!(self, Self::XlmRobertaForSequenceClassification | Self::XlmRobertaModel)
    }
}

/// `num_labels` / `id2label` of a classification config (flattened into
/// each model's), read as transformers reads them.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Labels {
    /// Explicit `num_labels`, when the config has one.
    #[serde(default)]
    pub(crate) num_labels: Option<usize>,
    /// `id2label`, whose size gives `num_labels` as transformers reads it.
    #[serde(default)]
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Labels {
    /// `num_labels` as transformers derives it: explicit value, else the
    /// size of `id2label`, else 2.
    pub(crate) fn count(&self) -> usize {
        self.num_labels.or_else(|| self.id2label.as_ref().map(|m| m.len())).unwrap_or(2)
    }

    /// A reranker has exactly one output.
    pub(crate) fn check_one(&self) -> Result<()> {
        match self.count() {
            1 => Ok(()),
            n => Err(Error::config("config.json", format!("num_labels is {n}; a reranker has exactly one output"))),
        }
    }
}

/// What a checkpoint is for: scoring pairs or embedding texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Task {
    /// A reranker ([`crate::Reranker`]).
    Rerank,
    /// An embedder ([`crate::Embedder`]).
    Embed,
}

impl Task {
    /// The one rule for what a checkpoint serves (the server, the desktop
    /// app): cross-encoders and LLM rerankers rerank; bare encoders embed.
    /// `Qwen3ForCausalLM` names both Qwen3-Reranker and Qwen3-Embedding:
    /// the reranker is published as a causal LM (weights under `model.`),
    /// the embedding model as a bare `Qwen3Model`'s weights (no prefix), so
    /// weights without the prefix embed.
    pub fn of(ck: &Checkpoint) -> Result<Self> {
        let architecture = Architecture::of(ck)?;
        Ok(match architecture {
            Architecture::Qwen3ForCausalLM => {
                if Weights::open(ck)?.contains("model.embed_tokens.weight") {
                    Self::Rerank
                } else {
                    Self::Embed
                }
            }
            a if a.is_cross_encoder() || a.is_llm() || a.is_qwen3_reranker() => Self::Rerank,
            _ => Self::Embed,
        })
    }
}

/// What a model takes: token ids below `vocab`, segment ids below
/// `type_vocab`, sequences of at most `max_tokens`. Checked on the host
/// before a pass: an id past the table panicked on the CPU backend, and
/// with a chunked table (every real XLM-R) silently read row 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputLimits {
    pub(crate) vocab: usize,
    pub(crate) type_vocab: usize,
    pub(crate) max_tokens: usize,
}

impl InputLimits {
    fn encoder(cfg: &EncoderConfig, architecture: Architecture) -> Self {
        if architecture.is_roberta() {
            // Positions start at pad_token_id + 1; segment ids are all zero.
            let first = cfg.pad_token_id.unwrap_or(1) as usize + 1;
            Self { vocab: cfg.vocab_size, type_vocab: usize::MAX, max_tokens: cfg.max_position_embeddings.saturating_sub(first) }
        } else {
            Self { vocab: cfg.vocab_size, type_vocab: cfg.type_vocab_size, max_tokens: cfg.max_position_embeddings }
        }
    }

    fn modernbert(cfg: &ModernBertConfig) -> Self {
        // ModernBERT reads input_ids only: segment ids are never used.
        Self { vocab: cfg.vocab_size, type_vocab: usize::MAX, max_tokens: cfg.max_position_embeddings }
    }

    fn decoder(cfg: &crate::nn::DecoderConfig, default_positions: usize) -> Self {
        Self { vocab: cfg.vocab_size, type_vocab: usize::MAX, max_tokens: cfg.max_positions(default_positions) }
    }

    /// Every input non-empty, within the vocabularies and the length; the
    /// error names the input (its position in the request) and the token.
    pub(crate) fn check(&self, items: &[Encoded], tokenizer: &PairTokenizer) -> Result<()> {
        for (i, e) in items.iter().enumerate() {
            if e.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "input {i} encodes to no tokens (empty text, and the tokenizer adds no special tokens)"
                )));
            }
            if e.len() > self.max_tokens {
                return Err(Error::InvalidInput(format!(
                    "input {i} is {} tokens long; the model takes at most {} (its position embeddings): lower max_length",
                    e.len(),
                    self.max_tokens
                )));
            }
            if let Some(&id) = e.ids.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(Error::InvalidInput(format!(
                    "input {i} has token id {id} ({:?}) but the model's vocabulary has {} entries: the tokenizer does not belong to these weights",
                    tokenizer.token_name(id),
                    self.vocab
                )));
            }
            if let Some(&t) = e.type_ids.iter().find(|&&t| t as usize >= self.type_vocab) {
                return Err(Error::InvalidInput(format!(
                    "input {i} has segment (token type) id {t} but the model has type_vocab_size {}",
                    self.type_vocab
                )));
            }
        }
        Ok(())
    }
}

/// Every model's config parser on the same bytes, and what is sized from
/// a config that parses (fuzzing: none may panic or allocate without bound).
pub(crate) fn parse_configs(bytes: &[u8], device: &Device) {
    if let Ok(c) = EncoderConfig::from_json(bytes) {
        let _ =
            (InputLimits::encoder(&c, Architecture::BertModel), InputLimits::encoder(&c, Architecture::XlmRobertaModel), c.num_labels());
    }
    let rope = |d: &crate::nn::DecoderConfig| {
        let _ = crate::nn::Rope::new(d.head_dim(), d.rope_theta).tables(2, device);
    };
    if let Ok(c) = GemmaConfig::from_json(bytes) {
        let _ = InputLimits::decoder(&c.decoder, 8192);
        rope(&c.decoder);
    }
    if let Ok(c) = ModernBertConfig::from_json(bytes) {
        let _ = (InputLimits::modernbert(&c), c.num_labels());
    }
    if let Ok(c) = Qwen3Config::from_json(bytes) {
        let _ = InputLimits::decoder(&c.decoder, qwen3::DEFAULT_POSITIONS);
        rope(&c.decoder);
    }
    if let Ok(c) = MiniCpmConfig::from_json(bytes) {
        let _ = c.resolve_cutoffs(None);
        rope(&c.decoder);
    }
}

/// A model that scores pairs.
pub(crate) enum Reranking {
    Bert(BertForSequenceClassification),
    XlmRoberta(XlmRobertaForSequenceClassification),
    Gemma(Gemma),
    MiniCpm(MiniCpm),
    Qwen3(Qwen3),
    ModernBert(ModernBertForSequenceClassification),
}

impl Reranking {
    /// The checkpoint's reranking model (`architecture`, as its `config`
    /// names it), weights stored as `dtype`; and for an LLM reranker the
    /// token whose logit scores.
    pub(crate) fn load(
        ck: &Checkpoint,
        config: &[u8],
        architecture: Architecture,
        tokenizer: &PairTokenizer,
        dtype: WeightDtype,
        device: &Device,
    ) -> Result<(Self, Option<u32>, InputLimits)> {
        Self::from_weights(|| Weights::open(ck).map(|w| w.with_dtype(dtype)), config, architecture, tokenizer, device)
    }

    /// [`Reranking::load`] from weights `weights` gives (opened only once
    /// the config has been checked): a checkpoint's, or training's live
    /// parameters over them.
    pub(crate) fn from_weights(
        weights: impl FnOnce() -> Result<Weights>,
        config: &[u8],
        architecture: Architecture,
        tokenizer: &PairTokenizer,
        device: &Device,
    ) -> Result<(Self, Option<u32>, InputLimits)> {
        let (model, score_token, limits) = match architecture {
            Architecture::GemmaForCausalLM => {
                let cfg = GemmaConfig::from_json(config)?;
                // transformers' GemmaConfig default when the config is silent.
                let limits = InputLimits::decoder(&cfg.decoder, 8192);
                // FlagLLMReranker: yes_loc = tokenizer('Yes', add_special_tokens=False)['input_ids'][0]
                let yes = tokenizer.first_token("Yes")?;
                (Self::Gemma(Gemma::load(&weights()?, cfg, yes, device)?), Some(yes), limits)
            }
            Architecture::LayerWiseMiniCpmForCausalLM => {
                let cfg = MiniCpmConfig::from_json(config)?;
                // transformers' MiniCPMConfig default (the remote code's).
                let limits = InputLimits::decoder(&cfg.decoder, 2048);
                (Self::MiniCpm(MiniCpm::load(&weights()?, cfg, device)?), None, limits)
            }
            Architecture::Qwen3ForCausalLM | Architecture::Qwen3ForSequenceClassification => {
                let cfg = Qwen3Config::from_json(config)?;
                let limits = InputLimits::decoder(&cfg.decoder, qwen3::DEFAULT_POSITIONS);
                let m = if architecture == Architecture::Qwen3ForCausalLM {
                    // The card: convert_tokens_to_ids("yes") / ("no").
                    let (yes, no) = (tokenizer.token_id("yes")?, tokenizer.token_id("no")?);
                    Qwen3::load_causal(&weights()?, cfg, yes, no, device)?
                } else {
                    Qwen3::load_seq_cls(&weights()?, cfg, device)?
                };
                (Self::Qwen3(m), None, limits)
            }
            Architecture::ModernBertForSequenceClassification => {
                let cfg = ModernBertConfig::from_json(config)?;
                cfg.labels.check_one()?;
                let m = ModernBertForSequenceClassification::load(&weights()?, &cfg, device)?;
                (Self::ModernBert(m), None, InputLimits::modernbert(&cfg))
            }
            Architecture::BertForSequenceClassification | Architecture::XlmRobertaForSequenceClassification => {
                let cfg = EncoderConfig::from_json(config)?;
                cfg.labels.check_one()?;
                let w = weights()?;
                let m = if architecture.is_roberta() {
                    Self::XlmRoberta(XlmRobertaForSequenceClassification::load(&w, &cfg, device)?)
                } else {
                    Self::Bert(BertForSequenceClassification::load(&w, &cfg, device)?)
                };
                (m, None, InputLimits::encoder(&cfg, architecture))
            }
            a @ (Architecture::BertModel | Architecture::XlmRobertaModel | Architecture::Qwen3Model | Architecture::ModernBertModel) => {
                return Err(Error::InvalidInput(format!(
                    "{a:?} is an encoder without a classification head: it embeds, it does not score pairs"
                )));
            }
        };
        Ok((model, score_token, limits))
    }

    /// The layers a layer-wise model scores with for `requested` (its last
    /// by default); empty for every other model, which rejects a request.
    pub(crate) fn cutoff_layers(&self, requested: Option<&[usize]>, architecture: Architecture) -> Result<Vec<usize>> {
        match self {
            Self::MiniCpm(m) => m.config().resolve_cutoffs(requested),
            _ if requested.is_some() => {
                Err(Error::InvalidInput(format!("cutoff_layers applies to layer-wise rerankers, not {architecture:?}")))
            }
            _ => Ok(vec![]),
        }
    }

    /// Every layer a layer-wise model has a score head for
    /// (`start_layer..=num_hidden_layers`); empty for every other model.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn scoring_layers(&self) -> Vec<usize> {
        match self {
            Self::MiniCpm(m) => m.config().scoring_layers(),
            _ => vec![],
        }
    }

    /// Scores of one batch of unpadded sequences, one `[batch]` tensor per
    /// scoring layer.
    pub(crate) fn forward(
        &self,
        items: &[&Encoded],
        tokenizer: &PairTokenizer,
        cutoffs: &[usize],
        device: &Device,
    ) -> Result<Vec<Tensor<1>>> {
        let logits = |t: Tensor<2>| {
            let b = t.dims()[0];
            vec![t.reshape([b])]
        };
        match self {
            Self::Bert(m) => m.forward(items, device).map(logits),
            Self::XlmRoberta(m) => m.forward(items, device).map(logits),
            Self::ModernBert(m) => m.forward(items, device).map(logits),
            // FlagLLMReranker's collator pads to a multiple of 8.
            Self::Gemma(m) => Ok(vec![m.forward(&tokenizer.pad_to_multiple(items, 8), device)?]),
            Self::MiniCpm(m) => m.forward(&tokenizer.pad_to_multiple(items, 8), cutoffs, device),
            Self::Qwen3(m) => Ok(vec![m.forward(&tokenizer.pad_to_multiple(items, 8), device)?]),
        }
    }
}

/// A model that embeds: a bare encoder (a cross-encoder checkpoint's
/// encoder too) or a Qwen3 decoder (Qwen3-Embedding).
pub(crate) enum Encoder {
    Bert(BertModel),
    XlmRoberta(XlmRobertaModel),
    Qwen3(Qwen3),
    ModernBert(ModernBertEncoder),
}

impl Encoder {
    /// The checkpoint's encoder, weights stored as `dtype`, and what input
    /// it takes.
    pub(crate) fn load(ck: &Checkpoint, dtype: WeightDtype, device: &Device) -> Result<(Self, InputLimits)> {
        let config = ck.read("config.json")?;
        let architecture = Architecture::from_config_json(&config)?;
        if architecture.is_qwen3() {
            let cfg = Qwen3Config::from_json(&config)?;
            let limits = InputLimits::decoder(&cfg.decoder, qwen3::DEFAULT_POSITIONS);
            let w = Weights::open(ck)?.with_dtype(dtype);
            return Ok((Self::Qwen3(Qwen3::load_embedding(&w, cfg, device)?), limits));
        }
        if architecture.is_llm() {
            return Err(Error::InvalidInput(format!("{architecture:?} is a reranker; it does not embed")));
        }
        if architecture.is_modernbert() {
            let cfg = ModernBertConfig::from_json(&config)?;
            let w = Weights::open(ck)?.with_dtype(dtype);
            let m = ModernBertEncoder::load(&w, modernbert_prefix(&w), &cfg, device)?;
            return Ok((Self::ModernBert(m), InputLimits::modernbert(&cfg)));
        }
        let cfg = EncoderConfig::from_json(&config)?;
        let w = Weights::open(ck)?.with_dtype(dtype);
        let model = if architecture.is_roberta() {
            Self::XlmRoberta(XlmRobertaModel::load(&w, &cfg, device)?)
        } else {
            Self::Bert(BertModel::load(&w, &cfg, device)?)
        };
        Ok((model, InputLimits::encoder(&cfg, architecture)))
    }

    /// True for Qwen3-Embedding (its card's defaults apply).
    pub(crate) fn is_qwen3(&self) -> bool {
        matches!(self, Self::Qwen3(_))
    }

    /// Last hidden states of unpadded sequences, packed (`[packed rows,
    /// hidden]`), and their packing.
    pub(crate) fn forward(&self, items: &[&Encoded], device: &Device) -> Result<(Tensor<2>, Packing)> {
        match self {
            Self::Bert(m) => m.forward(items, device),
            Self::XlmRoberta(m) => m.forward(items, device),
            Self::ModernBert(m) => m.forward(items, device),
            Self::Qwen3(_) => Err(Error::InvalidInput("a Qwen3 model gives its last token's state only (last-token pooling)".into())),
        }
    }

    /// One pooled vector per sequence, `[sequences, hidden]`.
    pub(crate) fn pool(&self, items: &[&Encoded], pooling: Pooling, tokenizer: &PairTokenizer, device: &Device) -> Result<Tensor<2>> {
        if let Self::Qwen3(m) = self {
            if pooling != Pooling::LastToken {
                return Err(Error::InvalidInput(format!("Qwen3 embeds with last-token pooling, not {pooling:?}")));
            }
            return Ok(m.last_states(&tokenizer.pad_to_multiple(items, 8), device));
        }
        let (hidden, packing) = self.forward(items, device)?;
        Ok(match pooling {
            Pooling::Cls => hidden.select(0, packing.first_tokens(device)),
            Pooling::LastToken => hidden.select(0, packing.last_tokens(device)),
            Pooling::Mean => packing.mean(hidden),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_architecture_from_its_names() {
        let arch = |j: &str| Architecture::from_config_json(j.as_bytes());
        assert_eq!(
            arch(r#"{"architectures":["XLMRobertaForSequenceClassification"]}"#).unwrap(),
            Architecture::XlmRobertaForSequenceClassification
        );
        assert_eq!(arch(r#"{"model_type":"bert"}"#).unwrap(), Architecture::BertModel);
        assert_eq!(
            arch(r#"{"architectures":["LayerWiseMiniCPMForCausalLM"],"model_type":"minicpm"}"#).unwrap(),
            Architecture::LayerWiseMiniCpmForCausalLM
        );
        let e = arch(r#"{"architectures":["GPT2LMHeadModel"]}"#).unwrap_err();
        assert!(matches!(e, Error::UnsupportedArchitecture(ref a) if a == "GPT2LMHeadModel"), "{e}");
        assert!(matches!(arch(r#"{"model_type":"t5"}"#), Err(Error::UnsupportedArchitecture(_))));
        assert!(matches!(arch("{not json"), Err(Error::Config { .. })));
    }
}
