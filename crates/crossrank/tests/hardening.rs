//! Hostile checkpoints and inputs (issue 13): each case here panicked,
//! aborted, hung, answered silently wrong or lost the user's files before.
//! Every one must now be a typed error — or the right answer.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::fixtures;
use crossrank::quantize::quantize_checkpoint;
use crossrank::{Checkpoint, Device, Embedder, Error, Reranker, ScoreOptions, WeightDtype};
use safetensors::tensor::{Dtype, TensorView};

/// A copy of fixture `model` (links followed), edited by `edit`.
fn copy_of(model: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join(model)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    edit(tmp.path());
    tmp
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn load(dir: &Path) -> Result<Reranker, Error> {
    Reranker::load(&Checkpoint::dir(dir), &Device::flex())
}

/// Rewrite the safetensors file `file` of `dir`: `edit` gets every tensor as
/// (dtype, shape, bytes) by name.
fn edit_tensors(dir: &Path, file: &str, edit: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Which shard of a sharded fixture holds `tensor`.
fn shard_of(dir: &Path, tensor: &str) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    index["weight_map"][tensor].as_str().unwrap().to_string()
}

fn config_error(e: Error, field: &str) {
    assert!(matches!(e, Error::Config { .. }) && e.to_string().contains(field), "{field}: {e}");
}

#[test]
fn configs_that_would_allocate_without_bound_fail_first() {
    type Edit = (&'static str, &'static str, serde_json::Value);
    let cases: Vec<Edit> = vec![
        ("gemma-tiny", "head_dim", 100_000_000.into()),
        ("gemma-tiny", "head_dim", (1u64 << 63).into()),
        ("gemma-tiny", "head_dim", 7.into()),
        ("gemma-tiny", "num_hidden_layers", 0.into()),
        ("gemma-tiny", "num_key_value_heads", 0.into()),
        ("gemma-tiny", "rms_norm_eps", (-1.0).into()),
        ("gemma-tiny", "rms_norm_eps", 0.0.into()),
        ("gemma-tiny", "rope_theta", 0.0.into()),
        ("gemma-tiny", "vocab_size", (1u64 << 40).into()),
        ("gemma-tiny", "max_position_embeddings", 0.into()),
        ("minicpm-layerwise-tiny", "scale_emb", 1e300.into()),
        ("minicpm-layerwise-tiny", "num_hidden_layers", 0.into()),
        ("bert-tiny", "layer_norm_eps", 0.0.into()),
        ("bert-tiny", "num_hidden_layers", 100_000.into()),
        ("bert-tiny", "max_position_embeddings", (1u64 << 62).into()),
        ("xlmr-tiny", "intermediate_size", (1u64 << 40).into()),
    ];
    for (model, field, value) in cases {
        let d = copy_of(model, |d| edit_config(d, |c| c[field] = value.clone()));
        let e = load(d.path()).err().unwrap_or_else(|| panic!("{model} {field}={value} loaded"));
        config_error(e, field);
    }
}

#[test]
fn llm_sequences_are_capped_at_the_models_positions() {
    let d = copy_of("gemma-tiny", |d| edit_config(d, |c| c["max_position_embeddings"] = 64.into()));
    let r = load(d.path()).unwrap();
    assert_eq!(r.max_input_tokens(), 64);
    let long = "word ".repeat(500);
    let e = r.compute_score(&[("q", long.as_str())], &ScoreOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("at most 64")), "{e}");
    // The transformers default (8192) when the config is silent, and a
    // 50k-token passage with a huge max_length is an error, not a 5 GB mask.
    let d = copy_of("gemma-tiny", |d| edit_config(d, |c| drop(c.as_object_mut().unwrap().remove("max_position_embeddings"))));
    let r = load(d.path()).unwrap();
    assert_eq!(r.max_input_tokens(), 8192);
    let huge = "word ".repeat(50_000);
    let opts = ScoreOptions { max_length: Some(1 << 20), ..Default::default() };
    let e = r.compute_score(&[("q", huge.as_str())], &opts).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("at most 8192")), "{e}");
}

