//! Training data as FlagEmbedding's `AbsRerankerTrainDataset` reads and
//! samples it:
//! - one JSON object per line: `{"query": str, "pos": [str], "neg": [str]}`,
//!   optionally `pos_scores` / `neg_scores` (knowledge distillation; dropped
//!   without it, as FlagEmbedding removes those columns), `prompt`,
//!   `query_prompt`, `passage_prompt`; other fields are ignored;
//! - a group per example: one random positive first, then
//!   `train_group_size - 1` negatives sampled without repetition, or from the
//!   negatives repeated `ceil((g - 1) / len(neg))` times when there are too
//!   few; the teacher scores of the same picks; the positive's text shuffled
//!   in thirds with probability `shuffle_ratio` when longer than 100
//!   characters;
//! - each (query, passage) tokenized with the query cut to
//!   `query_max_len + passage_max_len / 4` tokens, the passage to
//!   `passage_max_len + query_max_len / 2`, then `prepare_for_model`
//!   (`only_second`) to `query_max_len + passage_max_len`.
//!
//! The random picks come from [`Rng`] (SplitMix64, seeded): the same seed
//! gives the same groups here, but not Python's `random` picks — parity with
//! FlagEmbedding is for what is done with a group, and tests fix the group.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::tokenize::PairTokenizer;

/// One line of a training file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TrainExample {
    /// The query.
    pub query: String,
    /// Relevant passages (one is drawn per group).
    pub pos: Vec<String>,
    /// Negatives (`train_group_size - 1` are drawn per group).
    pub neg: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Teacher scores of `pos` (knowledge distillation).
    pub pos_scores: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Teacher scores of `neg`.
    pub neg_scores: Option<Vec<f64>>,
    /// The LLM rerankers' prompt for this example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Replaces `query_instruction_for_rerank` for this example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_prompt: Option<String>,
    /// Replaces `passage_instruction_for_rerank` for this example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage_prompt: Option<String>,
}

/// FlagEmbedding's `AbsRerankerDataArguments`, same names and defaults
/// (the CLI's flags, feature `clap`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DataArgs {
    /// Passages per query in a training group: one positive, the rest negatives.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub train_group_size: usize,
    /// Query tokens (the query is cut at query_max_len + passage_max_len / 4).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 32))]
    pub query_max_len: usize,
    /// Passage tokens (a pair is at most query_max_len + passage_max_len).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 128))]
    pub passage_max_len: usize,
    /// Distil from the examples' pos_scores / neg_scores (added to the loss).
    #[cfg_attr(feature = "clap", arg(long))]
    pub knowledge_distillation: bool,
    /// Probability of shuffling a long passage's thirds.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.0))]
    pub shuffle_ratio: f64,
    /// An instruction put before every query.
    #[cfg_attr(feature = "clap", arg(long))]
    pub query_instruction_for_rerank: Option<String>,
    /// How instruction and query join (two {}).
    #[cfg_attr(feature = "clap", arg(long, default_value = "{}{}"))]
    pub query_instruction_format: String,
    /// An instruction put before every passage.
    #[cfg_attr(feature = "clap", arg(long))]
    pub passage_instruction_for_rerank: Option<String>,
    /// How instruction and passage join (two {}).
    #[cfg_attr(feature = "clap", arg(long, default_value = "{}{}"))]
    pub passage_instruction_format: String,
}

impl Default for DataArgs {
    fn default() -> Self {
        DataArgs {
            train_group_size: 8,
            query_max_len: 32,
            passage_max_len: 128,
            knowledge_distillation: false,
            shuffle_ratio: 0.0,
            query_instruction_for_rerank: None,
            query_instruction_format: "{}{}".into(),
            passage_instruction_for_rerank: None,
            passage_instruction_format: "{}{}".into(),
        }
    }
}

impl DataArgs {
    /// The whole pair's token budget (`query_max_len + passage_max_len`).
    pub fn max_length(&self) -> usize {
        self.query_max_len + self.passage_max_len
    }

