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
//!
//! Here: the tokenizer (loading, with the checks that keep a hostile
//! `tokenizer.json` from panicking `tokenizers`), plain and prefixed
//! encoding, only_second truncation, padding. Beside it: `pair` (the
//! cross-encoders' pairs and single texts), `llm` (the LLM rerankers'
//! template and pairs), `windows` (`maxp`: a long passage as windows).

mod llm;
mod pair;
mod qwen3;
mod windows;

use tokenizers::{Encoding, PostProcessor, Tokenizer, TruncationDirection};

use crate::batching::Batch;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

pub(crate) use llm::LlmTemplate;
pub(crate) use qwen3::Qwen3Template;

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

fn truncate(e: &mut Encoding, n: usize) {
    if e.len() > n {
        e.truncate(n, 0, TruncationDirection::Right);
        e.take_overflowing();
    }
}

/// transformers' `truncate_sequences` with `only_second`: how many of the
/// second part's `second` tokens stay so that `first + second` fits
/// `limit` — all of them when they fit, and also when the second part has
/// no more tokens than must go (transformers then logs an error and keeps
/// both whole).
fn only_second(first: usize, second: usize, limit: usize) -> usize {
    let total = first + second;
    if total > limit && second > total - limit { second - (total - limit) } else { second }
}

/// How a scored pair is built: FlagReranker's `max_length` (the whole
/// input) and `query_max_length` (the query alone), and the text put
/// before each query and passage (FlagEmbedding's instructions: "A: " and
/// "B: " for LLM rerankers by default, nothing for cross-encoders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits<'a> {
    pub(crate) max_length: usize,
    pub(crate) query_max_length: usize,
    pub(crate) query_prefix: &'a str,
    pub(crate) passage_prefix: &'a str,
}

/// One tokenized input, before padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Token type (segment) ids.
    pub type_ids: Vec<u32>,
}

impl Encoded {
    /// Tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
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

    /// The id of the vocabulary entry `token` (transformers'
    /// `convert_tokens_to_ids`; Qwen3-Reranker scores "yes" against "no").
    pub(crate) fn token_id(&self, token: &str) -> Result<u32> {
        self.tk.token_to_id(token).ok_or_else(|| Error::Tokenizer(format!("the tokenizer has no token {token:?}")))
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