#[test]
fn extreme_max_lengths_do_not_overflow() {
    for model in ["bert-tiny", "gemma-tiny"] {
        let r = load(&fixtures().join(model)).unwrap();
        let pairs = [("what is a panda?", "The giant panda is a bear species endemic to China.")];
        let normal = r.compute_score(&pairs, &ScoreOptions::default()).unwrap();
        for opts in [
            ScoreOptions { max_length: Some(usize::MAX), ..Default::default() },
            ScoreOptions { max_length: Some(usize::MAX), query_max_length: Some(usize::MAX), ..Default::default() },
            ScoreOptions { max_length: Some(usize::MAX), query_max_length: Some(8), ..Default::default() },
            ScoreOptions { max_length: Some(512), query_max_length: Some(usize::MAX), ..Default::default() },
        ] {
            let s = r.compute_score(&pairs, &opts).unwrap();
            if opts.query_max_length != Some(8) {
                assert_eq!(s, normal, "{model} {opts:?}");
            }
        }
    }
}

#[test]
fn token_ids_outside_the_vocabulary_are_errors() {
    // A tokenizer with one more added token than the weights have rows.
    let d = copy_of("bert-tiny", |d| {
        let path = d.join("tokenizer.json");
        let mut t: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        t["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
            "id": 30522, "content": "[EXTRA]", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }));
        std::fs::write(&path, serde_json::to_vec(&t).unwrap()).unwrap();
    });
    let r = load(d.path()).unwrap();
    let e = r.compute_score(&[("ok", "fine"), ("a [EXTRA] b", "c")], &ScoreOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("input 1") && m.contains("30522") && m.contains("[EXTRA]")), "{e}");
    // BERT with a single segment type: a pair's second segment is type 1.
    let d = copy_of("bert-tiny", |d| {
        edit_config(d, |c| c["type_vocab_size"] = 1.into());
        let name = "bert.embeddings.token_type_embeddings.weight";
        let file = shard_of(d, name);
        edit_tensors(d, &file, |t| {
            let (_, shape, bytes) = t.get_mut(name).unwrap();
            bytes.truncate(bytes.len() / shape[0]);
            shape[0] = 1;
        });
    });
    let r = load(d.path()).unwrap();
    let e = r.compute_score(&[("q", "p")], &ScoreOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("type_vocab_size 1")), "{e}");
}

#[test]
fn empty_encodings_are_errors() {
    let d = copy_of("bert-tiny", |d| {
        let path = d.join("tokenizer.json");
        let mut t: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        t["post_processor"] = serde_json::Value::Null;
        std::fs::write(&path, serde_json::to_vec(&t).unwrap()).unwrap();
    });
    let r = load(d.path()).unwrap();
    let e = r.compute_score(&[("a", "b"), ("", "")], &ScoreOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("input 1") && m.contains("no tokens")), "{e}");
    let emb = Embedder::load(&Checkpoint::dir(d.path()), &Device::flex()).unwrap();
    let e = emb.embed(&["x", ""], &Default::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("no tokens")), "{e}");
}

#[test]
fn non_finite_scores_are_errors_naming_the_input() {
    let d = copy_of("bert-tiny", |d| {
        let file = shard_of(d, "classifier.bias");
        edit_tensors(d, &file, |t| {
            let (_, _, bytes) = t.get_mut("classifier.bias").unwrap();
            bytes.copy_from_slice(&f32::NAN.to_le_bytes());
        });
    });
    let r = load(d.path()).unwrap();
    let e = r.compute_score(&[("q", "p")], &ScoreOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 0, .. }), "{e}");
    let e = r.rerank("q", &["a", "b"], None, &ScoreOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
}