    pub(crate) fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if self.train_group_size < 2 {
            return bad(format!("train_group_size must be at least 2 (one positive and a negative), got {}", self.train_group_size));
        }
        if self.query_max_len == 0 || self.passage_max_len == 0 {
            return bad("query_max_len and passage_max_len must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.shuffle_ratio) {
            return bad(format!("shuffle_ratio must be in [0, 1], got {}", self.shuffle_ratio));
        }
        for f in [&self.query_instruction_format, &self.passage_instruction_format] {
            if f.matches("{}").count() != 2 {
                return bad(format!("an instruction format needs exactly two {{}} (instruction, text), got {f:?}"));
            }
        }
        Ok(())
    }
}

/// Python's `format.format(instruction, text)` for a format with two `{}`.
/// `\n` written as two characters means a newline, as FlagEmbedding's
/// `__post_init__` makes it.
fn apply_format(format: &str, instruction: &str, text: &str) -> String {
    let format = format.replace("\\n", "\n");
    let mut parts = format.splitn(3, "{}");
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    format!("{a}{instruction}{b}{text}{c}")
}

/// Read a training file's text: one example per non-blank line. Every line
/// is checked (a typed error names its number): at least one positive and
/// one negative, and with knowledge distillation a finite score per
/// passage; without it the scores are dropped.
pub fn read_jsonl(text: &str, args: &DataArgs) -> Result<Vec<TrainExample>> {
    let mut out = Vec::new();
    for (n, line) in crate::jsonl::lines(text) {
        let bad = |m: String| Error::InvalidInput(format!("training data line {n}: {m}"));
        let mut ex: TrainExample = serde_json::from_str(line)
            .map_err(|e| bad(format!("expected {{\"query\": str, \"pos\": [str], \"neg\": [str], ...}}: {e}")))?;
        if ex.pos.is_empty() {
            return Err(bad("\"pos\" is empty: each example needs a positive".into()));
        }
        if ex.neg.is_empty() {
            return Err(bad("\"neg\" is empty: each example needs at least one negative".into()));
        }
        if args.knowledge_distillation {
            for (name, scores, texts) in [("pos_scores", &ex.pos_scores, ex.pos.len()), ("neg_scores", &ex.neg_scores, ex.neg.len())] {
                let Some(s) = scores else {
                    return Err(bad(format!("\"{name}\" is missing: knowledge distillation needs a teacher score per passage")));
                };
                if s.len() != texts {
                    return Err(bad(format!("\"{name}\" has {} scores for {texts} passages", s.len())));
                }
                if s.iter().any(|x| !x.is_finite()) {
                    return Err(bad(format!("\"{name}\" holds a score that is not a finite number")));
                }
            }
        } else {
            ex.pos_scores = None;
            ex.neg_scores = None;
        }
        out.push(ex);
    }
    if out.is_empty() {
        return Err(Error::InvalidInput("the training data has no examples".into()));
    }
    Ok(out)
}

/// SplitMix64: a seeded, portable generator for the sampling (no `rand`
/// dependency: its features would be unified into Burn's copy and rebuild
/// it, for five lines of arithmetic).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// `k` distinct items of `pool` in random order (Python's `random.sample`).
    pub fn sample<T: Clone>(&mut self, pool: &[T], k: usize) -> Vec<T> {
        let mut v = pool.to_vec();
        let k = k.min(v.len());
        for i in 0..k {
            let j = i + self.below(v.len() - i);
            v.swap(i, j);
        }
        v.truncate(k);
        v
    }

    /// Fisher–Yates shuffle of `v`.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// One training group: the query and `train_group_size` passages, the
/// positive first (the cross-entropy target is index 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The query.
    pub query: String,
    /// The positive first, then the negatives.
    pub passages: Vec<String>,
    /// The teacher's scores of the same passages (knowledge distillation).
    pub teacher_scores: Option<Vec<f64>>,
    /// The LLM rerankers' prompt of this example (default: FlagEmbedding's).
    pub prompt: Option<String>,
}

