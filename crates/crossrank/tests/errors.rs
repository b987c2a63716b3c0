//! Bad model files and bad requests give typed errors, never panics.

mod common;

use std::path::Path;

use common::fixtures;
use crossrank::{Checkpoint, Device, Error, Reranker, ScoreOptions};

/// A copy of the BERT fixture to break in one way.
fn broken(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join("bert-tiny")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    edit(tmp.path());
    tmp
}

fn load(dir: &Path) -> Result<Reranker, Error> {
    Reranker::load(&Checkpoint::dir(dir), &Device::flex())
}

fn shard(dir: &Path) -> std::path::PathBuf {
    dir.join("model-00001-of-00002.safetensors")
}

#[test]
fn missing_weights_file() {
    let d = broken(|d| std::fs::remove_file(shard(d)).unwrap());
    let e = load(d.path()).err().unwrap();
    assert!(matches!(e, Error::MissingFile { ref file, .. } if file == "model-00001-of-00002.safetensors"), "{e}");
    let d = broken(|d| {
        std::fs::remove_file(d.join("model.safetensors.index.json")).unwrap();
    });
    let e = load(d.path()).err().unwrap();
    assert!(matches!(e, Error::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn truncated_and_corrupt_safetensors() {
    let d = broken(|d| {
        let b = std::fs::read(shard(d)).unwrap();
        std::fs::write(shard(d), &b[..b.len() / 2]).unwrap();
    });
    let e = load(d.path()).err().unwrap();
    assert!(matches!(e, Error::Safetensors { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    let d = broken(|d| std::fs::write(shard(d), b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").unwrap());
    let e = load(d.path()).err().unwrap();
    assert!(matches!(e, Error::Safetensors { .. }), "{e}");
}

#[test]
fn shapes_that_contradict_the_config() {
    let d = broken(|d| {
        let c = std::fs::read_to_string(d.join("config.json")).unwrap();
        std::fs::write(d.join("config.json"), c.replace("\"intermediate_size\": 32", "\"intermediate_size\": 48")).unwrap();
    });
    let e = load(d.path()).err().unwrap();
    assert!(matches!(e, Error::ShapeMismatch { ref expected, ref actual, .. } if expected.contains(&48) && actual.contains(&32)), "{e}");
}

#[test]
fn unknown_architecture_and_bad_config() {
    let d = broken(|d| {
        let c = std::fs::read_to_string(d.join("config.json")).unwrap();
        std::fs::write(d.join("config.json"), c.replace("BertForSequenceClassification", "LlamaForCausalLM")).unwrap();
    });
    let e = load(d.path()).err().unwrap();
    assert!(matches!(e, Error::UnsupportedArchitecture(ref a) if a == "LlamaForCausalLM"), "{e}");
    let d = broken(|d| std::fs::write(d.join("config.json"), "{\"hidden_size\": ").unwrap());
    assert!(matches!(load(d.path()).err().unwrap(), Error::Config { .. }));
    let d = broken(|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    assert!(matches!(load(d.path()).err().unwrap(), Error::MissingFile { ref file, .. } if file == "tokenizer.json"));
    let d = broken(|d| std::fs::write(d.join("tokenizer.json"), "{}").unwrap());
    assert!(matches!(load(d.path()).err().unwrap(), Error::Tokenizer(_)));
}

#[test]
fn bad_requests() {
    let r = load(&fixtures().join("bert-tiny")).unwrap();
    let pairs = [("q", "p")];
    let zero_batch = ScoreOptions { batch_size: 0, ..Default::default() };
    assert!(matches!(r.compute_score(&pairs, &zero_batch), Err(Error::InvalidInput(_))));
    let zero_budget = ScoreOptions { max_batch_tokens: Some(0), ..Default::default() };
    assert!(matches!(r.compute_score(&pairs, &zero_budget), Err(Error::InvalidInput(_))));
    let zero_len = ScoreOptions { max_length: Some(0), ..Default::default() };
    assert!(matches!(r.compute_score(&pairs, &zero_len), Err(Error::InvalidInput(_))));
    // Past the 512 position embeddings: a typed error, not an out-of-bounds gather.
    let long = "word ".repeat(2000);
    let too_long = ScoreOptions { max_length: Some(2000), ..Default::default() };
    let e = r.compute_score(&[(long.as_str(), long.as_str())], &too_long).err().unwrap();
    assert!(matches!(e, Error::InvalidInput(ref m) if m.contains("position")), "{e}");
    // Nothing to score is not an error.
    assert_eq!(r.compute_score::<&str, &str>(&[], &Default::default()).unwrap(), Vec::<f32>::new());
}

/// Run `f` on another thread; a hang (what a FIFO did to the loader) fails
/// the test instead of stalling the suite.
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).ok());
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("loading hung")
}

#[cfg(unix)]
#[test]
fn special_and_oversized_files_are_refused_before_reading() {
    let fifo = |path: &Path| {
        std::fs::remove_file(path).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(path).status().unwrap().success());
    };
    // A FIFO as config.json and as a shard: opening one for reading blocks.
    for victim in ["config.json", "model-00001-of-00002.safetensors"] {
        let d = broken(|d| fifo(&d.join(victim)));
        let path = d.path().to_path_buf();
        let e = within_10s(move || load(&path).err().unwrap());
        assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("not a regular file"), "{victim}: {e}");
    }
    // A tokenizer.json that is a link to a device that never ends.
    let d = broken(|d| {
        std::fs::remove_file(d.join("tokenizer.json")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.join("tokenizer.json")).unwrap();
    });
    let path = d.path().to_path_buf();
    let e = within_10s(move || load(&path).err().unwrap());
    assert!(e.to_string().contains("not a regular file") && e.to_string().contains("tokenizer.json"), "{e}");
    // A JSON file past the size cap (sparse: nothing is written or read).
    let d = broken(|d| std::fs::File::create(d.join("tokenizer.json")).unwrap().set_len(65 << 20).unwrap());
    let e = load(d.path()).err().unwrap();
    assert!(e.to_string().contains("limit for a JSON file"), "{e}");
    // Links to regular files (a Hub snapshot) still load.
    let d = broken(|d| {
        let real = d.join("real-config.json");
        std::fs::rename(d.join("config.json"), &real).unwrap();
        std::os::unix::fs::symlink(&real, d.join("config.json")).unwrap();
    });
    load(d.path()).unwrap();
}
