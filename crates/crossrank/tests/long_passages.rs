//! `long_passages: maxp` (windows of a long passage, best one kept) against
//! `truncate` (FlagEmbedding's behaviour), on every fixture architecture.

mod common;

use common::{all_cases, fixtures};
use crossrank::{Checkpoint, Device, LongPassages, Reranker, ScoreOptions};

const MODELS: [&str; 4] = ["bert-tiny", "xlmr-tiny", "gemma-tiny", "minicpm-layerwise-tiny"];

fn load(model: &str) -> Reranker {
    Reranker::load(&Checkpoint::dir(fixtures().join(model)), &Device::flex()).unwrap()
}

fn maxp(opts: &ScoreOptions, stride: Option<usize>) -> ScoreOptions {
    ScoreOptions { long_passages: LongPassages::Maxp, passage_stride: stride, ..opts.clone() }
}

#[test]
fn a_passage_that_fits_scores_exactly_as_truncate() {
    for model in MODELS {
        let r = load(model);
        let (pairs, cases) = all_cases(model);
        for (opts, _) in cases {
            let truncate = r.compute_score_layers(&pairs, &opts).unwrap().remove(0);
            let windows = r.encode_windows(&pairs, &maxp(&opts, None)).unwrap();
            let whole = r.encode(&pairs, &opts).unwrap();
            let passages = r.compute_passage_scores(&pairs, &maxp(&opts, None)).unwrap().remove(0);
            let mut at = 0;
            for (i, ((q, p), best)) in pairs.iter().zip(&passages).enumerate() {
                // The first window of every pair is the truncated input, so
                // maxp never scores below truncate.
                assert_eq!(windows.items[at], whole[i], "{model} pair {i}: first window");
                at += best.windows;
                assert!(best.score >= truncate[i], "{model} pair {i}: {} < {}", best.score, truncate[i]);
                // Fits: the input is the same with no length limit on the
                // passage (the query keeps its own limit).
                let qmax = opts.query_max_length.unwrap_or(opts.max_length / 4 * 3 + opts.max_length % 4 * 3 / 4);
                let unlimited = ScoreOptions { max_length: 100_000, query_max_length: Some(qmax), ..opts.clone() };
                let fits = r.encode(&[(q, p)], &unlimited).ok() == Some(r.encode(&[(q, p)], &opts).unwrap());
                if fits {
                    // Bit for bit: the same input, the same forward pass.
                    assert_eq!(best.windows, 1, "{model} pair {i}");
                    assert_eq!(best.score.to_bits(), truncate[i].to_bits(), "{model} pair {i}");
                    assert_eq!(best.span, Some((0, p.len())), "{model} pair {i}");
                }
            }
            assert_eq!(at, windows.items.len(), "{model}: windows accounted for");
        }
    }
}

/// ~1400 tokens of real-looking text with `needle` after the 600th token.
fn long_passage(needle: &str) -> (String, usize) {
    let filler = "The kernel schedules processes on every available processor and keeps a run queue for each one of them. ";
    let mut text = filler.repeat(30);
    let at = text.len();
    text.push_str(needle);
    text.push(' ');
    text.push_str(&filler.repeat(30));
    (text, at)
}

#[test]
fn maxp_scores_every_window_and_keeps_the_best_with_its_span() {
    let needle = "Pandas eat bamboo almost exclusively.";
    let (passage, needle_at) = long_passage(needle);
    let query = "what do pandas eat";
    for model in MODELS {
        let r = load(model);
        let opts = ScoreOptions { max_length: 512, ..Default::default() };
        let truncate = r.compute_score(&[(query, passage.as_str())], &opts).unwrap()[0];
        for stride in [None, Some(100), Some(1000)] {
            let o = maxp(&opts, stride);
            let w = r.encode_windows(&[(query, passage.as_str())], &o).unwrap();
            let n = w.items.len();
            let lens: Vec<usize> = w.items.iter().map(|e| e.len()).collect();
            assert!(n >= 3 || stride == Some(1000), "{model} stride {stride:?}: {n} windows of {lens:?} for ~1400 tokens");
            // The first window is the truncated input; every window is as
            // long (the last one ends at the passage's end).
            assert_eq!(w.items[0], r.encode(&[(query, passage.as_str())], &opts).unwrap()[0], "{model}");
            assert!(lens.iter().all(|&l| l == lens[0]), "{model}: window lengths {lens:?}");
            // Scored alone, window by window, and all at once: the best is
            // the maximum, and its span is where it came from.
            let cutoffs = r.cutoff_layers(&o).unwrap();
            let alone: Vec<f32> = w.items.iter().map(|e| r.score_encoded(&[e], &cutoffs).unwrap().remove(0)[0]).collect();
            let best = r.compute_passage_scores(&[(query, passage.as_str())], &o).unwrap().remove(0).remove(0);
            let want = alone.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!((best.score - want).abs() < 1e-5, "{model}: {} vs max {want}", best.score);
            assert_eq!(best.windows, n);
            assert!(best.score >= truncate - 1e-6);
            let (a, b) = best.span.unwrap();
            assert!(a < b && b <= passage.len() && passage.is_char_boundary(a) && passage.is_char_boundary(b), "{model}: span {a}..{b}");
            // Spans of all windows cover the passage, including the needle
            // (past token 512, so truncate never sees it).
            let spans: Vec<(usize, usize)> = (0..n)
                .map(|k| {
                    let mut scores = vec![-1e30; n];
                    scores[k] = 0.0;
                    w.best(&scores, false).unwrap()[0].span.unwrap()
                })
                .collect();
            assert_eq!(spans[0].0, 0, "{model}");
            // (XLM-R gives the trailing space a token of its own.)
            assert!(spans[n - 1].1 >= passage.trim_end().len(), "{model}: last window ends at {}", spans[n - 1].1);
            if stride != Some(1000) {
                for pair in spans.windows(2) {
                    assert!(pair[1].0 <= pair[0].1, "{model}: windows {pair:?} leave a gap");
                }
                assert!(spans.iter().any(|&(s, e)| s <= needle_at && needle_at + needle.len() <= e), "{model}: no window holds the needle");
            }
            assert!(spans[0].1 < needle_at, "{model}: the needle fits in the first window; the test needs it past max_length");
        }
    }
}

#[test]
fn the_option_is_read_everywhere_and_stride_zero_is_an_error() {
    let o: ScoreOptions = serde_json::from_str(r#"{"longPassages": "maxp", "passageStride": 64}"#).unwrap();
    assert_eq!((o.long_passages, o.passage_stride), (LongPassages::Maxp, Some(64)));
    let o: ScoreOptions = serde_json::from_str(r#"{"long_passages": "truncate"}"#).unwrap();
    assert_eq!(o.long_passages, LongPassages::Truncate);
    assert!(serde_json::from_str::<ScoreOptions>(r#"{"longPassages": "firstp"}"#).is_err());
    let r = load("bert-tiny");
    let e = r.compute_score(&[("q", "p")], &ScoreOptions { passage_stride: Some(0), ..maxp(&Default::default(), None) }).unwrap_err();
    assert!(e.to_string().contains("passage_stride"), "{e}");
}