/// FlagEmbedding's `_shuffle_text`: with probability `ratio`, a text longer
/// than 100 characters is cut in thirds (`len // 3 + 1` characters each),
/// shuffled and joined with spaces.
fn shuffle_text(text: &str, ratio: f64, rng: &mut Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    if ratio > 0.0 && chars.len() > 100 && rng.next_f64() < ratio {
        let size = chars.len() / 3 + 1;
        let mut parts: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
        rng.shuffle(&mut parts);
        parts.join(" ")
    } else {
        text.to_string()
    }
}

/// The group FlagEmbedding's `__getitem__` draws from `ex`.
pub fn sample_group(ex: &TrainExample, args: &DataArgs, rng: &mut Rng) -> Result<Group> {
    args.check()?;
    let g = args.train_group_size;
    let query = match &args.query_instruction_for_rerank {
        Some(default) => apply_format(&args.query_instruction_format, ex.query_prompt.as_deref().unwrap_or(default), &ex.query),
        None => ex.query.clone(),
    };
    if ex.pos.is_empty() || ex.neg.is_empty() {
        return Err(Error::InvalidInput("an example needs a positive and a negative".into()));
    }
    // The draws in FlagEmbedding's order: the positive, its shuffle, the negatives.
    let pos = rng.below(ex.pos.len());
    let mut passages = vec![shuffle_text(&ex.pos[pos], args.shuffle_ratio, rng)];
    let negs: Vec<usize> = if ex.neg.len() < g - 1 {
        let times = (g - 1).div_ceil(ex.neg.len());
        let pool: Vec<usize> = (0..times).flat_map(|_| 0..ex.neg.len()).collect();
        rng.sample(&pool, g - 1)
    } else {
        rng.sample(&(0..ex.neg.len()).collect::<Vec<_>>(), g - 1)
    };
    passages.extend(negs.iter().map(|&i| ex.neg[i].clone()));
    let teacher_scores = if args.knowledge_distillation {
        let (Some(ps), Some(ns)) = (&ex.pos_scores, &ex.neg_scores) else {
            return Err(Error::InvalidInput("knowledge distillation needs pos_scores and neg_scores".into()));
        };
        let mut t = vec![ps[pos]];
        t.extend(negs.iter().map(|&i| ns[i]));
        Some(t)
    } else {
        None
    };
    // As for the query: an example's own prompt replaces the instruction,
    // and only where an instruction is configured at all.
    if let Some(default) = &args.passage_instruction_for_rerank {
        let instruction = ex.passage_prompt.as_deref().unwrap_or(default);
        for p in &mut passages {
            *p = apply_format(&args.passage_instruction_format, instruction, p);
        }
    }
    Ok(Group { query, passages, teacher_scores, prompt: ex.prompt.clone() })
}

/// A checkpoint's tokenizer, building training pairs.
pub struct PairEncoder {
    tok: PairTokenizer,
}

impl PairEncoder {
    /// The tokenizer of checkpoint `ck`.
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<Self> {
        Ok(PairEncoder { tok: PairTokenizer::from_checkpoint(ck)? })
    }

