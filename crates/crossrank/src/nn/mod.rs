//! The layers the models are built from, as plain structs of tensors with a
//! `load` from checkpoint weights and a `forward`. Device-neutral: where a
//! device wants its own path, the layer calls `crate::kernels`.

pub(crate) mod calibration;
mod decoder;
mod embedding;
mod linear;
mod norm;
mod packing;

use burn::tensor::{Tensor, activation};
use serde::Deserialize;

/// Multi-head self-attention over each packed sequence's own tokens, as
/// the plan [`Packing::attention`] built for the device says.
pub(crate) use crate::kernels::{AttentionPlan, packed_attention};
pub(crate) use decoder::{DecoderConfig, DecoderLayer, Rope, causal_padding_mask, last_tokens};
pub(crate) use embedding::Embedding;
pub(crate) use linear::Linear;
pub(crate) use norm::{LayerNorm, RmsNorm};
pub(crate) use packing::Packing;

/// Activation of a feed-forward block (`hidden_act` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Activation {
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

impl Activation {
    pub(crate) fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => crate::kernels::gelu(x),
            Self::GeluTanh => activation::gelu_approximate(x),
            Self::Relu => activation::relu(x),
            Self::Silu => activation::silu(x),
        }
    }
}

/// How token states become one vector (`"mean"`, `"cls"`, `"last"` in
/// options objects): the embedder's choice, applied by the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over non-padding tokens.
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
    /// The last token (Qwen3-Embedding: its tokenizer ends every text with
    /// `<|endoftext|>`).
    #[serde(rename = "last", alias = "lasttoken", alias = "last_token")]
    LastToken,
}

impl std::str::FromStr for Pooling {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            "last" | "lasttoken" | "last_token" => Ok(Self::LastToken),
            o => Err(crate::error::Error::InvalidInput(format!("unknown pooling {o:?} (expected mean, cls or last)"))),
        }
    }
}
