//! `config.json` as Hugging Face writes it, reduced to what the forward pass
//! needs, and the choice of architecture that follows from it.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The architectures crossrank can run, picked from `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `XLMRobertaForSequenceClassification`: bge-reranker-base / large / v2-m3.
    XlmRobertaForSequenceClassification,
    /// `BertForSequenceClassification`: ms-marco MiniLM cross-encoders.
    BertForSequenceClassification,
    /// `BertModel` / `XLMRobertaModel`: a bare encoder, used for embeddings.
    BertModel,
    /// `XLMRobertaModel`: a bare XLM-R encoder (bge-m3 style), used for embeddings.
    XlmRobertaModel,
    /// `GemmaForCausalLM`: bge-reranker-v2-gemma (FlagLLMReranker).
    GemmaForCausalLM,
    /// `LayerWiseMiniCPMForCausalLM`: bge-reranker-v2-minicpm-layerwise.
    LayerWiseMiniCpmForCausalLM,
}

impl Architecture {
    /// True for the two encoder families that score (query, passage) pairs.
    pub fn is_cross_encoder(self) -> bool {
        matches!(
            self,
            Self::XlmRobertaForSequenceClassification | Self::BertForSequenceClassification
        )
    }

    /// True for the decoder-only (LLM) rerankers.
    pub fn is_llm(self) -> bool {
        matches!(self, Self::GemmaForCausalLM | Self::LayerWiseMiniCpmForCausalLM)
    }

    /// The architecture a `config.json` names: `architectures[0]` first,
    /// `model_type` when the list is absent.
    pub fn from_config_json(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            architectures: Vec<String>,
            #[serde(default)]
            model_type: String,
        }
        let p: Probe = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        let arch = match (p.architectures.first().map(String::as_str), p.model_type.as_str()) {
            (Some("XLMRobertaForSequenceClassification" | "RobertaForSequenceClassification"), _) => {
                Self::XlmRobertaForSequenceClassification
            }
            (Some("BertForSequenceClassification"), _) => Self::BertForSequenceClassification,
            (Some("BertModel"), _) => Self::BertModel,
            (Some("XLMRobertaModel" | "RobertaModel"), _) => Self::XlmRobertaModel,
            (Some("GemmaForCausalLM"), _) => Self::GemmaForCausalLM,
            (Some("LayerWiseMiniCPMForCausalLM"), _) => Self::LayerWiseMiniCpmForCausalLM,
            (Some(other), _) => return Err(Error::UnsupportedArchitecture(other.to_string())),
            (None, "bert") => Self::BertModel,
            (None, "xlm-roberta" | "roberta") => Self::XlmRobertaModel,
            (None, "gemma") => Self::GemmaForCausalLM,
            (None, other) => return Err(Error::UnsupportedArchitecture(format!("model_type {other:?}"))),
        };
        Ok(arch)
    }

    /// True when position ids follow RoBERTa's padding-aware scheme.
    pub fn is_roberta(self) -> bool {
        matches!(self, Self::XlmRobertaForSequenceClassification | Self::XlmRobertaModel)
    }
}

/// Activation of the feed-forward block (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// Exact erf GELU (`"gelu"`).
    #[serde(rename = "gelu")]
    Gelu,
    /// tanh-approximated GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    #[serde(alias = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    #[serde(rename = "relu")]
    Relu,
    #[serde(alias = "silu", alias = "swish")]
    Silu,
}

/// The fields of a BERT / RoBERTa / XLM-R `config.json` that matter for
/// inference. Unknown fields are ignored, as transformers does.
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// Explicit `num_labels`, when the config has one.
    #[serde(default)]
    pub num_labels: Option<usize>,
    /// `id2label`, whose size gives `num_labels` as transformers reads it.
    #[serde(default)]
    pub id2label: Option<serde_json::Map<String, serde_json::Value>>,
}

fn default_act() -> Activation {
    Activation::Gelu
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl EncoderConfig {
    /// Parse and validate `config.json` bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let cfg: EncoderConfig =
            serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config("config.json", m));
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return bad("hidden_size and num_attention_heads must be positive".into());
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        if self.vocab_size == 0 || self.max_position_embeddings == 0 || self.type_vocab_size == 0 {
            return bad("vocab_size, max_position_embeddings and type_vocab_size must be positive".into());
        }
        Ok(())
    }

    /// `num_labels` as transformers derives it: explicit value, else the size
    /// of `id2label`, else 2.
    pub fn num_labels(&self) -> usize {
        self.num_labels
            .or_else(|| self.id2label.as_ref().map(|m| m.len()))
            .unwrap_or(2)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Which architecture this config describes.
    pub fn architecture(&self) -> Result<Architecture> {
        let probe = serde_json::json!({"architectures": self.architectures, "model_type": self.model_type});
        Architecture::from_config_json(probe.to_string().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(extra: &str) -> String {
        format!(
            r#"{{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 20 {extra}}}"#
        )
    }

    #[test]
    fn picks_architecture_and_labels_like_transformers() {
        let c = EncoderConfig::from_json(
            base(r#","architectures":["XLMRobertaForSequenceClassification"],"id2label":{"0":"LABEL_0"}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.architecture().unwrap(), Architecture::XlmRobertaForSequenceClassification);
        assert_eq!(c.num_labels(), 1);
        let c = EncoderConfig::from_json(base(r#","model_type":"bert""#).as_bytes()).unwrap();
        assert_eq!(c.architecture().unwrap(), Architecture::BertModel);
        assert_eq!(c.num_labels(), 2);
        assert_eq!(c.hidden_act, Activation::Gelu);
    }

    #[test]
    fn rejects_unknown_architecture_and_bad_shapes() {
        let c = EncoderConfig::from_json(base(r#","architectures":["GPT2LMHeadModel"]"#).as_bytes()).unwrap();
        let e = c.architecture().unwrap_err();
        assert!(matches!(e, Error::UnsupportedArchitecture(ref a) if a == "GPT2LMHeadModel"), "{e}");
        let e = EncoderConfig::from_json(
            base("").replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3").as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a multiple"), "{e}");
        let e = EncoderConfig::from_json(b"{not json").unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e}");
    }
}
