//! `maxp`: a pair's windows, folded back into one score per pair (the best
//! window), and where that window lies in the passage in each front end's
//! string indices.

use super::sigmoid;
use crate::error::{Error, Result};
use crate::tokenize::Encoded;

/// A passage's score and, with `maxp`, the window that scored it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PassageScore {
    /// The best window's score (raw logit, or sigmoid with `normalize`).
    pub score: f32,
    /// `maxp`: the best window's span of the passage, as byte offsets
    /// (`start..end`); the whole passage when it fitted in one window.
    /// `None` with `truncate`.
    pub span: Option<(usize, usize)>,
    /// Windows scored for this passage (1 with `truncate`).
    pub windows: usize,
}

impl PassageScore {
    /// `span` in Unicode code points (how Python and JSON clients index).
    pub fn char_span(&self, passage: &str) -> Option<(usize, usize)> {
        self.span.map(|(a, b)| (char_index(passage, a), char_index(passage, b)))
    }
    /// `span` in UTF-16 code units (how JavaScript indexes strings).
    pub fn utf16_span(&self, passage: &str) -> Option<(usize, usize)> {
        let at = |i: usize| passage.get(..i).map_or(0, |s| s.encode_utf16().count());
        self.span.map(|(a, b)| (at(a), at(b)))
    }
    /// The best window in code points, as the CLI reports it.
    pub fn char_window(&self, passage: &str) -> Option<Window> {
        self.char_span(passage).map(|(start, end)| Window { start, end, windows: self.windows })
    }
    /// The best window in UTF-16 code units, as JavaScript reports it.
    pub fn utf16_window(&self, passage: &str) -> Option<Window> {
        self.utf16_span(passage).map(|(start, end)| Window { start, end, windows: self.windows })
    }
}

/// A front end's report of a passage's best window: `start..end` in that
/// front end's string indices, and how many windows were scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    /// Where the best window starts.
    pub start: usize,
    /// Where it ends (exclusive).
    pub end: usize,
    /// Windows scored for the passage.
    pub windows: usize,
}

fn char_index(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(0, |s| s.chars().count())
}

/// The inputs of a batch of pairs, several per pair with `maxp`: run
/// `items` through the model (in any batches, mixed with other requests'),
/// then [`PassageWindows::best`] gives each pair its score.
pub struct PassageWindows {
    /// Every window's input (the caller may take them to run elsewhere).
    pub items: Vec<Encoded>,
    owner: Vec<usize>,
    spans: Vec<(usize, usize)>,
    pairs: usize,
    maxp: bool,
}

impl PassageWindows {
    /// `truncate`: one input per pair, each its own window.
    pub(super) fn whole(items: Vec<Encoded>) -> Self {
        let n = items.len();
        PassageWindows { owner: (0..n).collect(), spans: vec![(0, 0); n], items, pairs: n, maxp: false }
    }

    /// `maxp`: no window yet for `pairs` pairs ([`PassageWindows::push`] adds them).
    pub(super) fn maxp(pairs: usize) -> Self {
        PassageWindows { items: Vec::new(), owner: Vec::new(), spans: Vec::new(), pairs, maxp: true }
    }

    /// A window of pair `pair` spanning `span` of its passage.
    pub(super) fn push(&mut self, pair: usize, item: Encoded, span: (usize, usize)) {
        self.items.push(item);
        self.owner.push(pair);
        self.spans.push(span);
    }

    /// The pairs these windows came from.
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// Each pair's best window, given one raw logit per item (in `items`
    /// order), sigmoid-mapped with `normalize`. A non-finite logit fails
    /// with its pair's index. Ties keep the earliest window.
    pub fn best(&self, logits: &[f32], normalize: bool) -> Result<Vec<PassageScore>> {
        if logits.len() != self.owner.len() {
            return Err(Error::InvalidInput(format!("{} scores for {} windows", logits.len(), self.owner.len())));
        }
        let mut out: Vec<Option<PassageScore>> = vec![None; self.pairs];
        for ((&pair, &span), &s) in self.owner.iter().zip(&self.spans).zip(logits) {
            if !s.is_finite() {
                return Err(Error::NonFinite { index: pair, value: s });
            }
            let s = if normalize { sigmoid(s) } else { s };
            let slot = &mut out[pair];
            let windows = slot.map_or(0, |b| b.windows) + 1;
            match slot {
                Some(b) if b.score >= s => b.windows = windows,
                _ => *slot = Some(PassageScore { score: s, span: self.maxp.then_some(span), windows }),
            }
        }
        out.into_iter().enumerate().map(|(i, b)| b.ok_or_else(|| Error::InvalidInput(format!("pair {i} has no window")))).collect()
    }
}
