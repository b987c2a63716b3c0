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
                let qmax = opts.query_max_length.unwrap_or(opts.max_length_or(512) / 4 * 3 + opts.max_length_or(512) % 4 * 3 / 4);
                let unlimited = ScoreOptions { max_length: Some(100_000), query_max_length: Some(qmax), ..opts.clone() };
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
        let opts = ScoreOptions { max_length: Some(512), ..Default::default() };
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

/// A BERT cross-encoder (bert-tiny's shapes and tokenizer) whose weights are
/// set by hand so that its score is relevance by construction: how much of
/// the input is the answer word "bamboo". Every token attends equally to
/// all (query and key weights zero); the value path carries one feature
/// that only "bamboo"'s embedding has; [CLS] reads it through the pooler
/// and the classifier, so score = tanh(f(fraction of "bamboo" tokens)),
/// 0 exactly without one and rising with it. Written to a temporary
/// directory (no checkpoint is committed).
fn answer_word_model() -> tempfile::TempDir {
    use safetensors::tensor::{Dtype, TensorView};
    let src = fixtures().join("bert-tiny");
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    const H: usize = 16;
    const ANSWER: usize = 15216; // "bamboo" in BERT's uncased vocabulary
    let vocab = 30522;
    // Every token: a fixed zero-mean pattern; "bamboo": plus +s on feature 0
    // and -s on feature 15 (still zero-mean, so LayerNorm keeps the sign).
    let mut words = Vec::with_capacity(vocab * H);
    for t in 0..vocab {
        for d in 0..H {
            let base = if d == 0 || d == H - 1 {
                0.0
            } else if d % 2 == 1 {
                1.0
            } else {
                -1.0
            };
            let answer = if t != ANSWER {
                0.0
            } else if d == 0 {
                4.0
            } else if d == H - 1 {
                -4.0
            } else {
                0.0
            };
            words.push(base + answer);
        }
    }
    let zeros = |n: usize| vec![0f32; n];
    let ones = |n: usize| vec![1f32; n];
    let unit = |rows: usize, cols: usize, at: &[(usize, usize, f32)]| {
        let mut m = vec![0f32; rows * cols];
        for &(r, c, v) in at {
            m[r * cols + c] = v;
        }
        m
    };
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
        ("bert.embeddings.word_embeddings.weight".into(), vec![vocab, H], words),
        ("bert.embeddings.position_embeddings.weight".into(), vec![512, H], zeros(512 * H)),
        ("bert.embeddings.token_type_embeddings.weight".into(), vec![2, H], zeros(2 * H)),
        ("bert.embeddings.LayerNorm.weight".into(), vec![H], ones(H)),
        ("bert.embeddings.LayerNorm.bias".into(), vec![H], zeros(H)),
        ("bert.pooler.dense.weight".into(), vec![H, H], unit(H, H, &[(0, 0, 1.0)])),
        ("bert.pooler.dense.bias".into(), vec![H], zeros(H)),
        ("classifier.weight".into(), vec![1, H], unit(1, H, &[(0, 0, 1.0)])),
        ("classifier.bias".into(), vec![1], zeros(1)),
    ];
    for l in 0..2 {
        let p = format!("bert.encoder.layer.{l}.");
        // Layer 0 averages feature 0 over the sequence into [CLS] (and every
        // token); layer 1 adds nothing.
        let (value, output) = if l == 0 { (vec![(0, 0, 1.0)], vec![(0, 0, 8.0), (H - 1, 0, -8.0)]) } else { (vec![], vec![]) };
        for (name, shape, data) in [
            ("attention.self.query.weight", vec![H, H], zeros(H * H)),
            ("attention.self.query.bias", vec![H], zeros(H)),
            ("attention.self.key.weight", vec![H, H], zeros(H * H)),
            ("attention.self.key.bias", vec![H], zeros(H)),
            ("attention.self.value.weight", vec![H, H], unit(H, H, &value)),
            ("attention.self.value.bias", vec![H], zeros(H)),
            ("attention.output.dense.weight", vec![H, H], unit(H, H, &output)),
            ("attention.output.dense.bias", vec![H], zeros(H)),
            ("attention.output.LayerNorm.weight", vec![H], ones(H)),
            ("attention.output.LayerNorm.bias", vec![H], zeros(H)),
            ("intermediate.dense.weight", vec![32, H], zeros(32 * H)),
            ("intermediate.dense.bias", vec![32], zeros(32)),
            ("output.dense.weight", vec![H, 32], zeros(32 * H)),
            ("output.dense.bias", vec![H], zeros(H)),
            ("output.LayerNorm.weight", vec![H], ones(H)),
            ("output.LayerNorm.bias", vec![H], zeros(H)),
        ] {
            t.push((format!("{p}{name}"), shape, data));
        }
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        t.into_iter().map(|(n, s, d)| (n, s, d.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let views: Vec<(String, TensorView)> =
        bytes.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    std::fs::write(dir.path().join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    dir
}

#[test]
fn maxp_finds_the_answer_past_token_512_that_truncate_cuts_off() {
    let dir = answer_word_model();
    let r = Reranker::load(&Checkpoint::dir(dir.path()), &Device::flex()).unwrap();
    let query = "what do pandas eat";
    // The oracle works: the answer scores, the rest does not.
    let s = r.compute_score(&[(query, "Pandas eat bamboo."), (query, "Pandas sleep a lot.")], &ScoreOptions::default()).unwrap();
    assert!(s[0] > 0.1 && s[1].abs() < 1e-4, "{s:?}");
    let needle = "Pandas eat bamboo almost exclusively.";
    let (passage, at) = long_passage(needle);
    let opts = ScoreOptions { max_length: Some(512), ..Default::default() };
    let truncate = r.compute_score(&[(query, passage.as_str())], &opts).unwrap()[0];
    assert!(truncate.abs() < 1e-4, "truncate sees only the first 512 tokens, no answer: {truncate}");
    for stride in [None, Some(37), Some(400)] {
        let best = r.compute_passage_scores(&[(query, passage.as_str())], &maxp(&opts, stride)).unwrap().remove(0).remove(0);
        let (a, b) = best.span.unwrap();
        assert!(best.score > 0.01, "stride {stride:?}: {best:?}");
        assert!(a <= at && at + needle.len() <= b, "stride {stride:?}: best window {a}..{b} does not hold the answer at {at}");
        // The answer is past the first window (token 512 and beyond).
        let first = r.encode(&[(query, passage.as_str())], &opts).unwrap()[0].len();
        assert_eq!(first, 512);
    }
}

/// FlagEmbedding's instructions (`query_instruction_for_rerank`,
/// `passage_instruction_for_rerank`, default format "{}{}"): the text is
/// put before the query / passage and tokenized with it, in whole inputs
/// and in maxp windows alike; an LLM reranker's default is "A: " / "B: ".
#[test]
fn instructions_are_text_before_the_query_and_the_passage() {
    let (long, _) = long_passage("pandas eat bamboo");
    let with = |q: Option<&str>, p: Option<&str>, o: &ScoreOptions| ScoreOptions {
        query_instruction: q.map(str::to_string),
        passage_instruction: p.map(str::to_string),
        ..o.clone()
    };
    for model in ["bert-tiny", "xlmr-tiny", "gemma-tiny", "minicpm-layerwise-tiny"] {
        let r = load(model);
        let llm = r.architecture().is_llm();
        let (qd, pd) = if llm { ("A: ", "B: ") } else { ("", "") };
        for base in [ScoreOptions { max_length: Some(64), ..Default::default() }, maxp(&ScoreOptions { max_length: Some(64), ..Default::default() }, None)] {
            for (q, p) in [("what do pandas eat?", "Bamboo, mostly."), ("what do pandas eat?", long.as_str())] {
                // The default instruction spelled out, or put into the text.
                let default = r.encode_windows(&[(q, p)], &base).unwrap().items;
                let explicit = r.encode_windows(&[(q, p)], &with(Some(qd), Some(pd), &base)).unwrap().items;
                let (q2, p2) = (format!("{qd}{q}"), format!("{pd}{p}"));
                let in_text = r.encode_windows(&[(q2.as_str(), p2.as_str())], &with(Some(""), Some(""), &base)).unwrap().items;
                assert_eq!(default, explicit, "{model}");
                if base.long_passages == LongPassages::Truncate {
                    assert_eq!(default, in_text, "{model}");
                }
                // Another instruction is the same as that text before each.
                let custom = r.encode_windows(&[(q, p)], &with(Some("Query: "), Some("Doc: "), &base)).unwrap().items;
                let (q3, p3) = (format!("Query: {q}"), format!("Doc: {p}"));
                let spelled = r.encode_windows(&[(q3.as_str(), p3.as_str())], &with(Some(""), Some(""), &base)).unwrap().items;
                if base.long_passages == LongPassages::Truncate {
                    assert_eq!(custom, spelled, "{model}");
                } else {
                    // Windows keep the instruction in each: every window starts as the first does.
                    assert_eq!(custom[0], spelled[0], "{model}");
                    assert!(custom.len() >= 1);
                }
                assert_ne!(custom, default, "{model}: the instruction changed nothing");
            }
        }
    }
}

/// `between` runs after every forward pass with the inputs scored so far;
/// an error from it stops scoring there and is what the call returns.
#[test]
fn between_passes_sees_progress_and_can_stop_scoring() {
    let r = load("bert-tiny");
    let (pairs, _) = all_cases("bert-tiny");
    let opts = ScoreOptions { batch_size: 2, ..Default::default() };
    let mut seen = Vec::new();
    let got = r.compute_passage_scores_between(&pairs, &opts, &mut |done, total| {
        seen.push((done, total));
        Ok(())
    });
    let want = r.compute_score(&pairs, &opts).unwrap();
    assert_eq!(got.unwrap()[0].iter().map(|p| p.score).collect::<Vec<_>>(), want);
    let n = pairs.len();
    assert_eq!(seen.len(), n.div_ceil(2));
    assert_eq!(seen.last(), Some(&(n, n)));
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    let mut passes = 0;
    let stopped = r.compute_passage_scores_between(&pairs, &opts, &mut |_, _| {
        passes += 1;
        if passes == 2 { Err(crossrank::Error::Interrupted) } else { Ok(()) }
    });
    assert!(matches!(stopped, Err(crossrank::Error::Interrupted)));
    assert_eq!(passes, 2);
}