    /// `create_one_example`: (input ids, token type ids) of one pair.
    pub fn encode(&self, query: &str, passage: &str, args: &DataArgs) -> Result<(Vec<u32>, Vec<u32>)> {
        let (q, p) = (args.query_max_len, args.passage_max_len);
        let e = self.tok.encode_pair_capped(query, passage, q + p, q + p / 4, p + q / 2)?;
        Ok((e.ids, e.type_ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
    }

    /// FlagEmbedding's `create_one_example` token for token
    /// (tests/fixtures/gen_finetune_data.py: two tokenizers, four length
    /// settings, queries and passages past their caps, empty texts).
    #[test]
    fn pairs_equal_flagembeddings_training_examples() {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixtures().join("finetune/train-pairs.json")).unwrap()).unwrap();
        let cases = json["cases"].as_array().unwrap();
        assert!(cases.len() >= 56);
        let mut encoders = std::collections::HashMap::new();
        let mut truncated = 0;
        for c in cases {
            let model = c["model"].as_str().unwrap();
            let enc = encoders
                .entry(model.to_string())
                .or_insert_with(|| PairEncoder::from_checkpoint(&Checkpoint::dir(fixtures().join(model))).unwrap());
            let args = DataArgs {
                query_max_len: c["query_max_len"].as_u64().unwrap() as usize,
                passage_max_len: c["passage_max_len"].as_u64().unwrap() as usize,
                ..DataArgs::default()
            };
            let (ids, types) = enc.encode(c["query"].as_str().unwrap(), c["passage"].as_str().unwrap(), &args).unwrap();
            let want: Vec<u32> = serde_json::from_value(c["input_ids"].clone()).unwrap();
            assert_eq!(ids, want, "{model} {} {}: {:?}", args.query_max_len, args.passage_max_len, c["query"]);
            let want_types: Vec<u32> = serde_json::from_value(c["token_type_ids"].clone()).unwrap();
            if !want_types.is_empty() {
                assert_eq!(types, want_types);
            }
            truncated += usize::from(ids.len() == args.max_length());
        }
        assert!(truncated >= 8, "the fixture must exercise the caps ({truncated} cases at max_length)");
    }

    fn line(q: &str, pos: &[&str], neg: &[&str]) -> String {
        serde_json::json!({"query": q, "pos": pos, "neg": neg}).to_string()
    }

