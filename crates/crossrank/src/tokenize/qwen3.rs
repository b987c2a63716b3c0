//! Qwen3-Reranker's input, token for token as its model card's code builds
//! it: the system prefix's tokens, then
//! `"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"`
//! tokenized as one text (with the tokenizer's special tokens, none for
//! Qwen3's) and cut from its end to `max_length − |prefix| − |suffix|`
//! tokens, then the suffix's tokens. `max_length` counts the whole sequence.

use super::windows::plain_encoding;
use super::{Encoded, PairTokenizer};
use crate::error::{Error, Result};

/// The card's system prefix.
pub(crate) const QWEN3_PREFIX: &str = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n";
/// The card's suffix: the assistant turn with an empty thinking block.
pub(crate) const QWEN3_SUFFIX: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
/// The card's default instruction (`format_instruction`'s).
pub(crate) const QWEN3_DEFAULT_INSTRUCTION: &str = "Given a web search query, retrieve relevant passages that answer the query";

/// The fixed pieces of a Qwen3-Reranker input.
#[derive(Debug, Clone)]
pub(crate) struct Qwen3Template {
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    instruction: String,
}

impl Qwen3Template {
    /// The text the card tokenizes between prefix and suffix, up to the
    /// document (which `encode_prefixed` appends).
    fn head(&self, query: &str, query_prefix: &str, passage_prefix: &str) -> String {
        format!("<Instruct>: {}\n<Query>: {query_prefix}{query}\n<Document>: {passage_prefix}", self.instruction)
    }

    /// Tokens left for the formatted text within `max_length`.
    fn budget(&self, max_length: usize) -> Result<usize> {
        let fixed = self.prefix.len() + self.suffix.len();
        if max_length <= fixed {
            return Err(Error::InvalidInput(format!(
                "max_length {max_length} leaves no room for the text: Qwen3-Reranker's prompt alone is {fixed} tokens"
            )));
        }
        Ok(max_length - fixed)
    }

    fn input(&self, body: &[u32]) -> Encoded {
        let ids: Vec<u32> = [&self.prefix[..], body, &self.suffix[..]].concat();
        let type_ids = vec![0; ids.len()];
        Encoded { ids, type_ids }
    }
}

impl PairTokenizer {
    /// The template for `instruction` (the card's default when `None`).
    pub(crate) fn qwen3_template(&self, instruction: Option<&str>) -> Result<Qwen3Template> {
        let ids = |t: &str| -> Result<Vec<u32>> { Ok(self.encode_plain(t, None)?.get_ids().to_vec()) };
        Ok(Qwen3Template {
            prefix: ids(QWEN3_PREFIX)?,
            suffix: ids(QWEN3_SUFFIX)?,
            instruction: instruction.unwrap_or(QWEN3_DEFAULT_INSTRUCTION).to_string(),
        })
    }

    /// A pair as the card builds it (`query_prefix` / `passage_prefix`:
    /// crossrank's query and passage instructions, empty by default).
    pub(crate) fn encode_qwen3_pair(
        &self,
        query: &str,
        passage: &str,
        max_length: usize,
        prefixes: (&str, &str),
        t: &Qwen3Template,
    ) -> Result<Encoded> {
        // transformers' truncation leaves room for the special tokens the
        // tokenizer adds (Qwen3's adds none).
        let budget = t.budget(max_length)?.saturating_sub(self.specials(false));
        let body = self.encode_prefixed(&t.head(query, prefixes.0, prefixes.1), passage, Some(budget))?;
        Ok(t.input(&self.finish(body, None)?.ids))
    }

    /// A Qwen3 pair as windows (`maxp`): when the text fits, exactly
    /// [`encode_qwen3_pair`](Self::encode_qwen3_pair)'s input; otherwise
    /// the instruction and query with each window of the document that
    /// fills the budget.
    pub(crate) fn encode_qwen3_pair_windows(
        &self,
        query: &str,
        passage: &str,
        max_length: usize,
        prefixes: (&str, &str),
        t: &Qwen3Template,
        stride: Option<usize>,
    ) -> Result<Vec<(Encoded, (usize, usize))>> {
        let keep = t.budget(max_length)?.saturating_sub(self.specials(false));
        let tokens = self.all_tokens(&t.head(query, prefixes.0, prefixes.1), passage)?;
        let budget = keep.saturating_sub(tokens.prefix.len());
        if tokens.prefix.len() + tokens.ids.len() <= keep || budget == 0 {
            return Ok(vec![(self.encode_qwen3_pair(query, passage, max_length, prefixes, t)?, (0, passage.len()))]);
        }
        Self::windows(&tokens, budget, stride.unwrap_or(budget / 2))
            .into_iter()
            .map(|(r, span)| {
                let body = self.finish(plain_encoding(&[&tokens.prefix[..], &tokens.ids[r]].concat()), None)?;
                Ok((t.input(&body.ids), span))
            })
            .collect()
    }
}
