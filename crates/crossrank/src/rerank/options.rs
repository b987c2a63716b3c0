//! `ScoreOptions`: the scoring options with FlagReranker's defaults, and
//! what to do with a passage longer than fits (`LongPassages`).

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::tokenize::Limits;

const DEFAULT_MAX_LENGTH: usize = 512;
const DEFAULT_BATCH_SIZE: usize = 128;

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

/// Options of `compute_score`, with FlagReranker's defaults. The one
/// definition of the scoring options: the CLI's flags (feature `clap`), the
/// npm package's options object (camelCase; snake_case accepted too) and
/// JSON requests all deserialize into it, so defaults and names cannot drift.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreOptions {
    /// Maximum tokens of a (query, passage) pair, special tokens included
    /// (default 512, FlagReranker's; Qwen3-Reranker: 8192, its card's, and
    /// never more than the model's positions).
    #[serde(alias = "max_length")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_MAX_LENGTH"))]
    pub max_length: Option<usize>,
    /// Maximum tokens of the query (default max_length * 3 / 4; Qwen3-Reranker
    /// does not cut the query alone: its card cuts the whole text).
    #[serde(alias = "query_max_length")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_QUERY_MAX_LENGTH"))]
    pub query_max_length: Option<usize>,
    /// Pairs per forward pass.
    #[serde(alias = "batch_size", default = "default_batch_size")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE))]
    pub batch_size: usize,
    /// Also cap each forward pass at this many padded tokens (pairs ×
    /// longest pair): many short pairs share a pass, long ones do not
    /// exhaust device memory (a pair longer than this runs alone). Scores
    /// do not depend on batching.
    #[serde(alias = "max_batch_tokens")]
    #[cfg_attr(feature = "clap", arg(long, env = "MAX_BATCH_TOKENS"))]
    pub max_batch_tokens: Option<usize>,
    /// Map logits through a sigmoid into [0, 1].
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_NORMALIZE"))]
    pub normalize: bool,
    /// Text put before each query: FlagEmbedding's
    /// `query_instruction_for_rerank` (with its default format "{}{}").
    /// Default: "A: " for LLM rerankers (FlagLLMReranker's), nothing for
    /// cross-encoders; "" turns the LLM default off.
    #[serde(alias = "query_instruction")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_QUERY_INSTRUCTION"))]
    pub query_instruction: Option<String>,
    /// Text put before each passage: `passage_instruction_for_rerank`
    /// (default "B: " for LLM rerankers, nothing for cross-encoders).
    #[serde(alias = "passage_instruction")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_PASSAGE_INSTRUCTION"))]
    pub passage_instruction: Option<String>,
    /// LLM rerankers: the prompt after the pair (default: FlagLLMReranker's);
    /// Qwen3-Reranker: the instruction (default: its card's "Given a web
    /// search query, retrieve relevant passages that answer the query").
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_PROMPT"))]
    pub prompt: Option<String>,
    /// Layer-wise rerankers: the scoring layers, e.g. 8,28 (default: the
    /// last); several give one score list per layer.
    #[serde(alias = "cutoff_layers")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_CUTOFF_LAYERS", value_delimiter = ','))]
    pub cutoff_layers: Option<Vec<usize>>,
    /// Passages longer than fits: `truncate` cuts their end (FlagEmbedding's
    /// behaviour); `maxp` scores windows of the passage that fill
    /// max_length, the query in each, and keeps the best window's score.
    #[serde(alias = "long_passages")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_LONG_PASSAGES", value_enum, default_value_t = LongPassages::Truncate))]
    pub long_passages: LongPassages,
    /// maxp: passage tokens from one window's start to the next (default:
    /// half a window, so windows overlap by half).
    #[serde(alias = "passage_stride")]
    #[cfg_attr(feature = "clap", arg(long, env = "CROSSRANK_PASSAGE_STRIDE"))]
    pub passage_stride: Option<usize>,
}

/// What to do with a passage longer than `max_length` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LongPassages {
    /// Cut the passage's end (FlagEmbedding).
    #[default]
    Truncate,
    /// Score overlapping windows and keep the best (MaxP, Dai and Callan,
    /// SIGIR 2019).
    Maxp,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            max_length: None,
            query_max_length: None,
            batch_size: DEFAULT_BATCH_SIZE,
            max_batch_tokens: None,
            normalize: false,
            query_instruction: None,
            passage_instruction: None,
            prompt: None,
            cutoff_layers: None,
            long_passages: LongPassages::Truncate,
            passage_stride: None,
        }
    }
}

impl ScoreOptions {
    /// `max_length`, `default` when unset.
    pub fn max_length_or(&self, default: usize) -> usize {
        self.max_length.unwrap_or(default)
    }

    /// `max_length` (FlagReranker's 512 by default) and the query's limit
    /// (default max_length * 3 / 4, computed without overflowing for huge
    /// values), and the instructions (FlagLLMReranker's "A: " / "B: " for
    /// an LLM reranker by default).
    pub(super) fn limits(&self, llm: bool) -> Limits<'_> {
        let m = self.max_length_or(DEFAULT_MAX_LENGTH);
        let (q, p) = if llm { ("A: ", "B: ") } else { ("", "") };
        Limits {
            max_length: m,
            query_max_length: self.query_max_length.unwrap_or(m / 4 * 3 + m % 4 * 3 / 4),
            query_prefix: self.query_instruction.as_deref().unwrap_or(q),
            passage_prefix: self.passage_instruction.as_deref().unwrap_or(p),
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.max_length == Some(0) {
            return Err(Error::InvalidInput("max_length must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be at least 1".into()));
        }
        if self.passage_stride == Some(0) {
            return Err(Error::InvalidInput("passage_stride must be at least 1".into()));
        }
        if self.max_batch_tokens == Some(0) {
            return Err(Error::InvalidInput("max_batch_tokens must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_deserialize_with_defaults_in_either_case() {
        let o: ScoreOptions = serde_json::from_str(r#"{"maxLength": 64, "batch_size": 3, "cutoffLayers": [8]}"#).unwrap();
        assert_eq!(o, ScoreOptions { max_length: Some(64), batch_size: 3, cutoff_layers: Some(vec![8]), ..Default::default() });
        let o: ScoreOptions = serde_json::from_str(r#"{"query_max_length": null, "normalize": true}"#).unwrap();
        assert_eq!(o, ScoreOptions { normalize: true, ..Default::default() });
        let e = serde_json::from_str::<ScoreOptions>(r#"{"maxLenght": 64}"#).unwrap_err();
        assert!(e.to_string().contains("maxLenght"), "{e}");
    }
}