    #[test]
    fn reading_checks_every_line() {
        let args = DataArgs::default();
        let good = format!("{}\n\n{}\n", line("q1", &["p"], &["n1", "n2"]), line("q2", &["p"], &["n"]));
        let ex = read_jsonl(&good, &args).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[1].neg, vec!["n".to_string()]);
        let err = |text: &str, args: &DataArgs| read_jsonl(text, args).unwrap_err().to_string();
        assert!(err(&format!("{}\n{{\"query\": 1}}", line("q", &["p"], &["n"])), &args).contains("line 2"));
        assert!(err(&line("q", &[], &["n"]), &args).contains("\"pos\" is empty"));
        assert!(err(&line("q", &["p"], &[]), &args).contains("\"neg\" is empty"));
        assert!(err("\n  \n", &args).contains("no examples"));
        // Scores: dropped without distillation, required and checked with it.
        let scored = r#"{"query": "q", "pos": ["p"], "neg": ["n1", "n2"], "pos_scores": [0.9], "neg_scores": [0.1, 0.2], "extra": 1}"#;
        assert_eq!(read_jsonl(scored, &args).unwrap()[0].pos_scores, None);
        let kd = DataArgs { knowledge_distillation: true, ..DataArgs::default() };
        assert_eq!(read_jsonl(scored, &kd).unwrap()[0].neg_scores, Some(vec![0.1, 0.2]));
        assert!(err(&line("q", &["p"], &["n"]), &kd).contains("\"pos_scores\" is missing"));
        let short = r#"{"query": "q", "pos": ["p"], "neg": ["n1", "n2"], "pos_scores": [0.9], "neg_scores": [0.1]}"#;
        assert!(err(short, &kd).contains("\"neg_scores\" has 1 scores for 2 passages"));
    }

    fn example(neg: usize) -> TrainExample {
        TrainExample {
            query: "q".into(),
            pos: vec!["p0".into(), "p1".into()],
            neg: (0..neg).map(|i| format!("n{i}")).collect(),
            pos_scores: Some(vec![10.0, 11.0]),
            neg_scores: Some((0..neg).map(|i| i as f64).collect()),
            prompt: None,
            query_prompt: None,
            passage_prompt: None,
        }
    }

    #[test]
    fn groups_are_sampled_as_flagembedding_does() {
        let args = DataArgs { train_group_size: 4, knowledge_distillation: true, ..DataArgs::default() };
        let mut rng = Rng::new(7);
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            // Enough negatives: g - 1 distinct ones; teacher scores follow the picks.
            let g = sample_group(&example(10), &args, &mut rng).unwrap();
            assert_eq!(g.passages.len(), 4);
            assert!(g.passages[0] == "p0" || g.passages[0] == "p1");
            firsts.insert(g.passages[0].clone());
            let negs: std::collections::HashSet<_> = g.passages[1..].iter().collect();
            assert_eq!(negs.len(), 3, "{:?}", g.passages);
            let t = g.teacher_scores.unwrap();
            assert_eq!(t[0], if g.passages[0] == "p0" { 10.0 } else { 11.0 });
            for (p, s) in g.passages[1..].iter().zip(&t[1..]) {
                assert_eq!(format!("n{s}"), *p);
            }
            // Too few: drawn from the negatives repeated ceil(3 / 2) = 2 times.
            let g = sample_group(&example(2), &args, &mut rng).unwrap();
            assert_eq!(g.passages.len(), 4);
            for n in ["n0", "n1"] {
                let k = g.passages[1..].iter().filter(|p| *p == n).count();
                assert!((1..=2).contains(&k), "{:?}", g.passages);
            }
        }
        assert_eq!(firsts.len(), 2, "both positives get picked");
        // The same seed, the same groups.
        let run = |seed| {
            let mut r = Rng::new(seed);
            (0..5).map(|_| sample_group(&example(10), &args, &mut r).unwrap()).collect::<Vec<_>>()
        };
        let (a, b) = (run(3), run(3));
        assert_eq!(a, b);
    }

    #[test]
    fn instructions_prompts_and_shuffling() {
        let mut rng = Rng::new(1);
        let args = DataArgs {
            train_group_size: 2,
            query_instruction_for_rerank: Some("Q: ".into()),
            passage_instruction_for_rerank: Some("P".into()),
            passage_instruction_format: "{}\\n{}".into(),
            ..DataArgs::default()
        };
        let mut ex = example(1);
        ex.pos = vec!["pos".into()];
        let g = sample_group(&ex, &args, &mut rng).unwrap();
        assert_eq!(g.query, "Q: q");
        assert_eq!(g.passages, vec!["P\npos".to_string(), "P\nn0".to_string()]);
        assert_eq!(g.teacher_scores, None);
        ex.query_prompt = Some("Query: ".into());
        ex.passage_prompt = Some("Doc".into());
        let g = sample_group(&ex, &args, &mut rng).unwrap();
        assert_eq!((g.query.as_str(), g.passages[0].as_str()), ("Query: q", "Doc\npos"));
        // An example's prompt alone changes nothing: FlagEmbedding applies it
        // only where an instruction is configured.
        let g = sample_group(&ex, &DataArgs { train_group_size: 2, ..DataArgs::default() }, &mut rng).unwrap();
        assert_eq!((g.query.as_str(), g.passages[0].as_str()), ("q", "pos"));

        // shuffle_ratio 1: a positive over 100 characters comes back as its
        // thirds (len / 3 + 1 characters) in some order, joined by spaces.
        let long: String = (0..101).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        ex.pos = vec![long.clone()];
        let shuffle = DataArgs { train_group_size: 2, shuffle_ratio: 1.0, ..DataArgs::default() };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let p = sample_group(&ex, &shuffle, &mut rng).unwrap().passages[0].clone();
            let mut parts: Vec<&str> = p.split(' ').collect();
            assert_eq!(parts.len(), 3);
            seen.insert(p.clone());
            parts.sort_by_key(|s| long.find(s).unwrap());
            assert_eq!(parts.concat(), long);
            assert_eq!(parts.iter().map(|s| s.len()).collect::<Vec<_>>(), vec![34, 34, 33]);
        }
        assert!(seen.len() > 1);
        ex.pos = vec!["x".repeat(100)];
        assert_eq!(sample_group(&ex, &shuffle, &mut rng).unwrap().passages[0], "x".repeat(100));
        // Bad arguments are typed errors.
        assert!(sample_group(&ex, &DataArgs { train_group_size: 1, ..DataArgs::default() }, &mut rng).is_err());
        let bad = DataArgs { query_instruction_format: "{}".into(), ..DataArgs::default() };
        assert!(sample_group(&ex, &bad, &mut rng).unwrap_err().to_string().contains("two {}"));
    }
}
