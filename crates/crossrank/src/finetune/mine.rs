//! Training data from a judged dataset: FlagEmbedding's hard-negative
//! mining (`scripts/hn_mine.py`) over any first stage's ranking — for each
//! judged query, its relevant documents as positives and `negative_number`
//! negatives drawn from its ranks `range_for_sampling` (skipping the very
//! top, where unjudged relevant documents sit), relevant ones excluded,
//! topped up from random documents when the range runs short, as
//! hn_mine.py does.

use std::collections::HashSet;

use super::data::{Rng, TrainExample};
use crate::error::{Error, Result};
use crate::eval::data::Dataset;
use crate::eval::metrics::Run;

/// How negatives are drawn (hn_mine.py's flags).
#[derive(Debug, Clone, PartialEq)]
pub struct MineArgs {
    /// Ranks `start..end` (0-based, end exclusive) of the first stage's
    /// list to draw from: hn_mine.py's `--range_for_sampling 2-200`.
    pub range: (usize, usize),
    /// Negatives per query (`--negative_number`).
    pub negative_number: usize,
    /// Seeds the negatives' draw.
    pub seed: u64,
}

impl Default for MineArgs {
    fn default() -> Self {
        MineArgs { range: (2, 200), negative_number: 15, seed: 42 }
    }
}

impl std::str::FromStr for MineArgs {
    type Err = Error;
    /// `START-END` (the range), as hn_mine.py writes it.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidInput(format!("range {s:?}: expected START-END with START < END, e.g. 2-200"));
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        if a >= b {
            return Err(bad());
        }
        Ok(MineArgs { range: (a, b), ..MineArgs::default() })
    }
}

/// One training example per judged query of `ds` with a relevant document
/// in the corpus, in the dataset's query order; negatives from `run`.
pub fn mine(ds: &Dataset, run: &Run, args: &MineArgs) -> Result<Vec<TrainExample>> {
    if args.negative_number == 0 {
        return Err(Error::InvalidInput("negative_number must be at least 1".into()));
    }
    if ds.corpus.len() < 2 {
        return Err(Error::InvalidInput("the corpus needs at least two documents".into()));
    }
    let mut rng = Rng::new(args.seed);
    let mut out = Vec::new();
    for (qid, query) in &ds.queries {
        let Some(judged) = ds.qrels.get(qid) else { continue };
        let mut relevant: Vec<&String> = judged.iter().filter(|(d, rel)| **rel > 0 && ds.corpus.get(d).is_some()).map(|(d, _)| d).collect();
        if relevant.is_empty() {
            continue;
        }
        relevant.sort();
        let is_relevant: HashSet<&str> = relevant.iter().map(|d| d.as_str()).collect();
        let ranked = run.get(qid).map(Vec::as_slice).unwrap_or(&[]);
        let (start, end) = (args.range.0.min(ranked.len()), args.range.1.min(ranked.len()));
        let pool: Vec<&str> =
            ranked[start..end].iter().map(|(d, _)| d.as_str()).filter(|d| !is_relevant.contains(d) && ds.corpus.get(d).is_some()).collect();
        let mut negs: Vec<&str> = if pool.len() > args.negative_number { rng.sample(&pool, args.negative_number) } else { pool };
        // hn_mine.py: too few candidates → random documents fill up.
        let available = ds.corpus.len() - is_relevant.len();
        let mut tries = 0;
        while negs.len() < args.negative_number.min(available) && tries < 100 * args.negative_number {
            tries += 1;
            let d = ds.corpus.id(rng.below(ds.corpus.len()));
            if !is_relevant.contains(d) && !negs.contains(&d) {
                negs.push(d);
            }
        }
        if negs.is_empty() {
            continue;
        }
        let text = |d: &str| ds.corpus.get(d).unwrap_or_default().to_string();
        out.push(TrainExample {
            query: query.clone(),
            pos: relevant.iter().map(|d| text(d)).collect(),
            neg: negs.iter().map(|d| text(d)).collect(),
            pos_scores: None,
            neg_scores: None,
            prompt: None,
            query_prompt: None,
            passage_prompt: None,
        });
    }
    Ok(out)
}

/// Examples as JSON Lines (the training file format).
pub fn to_jsonl(examples: &[TrainExample]) -> String {
    examples.iter().filter_map(|e| serde_json::to_string(e).ok()).map(|l| l + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::data::Corpus;
    use std::collections::HashMap;

    #[test]
    fn negatives_come_from_the_range_and_skip_relevant_documents() {
        let mut corpus = Corpus::default();
        for i in 0..30 {
            corpus.push(format!("d{i}"), format!("text {i}")).unwrap();
        }
        let qrels = HashMap::from([
            ("q1".to_string(), HashMap::from([("d0".to_string(), 1), ("d5".to_string(), 1), ("d9".to_string(), 0)])),
            ("q2".to_string(), HashMap::from([("d7".to_string(), 1)])),
            ("q3".to_string(), HashMap::from([("d8".to_string(), 0)])),
        ]);
        let ds = Dataset {
            corpus,
            queries: vec![("q1".into(), "first".into()), ("q2".into(), "second".into()), ("q3".into(), "no positive".into())],
            qrels,
            layout: "beir",
        };
        let ranked = |ids: &[usize]| ids.iter().enumerate().map(|(r, i)| (format!("d{i}"), 100.0 - r as f64)).collect::<Vec<_>>();
        let run = HashMap::from([("q1".to_string(), ranked(&[0, 1, 2, 5, 3, 4, 6, 9, 10, 11])), ("q2".to_string(), ranked(&[7, 1]))]);
        let args = MineArgs { range: (2, 8), negative_number: 3, seed: 1 };
        let ex = mine(&ds, &run, &args).unwrap();
        assert_eq!(ex.len(), 2, "q3 has no relevant document");
        assert_eq!(ex[0].pos, vec!["text 0", "text 5"]);
        // Ranks 2..8 are d2 d5 d3 d4 d6 d9: d5 is relevant; 3 of the other 5.
        let allowed = ["text 2", "text 3", "text 4", "text 6", "text 9"];
        assert_eq!(ex[0].neg.len(), 3);
        assert!(ex[0].neg.iter().all(|n| allowed.contains(&n.as_str())), "{:?}", ex[0].neg);
        // q2's range is empty: random documents, never its positive.
        assert_eq!(ex[1].neg.len(), 3);
        assert!(!ex[1].neg.contains(&"text 7".to_string()));
        let lines = to_jsonl(&ex);
        let back = super::super::data::read_jsonl(&lines, &Default::default()).unwrap();
        assert_eq!(back, ex);
        assert!("7-3".parse::<MineArgs>().is_err());
        assert_eq!("2-200".parse::<MineArgs>().unwrap().range, (2, 200));
    }
}
