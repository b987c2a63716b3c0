//! One error type for everything that can go wrong between a checkpoint on
//! disk and a score: every variant carries a one-line, user-facing message.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required file of the checkpoint is not there.
    #[error("missing file {file} in checkpoint {location}")]
    MissingFile {
        /// The file's name in the checkpoint.
        file: String,
        /// The checkpoint (a directory, a repo id, "in memory").
        location: String,
    },

    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// Writing a file (or creating, renaming, removing one) failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// `config.json` (or another JSON file) is not what we expect.
    #[error("invalid {file}: {message}")]
    Config {
        /// The JSON file.
        file: String,
        /// What is wrong in it.
        message: String,
    },

    /// The architecture named in `config.json` is not one crossrank runs.
    #[error(
        "unsupported architecture {0:?}: crossrank runs XLMRobertaForSequenceClassification, \
         BertForSequenceClassification, BertModel, XLMRobertaModel, GemmaForCausalLM and \
         LayerWiseMiniCPMForCausalLM"
    )]
    UnsupportedArchitecture(String),

    /// A safetensors file could not be parsed (corrupt or truncated).
    #[error("invalid safetensors file {file}: {message}")]
    Safetensors {
        /// The weights file.
        file: String,
        /// What is wrong in it.
        message: String,
    },

    /// A tensor the model needs is absent from the weights.
    #[error("missing tensor {name} in the checkpoint weights")]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },

    /// A tensor has a shape other than the one `config.json` implies.
    #[error("tensor {name} has shape {actual:?}, expected {expected:?} from config.json")]
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The shape `config.json` implies.
        expected: Vec<usize>,
        /// The stored shape.
        actual: Vec<usize>,
    },

    /// A tensor is stored in a dtype crossrank cannot read.
    #[error("tensor {name} has unsupported dtype {dtype} (expected F32, F16 or BF16)")]
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// Its stored dtype.
        dtype: String,
    },

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

    /// Scoring was stopped between forward passes by its caller (Ctrl-C
    /// in the Python package, a cancel button): nothing is returned.
    #[error("interrupted")]
    Interrupted,

    /// The model produced a NaN or infinite score or embedding: the weights
    /// (or a quantization of them) are broken for this input. Nothing is
    /// returned for the other inputs either, so no caller ranks by a
    /// silently wrong list. TEI answers this with 424.
    #[error("the model gave a non-finite result ({value}) for input {index}: broken or overflowing weights")]
    NonFinite {
        /// The input (pair or text) whose result it is.
        index: usize,
        /// The value.
        value: f32,
    },

    /// An evaluation dataset or run file is malformed (the message names
    /// the line).
    #[error("invalid dataset file {file}: {message}")]
    Dataset {
        /// The dataset or run file.
        file: String,
        /// What is wrong, with the line.
        message: String,
    },
}

impl Error {
    pub(crate) fn config(file: &str, message: impl std::fmt::Display) -> Self {
        Error::Config { file: file.to_string(), message: message.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write { path: path.into(), source }
    }
}

/// `config.json`'s `field` must lie in `lo..=hi`: checked before anything
/// is sized from it, so a hostile or corrupt config is a typed error, not a
/// multi-gigabyte allocation or an arithmetic overflow.
pub(crate) fn check_config_range(field: &str, value: usize, lo: usize, hi: usize) -> Result<()> {
    if value < lo || value > hi {
        return Err(Error::config("config.json", format!("{field} is {value}; it must be in {lo}..={hi}")));
    }
    Ok(())
}

/// `config.json`'s float `field` must be finite and positive (as the f32
/// the model computes with), and below `hi`.
pub(crate) fn check_config_positive(field: &str, value: f64, hi: f64) -> Result<()> {
    let f = value as f32;
    if !(f.is_finite() && f > 0.0 && value < hi) {
        return Err(Error::config("config.json", format!("{field} is {value}; it must be positive, finite and below {hi}")));
    }
    Ok(())
}

/// Upper bounds on model sizes read from `config.json`: far above every
/// real reranker (Gemma-2B: hidden 2048, 18 layers, 256k vocab, 8k
/// positions) and low enough that products of two of them fit in memory
/// arithmetic without overflow.
pub(crate) mod bounds {
    pub(crate) const HIDDEN: usize = 1 << 16;
    pub(crate) const INTERMEDIATE: usize = 1 << 18;
    pub(crate) const LAYERS: usize = 1024;
    pub(crate) const HEADS: usize = 1024;
    pub(crate) const HEAD_DIM: usize = 1024;
    pub(crate) const VOCAB: usize = 1 << 24;
    pub(crate) const TYPE_VOCAB: usize = 1 << 16;
    pub(crate) const POSITIONS: usize = 1 << 20;
}
