//! `--long-passages maxp`: a passage too long for one input as windows
//! of it, each with the query, and the passage span each covers.

use tokenizers::Encoding;

use super::{Encoded, Limits, LlmTemplate, PairTokenizer, cut_point, tok_err};
use crate::error::Result;

/// `all_tokens` tokenizes long passages this many bytes at a time.
const SEGMENT_BYTES: usize = 64 << 10;

/// A passage's tokens for windowing (see `PairTokenizer::all_tokens`).
#[derive(Default)]
pub(super) struct PassageTokens {
    pub(super) prefix: Vec<u32>,
    pub(super) ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
}

/// An `Encoding` of bare ids (type 0, no special tokens), for the
/// post-processor to wrap.
pub(super) fn plain_encoding(ids: &[u32]) -> Encoding {
    let n = ids.len();
    Encoding::new(
        ids.to_vec(),
        vec![0; n],
        vec![String::new(); n],
        vec![None; n],
        vec![(0, 0); n],
        vec![0; n],
        vec![1; n],
        Vec::new(),
        Default::default(),
    )
}

impl PairTokenizer {
    /// Every token of `prefix + text`: the prefix's own tokens (those ending
    /// within `prefix` without its trailing whitespace), then the text's ids
    /// and byte offsets into `text`. Tokenized in segments of about
    /// [`SEGMENT_BYTES`] cut at whitespace (as `encode_prefixed` cuts), so a
    /// long document costs memory linear in its length with a small factor
    /// (a whole-text `Encoding` keeps ~150 bytes per input byte).
    pub(super) fn all_tokens(&self, prefix: &str, text: &str) -> Result<PassageTokens> {
        let head = prefix.trim_end().len();
        let mut out = PassageTokens::default();
        let mut at = 0;
        let mut first = true;
        while first || at < text.len() {
            let end = if text.len() - at <= SEGMENT_BYTES { text.len() } else { cut_point(text, at + SEGMENT_BYTES) };
            let segment = &text[at..end];
            let e = if first { self.tk.encode(format!("{prefix}{segment}"), false) } else { self.tk.encode(segment, false) }
                .map_err(tok_err)?;
            let shift = if first { prefix.len() } else { 0 };
            for (&id, &(a, b)) in e.get_ids().iter().zip(e.get_offsets()) {
                if first && head > 0 && b <= head && out.ids.is_empty() {
                    out.prefix.push(id);
                } else {
                    let span = (a.saturating_sub(shift) + at, b.saturating_sub(shift) + at);
                    out.ids.push(id);
                    out.offsets.push((span.0.min(text.len()), span.1.min(text.len())));
                }
            }
            first = false;
            at = end;
        }
        Ok(out)
    }

    /// The windows of a passage too long for one input (`--long-passages
    /// maxp`): each `size` passage tokens, `stride` apart, the last one
    /// ending at the passage's end; with the passage byte span each covers.
    pub(super) fn windows(tokens: &PassageTokens, size: usize, stride: usize) -> Vec<(std::ops::Range<usize>, (usize, usize))> {
        let n = tokens.ids.len();
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let end = (start + size).min(n);
            out.push(start..end);
            if end == n {
                break;
            }
            start += stride.max(1);
            if start + size >= n {
                out.push(n.saturating_sub(size)..n);
                break;
            }
        }
        out.into_iter()
            .map(|r| {
                let span = if r.is_empty() { (0, 0) } else { (tokens.offsets[r.start].0, tokens.offsets[r.end - 1].1) };
                (r, span)
            })
            .collect()
    }

    /// A (query, passage) pair as windows (`maxp`): when the passage fits,
    /// exactly [`encode_pair`](Self::encode_pair)'s input, spanning the whole
    /// passage; otherwise the query with each window of the passage that
    /// fills `max_length` (the first window is the truncated input).
    /// `stride` defaults to half a window.
    pub(crate) fn encode_pair_windows(
        &self,
        query: &str,
        passage: &str,
        l: Limits,
        stride: Option<usize>,
    ) -> Result<Vec<(Encoded, (usize, usize))>> {
        let q = self.encode_prefixed(l.query_prefix, query, Some(l.query_max_length))?;
        let keep = l.max_length.min(l.max_length.saturating_sub(q.len() + self.specials(true)));
        let tokens = self.all_tokens(l.passage_prefix, passage)?;
        let budget = keep.saturating_sub(tokens.prefix.len());
        if tokens.prefix.len() + tokens.ids.len() <= keep || budget == 0 {
            return Ok(vec![(self.encode_pair(query, passage, l)?, (0, passage.len()))]);
        }
        Self::windows(&tokens, budget, stride.unwrap_or(budget / 2))
            .into_iter()
            .map(|(r, span)| Ok((self.finish(q.clone(), Some(plain_encoding(&[&tokens.prefix[..], &tokens.ids[r]].concat())))?, span)))
            .collect()
    }

    /// An LLM pair as windows (`maxp`), as [`encode_pair_windows`](Self::encode_pair_windows)
    /// does for cross-encoders: each window is `B: ` + a part of the passage.
    pub(crate) fn encode_llm_pair_windows(
        &self,
        query: &str,
        passage: &str,
        l: Limits,
        t: &LlmTemplate,
        stride: Option<usize>,
    ) -> Result<Vec<(Encoded, (usize, usize))>> {
        let (max_length, query_max_length) = (l.max_length, l.query_max_length);
        let q = self.encode_prefixed(l.query_prefix, query, Some(query_max_length))?;
        let first = t.bos.iter().count() + q.len();
        let limit = max_length.saturating_add(t.sep.len() + t.prompt.len());
        // What encode_llm_pair keeps of the prefix ("B: ") + passage.
        let keep = max_length.min(limit.saturating_sub(first + t.sep.len()));
        let tokens = self.all_tokens(l.passage_prefix, passage)?;
        let budget = keep.saturating_sub(tokens.prefix.len());
        if tokens.prefix.len() + tokens.ids.len() <= keep || budget == 0 {
            return Ok(vec![(self.encode_llm_pair(query, passage, l, t)?, (0, passage.len()))]);
        }
        let head = t.head(q.get_ids());
        Ok(Self::windows(&tokens, budget, stride.unwrap_or(budget / 2))
            .into_iter()
            .map(|(r, span)| (t.input(&[&head, &t.sep, &tokens.prefix, &tokens.ids[r]]), span))
            .collect())
    }
}
