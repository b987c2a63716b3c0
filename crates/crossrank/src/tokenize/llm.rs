//! The LLM rerankers' inputs (FlagLLMReranker, decoder_only/base.py, and
//! FlagEmbedding's LLM training dataset): `[bos] + query`, `sep +
//! passage` cut only_second, then `sep + prompt`.

use super::{Encoded, Limits, PairTokenizer, only_second};
use crate::error::Result;

/// The fixed pieces of an LLM reranker's input (FlagLLMReranker).
#[derive(Debug, Clone)]
pub(crate) struct LlmTemplate {
    /// `tokenizer("\n")` without special tokens.
    pub(crate) sep: Vec<u32>,
    /// `tokenizer(prompt)` without special tokens.
    pub(crate) prompt: Vec<u32>,
    /// BOS, when the tokenizer has one distinct from its pad token.
    pub(crate) bos: Option<u32>,
}

impl LlmTemplate {
    /// `[bos] + query`: the first part of every LLM input.
    pub(super) fn head(&self, query: &[u32]) -> Vec<u32> {
        self.bos.into_iter().chain(query.iter().copied()).collect()
    }

    /// `[bos] + query`, then `sep + passage` cut only_second so the two fit
    /// `limit`, then `sep + prompt`.
    fn pair(&self, query: &[u32], passage: &[u32], limit: usize) -> Encoded {
        let first = self.head(query);
        let mut second = [self.sep.as_slice(), passage].concat();
        second.truncate(only_second(first.len(), second.len(), limit));
        self.input(&[&first, &second])
    }

    /// The model input: `parts` (`[bos] + query`, `sep + passage`, already
    /// cut), then `sep + prompt`; one token type.
    pub(super) fn input(&self, parts: &[&[u32]]) -> Encoded {
        let mut ids: Vec<u32> = parts.concat();
        ids.extend_from_slice(&self.sep);
        ids.extend_from_slice(&self.prompt);
        let type_ids = vec![0; ids.len()];
        Encoded { ids, type_ids }
    }
}

/// FlagLLMReranker's default prompt.
pub(crate) const DEFAULT_LLM_PROMPT: &str = "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing a prediction of either 'Yes' or 'No'.";

impl PairTokenizer {
    /// The LLM template for `prompt` (FlagLLMReranker's default when `None`).
    pub(crate) fn llm_template(&self, prompt: Option<&str>) -> Result<LlmTemplate> {
        let ids = |t: &str| -> Result<Vec<u32>> { Ok(self.encode_plain(t, None)?.get_ids().to_vec()) };
        Ok(LlmTemplate {
            sep: ids("\n")?,
            prompt: ids(prompt.unwrap_or(DEFAULT_LLM_PROMPT))?,
            bos: self.bos_id.filter(|&b| b != self.pad_id),
        })
    }

    /// A pair as FlagLLMReranker (decoder_only/base.py) builds it:
    /// `[bos] + tok("A: "+q)[:qmax]`, then `sep + tok("B: "+p)[:max]` cut
    /// ("A: " and "B: " being `l`'s prefixes by default)
    /// from the end (only_second, strictly-longer rule) to fit
    /// `max_length + len(sep) + len(prompt)`, then `sep + prompt`.
    pub(crate) fn encode_llm_pair(
        &self,
        query: &str,
        passage: &str,
        l: Limits,
        t: &LlmTemplate,
    ) -> Result<Encoded> {
        let q = self.encode_prefixed(l.query_prefix, query, Some(l.query_max_length))?;
        let p = self.encode_prefixed(l.passage_prefix, passage, Some(l.max_length))?;
        Ok(t.pair(q.get_ids(), p.get_ids(), l.max_length.saturating_add(t.sep.len() + t.prompt.len())))
    }

    /// FlagEmbedding's LLM reranker *training* pair
    /// (`AbsLLMRerankerTrainDataset.__getitem__`): unlike scoring, no "A: "
    /// / "B: " prefixes; the query cut at `query_max_len +
    /// passage_max_len / 4` tokens, the passage at `passage_max_len +
    /// query_max_len / 2`, then `[bos] + query` and `sep + passage` cut
    /// only_second to `query_max_len + passage_max_len - |prompt| - |sep|`,
    /// then `sep + prompt`.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn encode_llm_train_pair(
        &self,
        query: &str,
        passage: &str,
        query_max_len: usize,
        passage_max_len: usize,
        t: &LlmTemplate,
    ) -> Result<Encoded> {
        let q = self.encode_plain(query, Some(query_max_len + passage_max_len / 4))?;
        let p = self.encode_plain(passage, Some(passage_max_len + query_max_len / 2))?;
        Ok(t.pair(q.get_ids(), p.get_ids(), (query_max_len + passage_max_len).saturating_sub(t.prompt.len() + t.sep.len())))
    }
}