#[test]
fn a_tensor_in_two_shards_is_refused() {
    let d = copy_of("bert-tiny", |d| {
        let name = "classifier.bias";
        let home = shard_of(d, name);
        let other = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"].into_iter().find(|f| *f != home).unwrap();
        let bytes = std::fs::read(d.join(&home)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let v = st.tensor(name).unwrap();
        let copy = (v.dtype(), v.shape().to_vec(), vec![0u8; v.data().len()]);
        edit_tensors(d, other, |t| drop(t.insert(name.to_string(), copy)));
    });
    let e = load(d.path()).err().unwrap();
    assert!(
        matches!(e, Error::Safetensors { ref message, .. } if message.contains("classifier.bias") && message.contains("also in")),
        "{e}"
    );
}

#[test]
fn overflowing_quantized_shapes_are_errors() {
    let d = copy_of("bert-tiny", |d| {
        edit_tensors(d, "model-00001-of-00002.safetensors", |t| {
            t.insert("x.q8".into(), (Dtype::U32, vec![0, 1 << 60], vec![]));
            t.insert("x.qscale".into(), (Dtype::F16, vec![0, 1], vec![]));
        });
    });
    let e = load(d.path()).err().unwrap();
    assert!(matches!(e, Error::Safetensors { .. }), "{e}");
}

#[test]
fn layer_lists_for_no_pairs_have_one_list_per_layer() {
    let r = load(&fixtures().join("minicpm-layerwise-tiny")).unwrap();
    let opts = ScoreOptions { cutoff_layers: Some(vec![2, 4]), ..Default::default() };
    let out = r.compute_score_layers::<&str, &str>(&[], &opts).unwrap();
    assert_eq!(out, vec![Vec::<f32>::new(), Vec::new()]);
}

/// Long texts are tokenized from a prefix: the ids must be exactly those of
/// tokenizing the whole text, for every tokenizer family (WordPiece with
/// BERT's splitting, XLM-R's Unigram with Metaspace, Gemma's BPE without a
/// pre-tokenizer) and for text with and without whitespace near the cut.
#[test]
fn long_passages_keep_exactly_the_tokens_of_the_whole_text() {
    let words = "Reranking scores each (query, passage) pair — l'été, naïve café; 東京都の天気は晴れ。 \
                 emoji 🦀🚀 numbers 3.14159 and CamelCaseIdentifiers_with_underscores \t\n tabs";
    let spaced: String = words.repeat(120); // ~13 KB: under the 16 KB prefix cut, tokenized whole
    let solid: String = "abcdefghij-KLMNOPQRS.tuvwxyz_0123456789".repeat(400); // no whitespace at all
    let mut longer = spaced.clone();
    longer.push_str(&"tail text ".repeat(200_000)); // +2 MB: tokenized from a prefix
    let mut solid_longer = solid.clone();
    solid_longer.push_str(&"x".repeat(2 << 20));
    for model in ["bert-tiny", "xlmr-tiny", "gemma-tiny", "minicpm-layerwise-tiny"] {
        let r = load(&fixtures().join(model)).unwrap();
        for max_length in [64, 512] {
            let opts = ScoreOptions { max_length: Some(max_length), ..Default::default() };
            for (short, long) in [(&spaced, &longer), (&solid, &solid_longer)] {
                let whole = r.encode(&[("query", short.as_str())], &opts).unwrap();
                let cut = r.encode(&[("query", long.as_str())], &opts).unwrap();
                assert_eq!(whole, cut, "{model} max_length {max_length}");
                // And as the query.
                let whole = r.encode(&[(short.as_str(), "p")], &opts).unwrap();
                let cut = r.encode(&[(long.as_str(), "p")], &opts).unwrap();
                assert_eq!(whole, cut, "{model} query, max_length {max_length}");
            }
        }
    }
}

#[test]
fn quantize_never_overwrites_or_deletes_the_source() {
    let src = copy_of("bert-tiny", |_| {});
    let before: Vec<u8> = std::fs::read(src.path().join("tokenizer.json")).unwrap();
    let ck = Checkpoint::dir(src.path());
    // --out equal to --model, directly and through a link.
    let e = quantize_checkpoint(&ck, WeightDtype::Q8, src.path()).unwrap_err();
    assert!(e.to_string().contains("is the checkpoint being quantized"), "{e}");
    let links = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        let link = links.path().join("alias");
        std::os::unix::fs::symlink(src.path(), &link).unwrap();
        let e = quantize_checkpoint(&ck, WeightDtype::Q8, &link).unwrap_err();
        assert!(e.to_string().contains("is the checkpoint being quantized"), "{e}");
    }
    // An --out that contains the source would be replaced, source and all.
    let e = quantize_checkpoint(&ck, WeightDtype::Q8, src.path().parent().unwrap()).unwrap_err();
    assert!(e.to_string().contains("contains the checkpoint"), "{e}");
    // A directory of someone's other files is not replaced.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), "mine").unwrap();
    let e = quantize_checkpoint(&ck, WeightDtype::Q8, other.path()).unwrap_err();
    assert!(e.to_string().contains("no checkpoint"), "{e}");
    assert_eq!(std::fs::read_to_string(other.path().join("notes.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read(src.path().join("tokenizer.json")).unwrap(), before);
    load(src.path()).unwrap();
}

#[test]
fn quantize_replaces_a_previous_output_without_stale_files() {
    let ck = Checkpoint::dir(fixtures().join("bert-tiny"));
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("q");
    quantize_checkpoint(&ck, WeightDtype::Q4, &out).unwrap();
    // A stale shard + index from some earlier, sharded output.
    std::fs::write(out.join("model-00001-of-00002.safetensors"), b"stale").unwrap();
    std::fs::write(out.join("model.safetensors.index.json"), b"{\"weight_map\": {}}").unwrap();
    let report = quantize_checkpoint(&ck, WeightDtype::Q8, &out).unwrap();
    assert_eq!(report.files, vec!["model.safetensors".to_string()]);
    let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert!(!names.iter().any(|n| n.starts_with("model-0") || n.ends_with(".index.json")), "{names:?}");
    // Nothing is left beside the target either.
    let siblings: Vec<_> = std::fs::read_dir(parent.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("q")]);
    load(&out).unwrap();
    // A write that cannot happen says "cannot write", not "cannot read".
    let file = parent.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = quantize_checkpoint(&ck, WeightDtype::Q8, &file.join("sub")).unwrap_err();
    assert!(matches!(e, Error::Write { .. }) && e.to_string().contains("cannot write"), "{e}");
}

/// A source tensor named like a part of a quantized one (`W.qscale` beside
/// a `W` that gets quantized) would collide in the output: a typed error.
#[test]
fn quantize_name_collisions_are_errors() {
    let d = copy_of("bert-tiny", |d| {
        let w = "bert.encoder.layer.0.intermediate.dense.weight";
        let file = shard_of(d, w);
        edit_tensors(d, &file, |t| drop(t.insert(format!("{w}.qscale"), (Dtype::F16, vec![2], vec![0; 4]))));
    });
    let out = tempfile::tempdir().unwrap();
    let e = quantize_checkpoint(&Checkpoint::dir(d.path()), WeightDtype::Q8, out.path()).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("two tensors named") && m.contains(".qscale")), "{e}");
}

/// A Hub snapshot is a directory of links into blobs/; quantizing one must
/// copy what the links point to.
#[cfg(unix)]
#[test]
fn quantize_follows_links_of_a_hub_snapshot() {
    let blobs = tempfile::tempdir().unwrap();
    let snap = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join("bert-tiny")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        let blob = blobs.path().join(name);
        std::fs::copy(&p, &blob).unwrap();
        std::os::unix::fs::symlink(&blob, snap.path().join(name)).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    quantize_checkpoint(&Checkpoint::dir(snap.path()), WeightDtype::Q8, out.path()).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        let m = std::fs::symlink_metadata(out.path().join(f)).unwrap();
        assert!(m.is_file() && m.len() > 0, "{f} copied as a file");
    }
    load(out.path()).unwrap();
}
