//! Input construction, token for token as FlagEmbedding 1.4.2 builds it.
//!
//! `FlagReranker.compute_score` (encoder_only/base.py) does, per pair:
//! 1. `tokenizer(query, add_special_tokens=False, truncation=True,
//!    max_length=query_max_length)` — the query cut to `query_max_length`;
//! 2. the same for the passage with `max_length`;
//! 3. `prepare_for_model(q, p, truncation='only_second', max_length)`: when
//!    `len(q) + len(p) + specials > max_length`, the passage loses tokens from
//!    its end — but only if it has *more* tokens than must go (transformers'
//!    `truncate_sequences` logs an error and keeps both whole otherwise);
//!    special tokens as the tokenizer's pair template says;
//! 4. `tokenizer.pad(..., padding=True)`: right-padding to the batch's
//!    longest sequence with the pad token, attention mask 0 there.

use tokenizers::{Encoding, PostProcessor, Tokenizer, TruncationDirection};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

/// Texts longer than this many bytes per token they may keep are tokenized
/// from a prefix (see `PairTokenizer::encode_prefixed`); no real text needs
/// 32 bytes per token, so every ordinary input is tokenized whole.
const CUT_BYTES_PER_TOKEN: usize = 32;
/// ... and never a prefix shorter than this.
const CUT_MIN_BYTES: usize = 16 << 10;
/// Tokens ending within this many bytes of a prefix's cut may differ from
/// the full text's and are not trusted; the cut looks this far for
/// whitespace too.
const CUT_WINDOW: usize = 1024;

/// Where to cut `text` near byte `at`: the first whitespace within
/// [`CUT_WINDOW`] bytes after it, else the char boundary at or after it.
fn cut_point(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    let look = &text.as_bytes()[at..text.len().min(at + CUT_WINDOW)];
    match look.iter().position(|b| b.is_ascii_whitespace()) {
        Some(i) => at + i,
        None => at,
    }
}

/// `all_tokens` tokenizes long passages this many bytes at a time.
const SEGMENT_BYTES: usize = 64 << 10;

/// A passage's tokens for windowing (see `PairTokenizer::all_tokens`).
#[derive(Default)]
struct PassageTokens {
    prefix: Vec<u32>,
    ids: Vec<u32>,
    offsets: Vec<(usize, usize)>,
}

/// An `Encoding` of bare ids (type 0, no special tokens), for the
/// post-processor to wrap.
fn plain_encoding(ids: &[u32]) -> Encoding {
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

fn truncate(e: &mut Encoding, n: usize) {
    if e.len() > n {
        e.truncate(n, 0, TruncationDirection::Right);
        e.take_overflowing();
    }
}

/// One tokenized input, before padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A right-padded batch on the host, row-major `rows × cols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) ids: Vec<u32>,
    pub(crate) type_ids: Vec<u32>,
    pub(crate) attention_mask: Vec<u32>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

/// A Hugging Face `tokenizers` tokenizer plus the padding token the
/// checkpoint's `tokenizer_config.json` names.
#[derive(Clone)]
pub(crate) struct PairTokenizer {
    tk: Tokenizer,
    pad_id: u32,
    bos_id: Option<u32>,
    /// See `set_token_cap`.
    token_cap: usize,
}

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
    /// The model input: `parts` (`[bos] + query`, `sep + passage`, already
    /// cut), then `sep + prompt`; one token type.
    fn input(&self, parts: &[&[u32]]) -> Encoded {
        let mut ids: Vec<u32> = parts.concat();
        ids.extend_from_slice(&self.sep);
        ids.extend_from_slice(&self.prompt);
        let type_ids = vec![0; ids.len()];
        Encoded { ids, type_ids }
    }
}

/// FlagLLMReranker's default prompt.
pub(crate) const DEFAULT_LLM_PROMPT: &str = "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing a prediction of either 'Yes' or 'No'.";

