//! One error type for everything that can go wrong between a checkpoint on
//! disk and a score: every variant carries a one-line, user-facing message.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required file of the checkpoint is not there.
    #[error("missing file {file} in checkpoint {location}")]
    MissingFile { file: String, location: String },

    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `config.json` (or another JSON file) is not what we expect.
    #[error("invalid {file}: {message}")]
    Config { file: String, message: String },

    /// The architecture named in `config.json` is not one crossrank runs.
    #[error(
        "unsupported architecture {0:?}: crossrank runs XLMRobertaForSequenceClassification, \
         BertForSequenceClassification, BertModel, XLMRobertaModel, GemmaForCausalLM and \
         LayerWiseMiniCPMForCausalLM"
    )]
    UnsupportedArchitecture(String),

    /// A safetensors file could not be parsed (corrupt or truncated).
    #[error("invalid safetensors file {file}: {message}")]
    Safetensors { file: String, message: String },

    /// A tensor the model needs is absent from the weights.
    #[error("missing tensor {name} in the checkpoint weights")]
    MissingTensor { name: String },

    /// A tensor has a shape other than the one `config.json` implies.
    #[error("tensor {name} has shape {actual:?}, expected {expected:?} from config.json")]
    ShapeMismatch { name: String, expected: Vec<usize>, actual: Vec<usize> },

    /// A tensor is stored in a dtype crossrank cannot read.
    #[error("tensor {name} has unsupported dtype {dtype} (expected F32, F16 or BF16)")]
    UnsupportedDtype { name: String, dtype: String },

    /// The tokenizer file could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The request itself is invalid (bad option values, too-long input, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The compute device could not be created or failed while running.
    #[error("device: {0}")]
    Device(String),

    /// Downloading from the Hugging Face Hub failed.
    #[error("hub: {0}")]
    Hub(String),
}

impl Error {
    pub(crate) fn config(file: &str, message: impl std::fmt::Display) -> Self {
        Error::Config { file: file.to_string(), message: message.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
