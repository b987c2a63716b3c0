//! The cross-encoders' inputs: a (query, passage) pair as FlagReranker
//! builds it (and FlagEmbedding's training pairs), and a single text as
//! sentence-transformers does.

use super::{Encoded, Limits, PairTokenizer, only_second, truncate};
use crate::error::Result;

impl PairTokenizer {
    /// A (query, passage) pair as FlagReranker builds it.
    pub(crate) fn encode_pair(&self, query: &str, passage: &str, l: Limits) -> Result<Encoded> {
        let q = self.encode_prefixed(l.query_prefix, query, Some(l.query_max_length))?;
        let p = self.encode_prefixed(l.passage_prefix, passage, Some(l.max_length))?;
        self.finish_pair(q, p, l.max_length)
    }

    /// A (query, passage) pair: the query cut to `query_cap` tokens, the
    /// passage to `passage_cap`, then transformers' `prepare_for_model`
    /// (`truncation="only_second"`, `max_length`). FlagReranker caps the
    /// passage at `max_length`; FlagEmbedding's training examples
    /// (`AbsRerankerTrainDataset.create_one_example`) at
    /// `passage_max_len + query_max_len // 2`.
    pub(crate) fn encode_pair_capped(
        &self,
        query: &str,
        passage: &str,
        max_length: usize,
        query_cap: usize,
        passage_cap: usize,
    ) -> Result<Encoded> {
        let q = self.encode_plain(query, Some(query_cap))?;
        let p = self.encode_plain(passage, Some(passage_cap))?;
        self.finish_pair(q, p, max_length)
    }

    /// transformers' `prepare_for_model` (`truncation="only_second"`).
    fn finish_pair(&self, q: tokenizers::Encoding, mut p: tokenizers::Encoding, max_length: usize) -> Result<Encoded> {
        let keep = only_second(q.len() + self.specials(true), p.len(), max_length);
        truncate(&mut p, keep);
        self.finish(q, Some(p))
    }

    /// One text with special tokens, truncated so the whole fits in
    /// `max_length` (sentence-transformers' `truncation="longest_first"`).
    pub(crate) fn encode_single(&self, text: &str, max_length: usize) -> Result<Encoded> {
        self.encode_single_prefixed("", text, max_length)
    }

    /// `prompt + text` as [`encode_single`](Self::encode_single) encodes a
    /// text (sentence-transformers puts the prompt in the text).
    pub(crate) fn encode_single_prefixed(&self, prompt: &str, text: &str, max_length: usize) -> Result<Encoded> {
        let budget = max_length.saturating_sub(self.specials(false));
        let e = self.encode_prefixed(prompt, text, Some(budget))?;
        self.finish(e, None)
    }
}