/// A `TemplateProcessing` post-processor (alone or in a `Sequence`) must
/// define every special token its templates name, each with as many ids
/// as tokens: tokenizers 0.22 checks this only when building one, and
/// indexes its map unchecked when a loaded one runs (a panic; found by the
/// fuzz_smoke tokenizer target).
fn check_post_processor(p: &serde_json::Value) -> Result<()> {
    let bad = |m: String| Err(Error::Tokenizer(format!("tokenizer.json post_processor: {m}")));
    match p.get("type").and_then(|t| t.as_str()) {
        Some("Sequence") => {
            for q in p.get("processors").and_then(|v| v.as_array()).into_iter().flatten() {
                check_post_processor(q)?;
            }
        }
        Some("TemplateProcessing") => {
            let specials = p.get("special_tokens").and_then(|v| v.as_object());
            for (name, t) in specials.into_iter().flatten() {
                let len = |k: &str| t.get(k).and_then(|v| v.as_array()).map(Vec::len);
                if len("ids") != len("tokens") {
                    return bad(format!("special token {name:?} has {:?} ids but {:?} tokens", len("ids"), len("tokens")));
                }
            }
            for template in ["single", "pair"] {
                for piece in p.get(template).and_then(|v| v.as_array()).into_iter().flatten() {
                    if let Some(id) = piece.get("SpecialToken").and_then(|t| t.get("id")).and_then(|v| v.as_str())
                        && !specials.is_some_and(|m| m.contains_key(id))
                    {
                        return bad(format!("the {template} template names special token {id:?}, which it does not define"));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// `"pad_token": "<pad>"` or `"pad_token": {"content": "<pad>", ...}`.
fn token_name(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl PairTokenizer {
    /// Load `tokenizer.json`, and the pad token from `tokenizer_config.json`
    /// / `special_tokens_map.json` when present.
    pub(crate) fn from_checkpoint(ck: &Checkpoint) -> Result<Self> {
        let json = ck.read("tokenizer.json")?;
        let mut hints = Vec::new();
        for f in ["tokenizer_config.json", "special_tokens_map.json"] {
            if let Some(v) = ck.read_json(f)? {
                hints.push(v);
            }
        }
        Self::from_bytes(&json, &hints)
    }

    /// From `tokenizer.json` bytes and the JSON files that may name the pad token.
    pub(crate) fn from_bytes(tokenizer_json: &[u8], hints: &[serde_json::Value]) -> Result<Self> {
        // JSON syntax first: tokenizers 0.22 panics (`expect("Helper")` in
        // its decoder deserializer) on a syntax error inside "decoder";
        // found by the fuzz_smoke tokenizer target.
        #[derive(serde::Deserialize)]
        struct Outline {
            #[serde(default)]
            post_processor: Option<serde_json::Value>,
            // Parsed, not skipped: skipping accepts a lone surrogate escape
            // ("\ud800") that tokenizers' decoder parser then panics on.
            #[serde(default)]
            #[allow(dead_code)]
            decoder: Option<serde_json::Value>,
            #[serde(default)]
            model: Option<ModelOutline>,
        }
        // What tokenizers' BPE builder slices unchecked (vocab skipped).
        #[derive(serde::Deserialize)]
        struct ModelOutline {
            #[serde(default)]
            continuing_subword_prefix: Option<String>,
            #[serde(default)]
            merges: Option<Vec<Merge>>,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Merge {
            Joined(String),
            Pair(#[allow(dead_code)] String, String),
            #[allow(dead_code)]
            Other(serde::de::IgnoredAny),
        }
        let outline: Outline =
            serde_json::from_slice(tokenizer_json).map_err(|e| Error::Tokenizer(format!("tokenizer.json is not valid: {e}")))?;
        if let Some(p) = &outline.post_processor {
            check_post_processor(p)?;
        }
        // BPE with a continuing-subword prefix cuts that many bytes off the
        // second half of every merge without a check (a panic when it is
        // shorter; found by the fuzz_smoke tokenizer target).
        if let Some(ModelOutline { continuing_subword_prefix: Some(prefix), merges: Some(merges) }) = &outline.model
            && !prefix.is_empty()
        {
            for m in merges {
                let second = match m {
                    Merge::Joined(s) => s.split_once(' ').map(|(_, b)| b),
                    Merge::Pair(_, b) => Some(b.as_str()),
                    Merge::Other(_) => None,
                };
                if let Some(b) = second
                    && !(b.len() >= prefix.len() && b.is_char_boundary(prefix.len()))
                {
                    return Err(Error::Tokenizer(format!(
                        "tokenizer.json: merge part {b:?} is shorter than the continuing_subword_prefix {prefix:?}"
                    )));
                }
            }
        }
        let mut tk = Tokenizer::from_bytes(tokenizer_json).map_err(tok_err)?;
        // Truncation and padding are ours to do, exactly as transformers does
        // them; a tokenizer.json that carries its own would interfere.
        tk.with_truncation(None).map_err(tok_err)?;
        tk.with_padding(None);
        let named = hints.iter().filter_map(|h| token_name(h, "pad_token")).find_map(|t| tk.token_to_id(&t));
        let bos_id = hints.iter().filter_map(|h| token_name(h, "bos_token")).find_map(|t| tk.token_to_id(&t));
        let pad_id = named
            .or_else(|| tk.get_padding().map(|p| p.pad_id))
            .or_else(|| ["<pad>", "[PAD]", "<PAD>"].iter().find_map(|t| tk.token_to_id(t)))
            .ok_or_else(|| Error::Tokenizer("cannot determine the padding token (no pad_token in tokenizer_config.json)".into()))?;
        Ok(Self { tk, pad_id, bos_id, token_cap: usize::MAX })
    }

    /// Token ids of `text` without special tokens, cut to `max_len` tokens
    /// (and never more than the model's token cap plus one).
    pub(crate) fn encode_plain(&self, text: &str, max_len: Option<usize>) -> Result<Encoding> {
        self.encode_prefixed("", text, max_len)
    }

    /// The model's longest input, in tokens: texts are never tokenized past
    /// one more than this (a longer sequence is an error whatever its tail).
    pub(crate) fn set_token_cap(&mut self, cap: usize) {
        self.token_cap = cap;
    }

    /// The name of token `id`, for messages.
    pub(crate) fn token_name(&self, id: u32) -> String {
        self.tk.id_to_token(id).unwrap_or_else(|| "<not in the tokenizer>".into())
    }

    /// Tokens of `prefix + text`, cut to `max_len` tokens. A text far longer
    /// than that many tokens can need is not tokenized whole (a 50 MB
    /// passage took 7.8 GB that way): a prefix of it is, grown until enough
    /// of its tokens end at least [`CUT_WINDOW`] bytes before the cut — the
    /// cut lands on whitespace where there is some, so the word-splitting
    /// pre-tokenizers (BERT, Metaspace) see the same words, and BPE merges
    /// never reach that far — which are then the full text's first tokens.
    fn encode_prefixed(&self, prefix: &str, text: &str, max_len: Option<usize>) -> Result<Encoding> {
        let cap = max_len.unwrap_or(usize::MAX).min(self.token_cap.saturating_add(1));
        let whole = |t: &str| -> Result<Encoding> {
            let mut e = if prefix.is_empty() { self.tk.encode_fast(t, false) } else { self.tk.encode_fast(format!("{prefix}{t}"), false) }
                .map_err(tok_err)?;
            truncate(&mut e, cap);
            Ok(e)
        };
        let mut budget = cap.saturating_mul(CUT_BYTES_PER_TOKEN).max(CUT_MIN_BYTES);
        loop {
            if budget >= text.len() {
                return whole(text);
            }
            let end = cut_point(text, budget);
            if end >= text.len() {
                return whole(text);
            }
            let mut e = self.tk.encode(format!("{prefix}{}", &text[..end]), false).map_err(tok_err)?;
            let settled = (prefix.len() + end).saturating_sub(CUT_WINDOW);
            let safe = e.get_offsets().iter().take_while(|o| o.1 <= settled).count();
            if safe >= cap {
                truncate(&mut e, cap);
                return Ok(e);
            }
            budget = budget.saturating_mul(2);
        }
    }

    fn specials(&self, pair: bool) -> usize {
        self.tk.get_post_processor().map(|p| p.added_tokens(pair)).unwrap_or(0)
    }

    fn finish(&self, a: Encoding, b: Option<Encoding>) -> Result<Encoded> {
        let e = self.tk.post_process(a, b, true).map_err(tok_err)?;
        Ok(Encoded { ids: e.get_ids().to_vec(), type_ids: e.get_type_ids().to_vec() })
    }

    /// A (query, passage) pair as FlagReranker builds it.
    pub(crate) fn encode_pair(&self, query: &str, passage: &str, max_length: usize, query_max_length: usize) -> Result<Encoded> {
        self.encode_pair_capped(query, passage, max_length, query_max_length, max_length)
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
        let mut p = self.encode_plain(passage, Some(passage_cap))?;
        let total = q.len() + p.len() + self.specials(true);
        if total > max_length {
            let remove = total - max_length;
            // transformers' `truncate_sequences` (only_second) truncates only
            // when the passage has strictly more tokens than must go.
            if p.len() > remove {
                let keep = p.len() - remove;
                p.truncate(keep, 0, TruncationDirection::Right);
                p.take_overflowing();
            }
        }
        self.finish(q, Some(p))
    }

    /// One text with special tokens, truncated so the whole fits in
    /// `max_length` (sentence-transformers' `truncation="longest_first"`).
    pub(crate) fn encode_single(&self, text: &str, max_length: usize) -> Result<Encoded> {
        let budget = max_length.saturating_sub(self.specials(false));
        let e = self.encode_plain(text, Some(budget))?;
        self.finish(e, None)
    }

    /// The LLM template for `prompt` (FlagLLMReranker's default when `None`).
    pub(crate) fn llm_template(&self, prompt: Option<&str>) -> Result<LlmTemplate> {
        let ids = |t: &str| -> Result<Vec<u32>> { Ok(self.encode_plain(t, None)?.get_ids().to_vec()) };
        Ok(LlmTemplate {
            sep: ids("\n")?,
            prompt: ids(prompt.unwrap_or(DEFAULT_LLM_PROMPT))?,
            bos: self.bos_id.filter(|&b| b != self.pad_id),
        })
    }

    /// The id of the first token of `text` (the LLM rerankers score "Yes").
    pub(crate) fn first_token(&self, text: &str) -> Result<u32> {
        self.encode_plain(text, None)?.get_ids().first().copied().ok_or_else(|| Error::Tokenizer(format!("{text:?} encodes to no token")))
    }

    /// The id of the last token of `text` (FlagEmbedding's layer-wise
    /// trainer takes `tokenizer('Yes', add_special_tokens=False)['input_ids'][-1]`).
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn last_token(&self, text: &str) -> Result<u32> {
        self.encode_plain(text, None)?.get_ids().last().copied().ok_or_else(|| Error::Tokenizer(format!("{text:?} encodes to no token")))
    }

    /// A pair as FlagLLMReranker (decoder_only/base.py) builds it:
    /// `[bos] + tok("A: "+q)[:qmax]`, then `sep + tok("B: "+p)[:max]` cut
    /// from the end (only_second, strictly-longer rule) to fit
    /// `max_length + len(sep) + len(prompt)`, then `sep + prompt`.
    pub(crate) fn encode_llm_pair(
        &self,
        query: &str,
        passage: &str,
        max_length: usize,
        query_max_length: usize,
        t: &LlmTemplate,
    ) -> Result<Encoded> {
        let q = self.encode_prefixed("A: ", query, Some(query_max_length))?;
        let p = self.encode_prefixed("B: ", passage, Some(max_length))?;
        let mut first: Vec<u32> = t.bos.into_iter().collect();
        first.extend_from_slice(q.get_ids());
        let mut second = t.sep.clone();
        second.extend_from_slice(p.get_ids());
        let limit = max_length.saturating_add(t.sep.len() + t.prompt.len());
        let total = first.len() + second.len();
        if total > limit && second.len() > total - limit {
            second.truncate(second.len() - (total - limit));
        }
        Ok(t.input(&[&first, &second]))
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
        let mut first: Vec<u32> = t.bos.into_iter().collect();
        first.extend_from_slice(q.get_ids());
        let mut second = t.sep.clone();
        second.extend_from_slice(p.get_ids());
        let limit = (query_max_len + passage_max_len).saturating_sub(t.prompt.len() + t.sep.len());
        let total = first.len() + second.len();
        // prepare_for_model's only_second: nothing is cut when the second
        // part is too short to absorb the excess (transformers logs it).
        if total > limit && second.len() > total - limit {
            second.truncate(second.len() - (total - limit));
        }
        Ok(t.input(&[&first, &second]))
    }

    /// Every token of `prefix + text`: the prefix's own tokens (those ending
    /// within `prefix` without its trailing whitespace), then the text's ids
    /// and byte offsets into `text`. Tokenized in segments of about
    /// [`SEGMENT_BYTES`] cut at whitespace (as `encode_prefixed` cuts), so a
    /// long document costs memory linear in its length with a small factor
    /// (a whole-text `Encoding` keeps ~150 bytes per input byte).
    fn all_tokens(&self, prefix: &str, text: &str) -> Result<PassageTokens> {
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
    fn windows(tokens: &PassageTokens, size: usize, stride: usize) -> Vec<(std::ops::Range<usize>, (usize, usize))> {
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
        max_length: usize,
        query_max_length: usize,
        stride: Option<usize>,
    ) -> Result<Vec<(Encoded, (usize, usize))>> {
        let q = self.encode_plain(query, Some(query_max_length))?;
        let budget = max_length.saturating_sub(q.len() + self.specials(true));
        let tokens = self.all_tokens("", passage)?;
        if tokens.ids.len() <= budget || budget == 0 {
            return Ok(vec![(self.encode_pair(query, passage, max_length, query_max_length)?, (0, passage.len()))]);
        }
        Self::windows(&tokens, budget, stride.unwrap_or(budget / 2))
            .into_iter()
            .map(|(r, span)| Ok((self.finish(q.clone(), Some(plain_encoding(&tokens.ids[r])))?, span)))
            .collect()
    }

    /// An LLM pair as windows (`maxp`), as [`encode_pair_windows`](Self::encode_pair_windows)
    /// does for cross-encoders: each window is `B: ` + a part of the passage.
    pub(crate) fn encode_llm_pair_windows(
        &self,
        query: &str,
        passage: &str,
        max_length: usize,
        query_max_length: usize,
        t: &LlmTemplate,
        stride: Option<usize>,
    ) -> Result<Vec<(Encoded, (usize, usize))>> {
        let q = self.encode_prefixed("A: ", query, Some(query_max_length))?;
        let first = t.bos.iter().count() + q.len();
        let limit = max_length.saturating_add(t.sep.len() + t.prompt.len());
        // What encode_llm_pair keeps of "B: " + passage.
        let keep = max_length.min(limit.saturating_sub(first + t.sep.len()));
        let tokens = self.all_tokens("B: ", passage)?;
        let budget = keep.saturating_sub(tokens.prefix.len());
        if tokens.prefix.len() + tokens.ids.len() <= keep || budget == 0 {
            return Ok(vec![(self.encode_llm_pair(query, passage, max_length, query_max_length, t)?, (0, passage.len()))]);
        }
        let head: Vec<u32> = t.bos.into_iter().chain(q.get_ids().iter().copied()).collect();
        Ok(Self::windows(&tokens, budget, stride.unwrap_or(budget / 2))
            .into_iter()
            .map(|(r, span)| (t.input(&[&head, &t.sep, &tokens.prefix, &tokens.ids[r]]), span))
            .collect())
    }

    /// Right-pad `items` to the longest one, rounded up to a multiple.
    pub(crate) fn pad_to_multiple(&self, items: &[&Encoded], multiple: usize) -> Batch {
        let longest = items.iter().map(|e| e.len()).max().unwrap_or(0);
        let cols = longest.div_ceil(multiple.max(1)) * multiple.max(1);
        let rows = items.len();
        let mut b = Batch {
            ids: Vec::with_capacity(rows * cols),
            type_ids: Vec::with_capacity(rows * cols),
            attention_mask: Vec::with_capacity(rows * cols),
            rows,
            cols,
        };
        for e in items {
            let pad = cols - e.len();
            b.ids.extend(e.ids.iter().copied().chain(std::iter::repeat_n(self.pad_id, pad)));
            b.type_ids.extend(e.type_ids.iter().copied().chain(std::iter::repeat_n(0, pad)));
            b.attention_mask.extend(std::iter::repeat_n(1, e.len()).chain(std::iter::repeat_n(0, pad)));
        }
        b
    }
}
