//! Entry points for fuzzing (fuzz/ drives them with cargo-fuzz; the
//! `fuzz_smoke` test with a mutation loop on stable): each takes arbitrary
//! bytes through one input path of the loader and must return — an error
//! is fine, a panic, abort, hang or unbounded allocation is a bug. Not API.

use std::collections::HashMap;

use crate::checkpoint::Checkpoint;
use crate::files::shard_names;
use crate::models::Architecture;
use crate::tokenize::PairTokenizer;
use crate::weights::Weights;

/// A safetensors file (plain or `crossrank quantize`d): index it, then read
/// every tensor as the models do (f32, rows, quantized matrices).
pub fn safetensors(data: &[u8]) {
    let ck = Checkpoint::memory(HashMap::from([("model.safetensors".to_string(), data.to_vec())]));
    let Ok(w) = Weights::open(&ck) else { return };
    w.touch_all();
}

/// A `config.json`: the architecture, then every model's config parser.
pub fn config(data: &[u8]) {
    let _ = Architecture::from_config_json(data);
    crate::models::parse_configs(data, &burn::tensor::Device::flex());
}

/// A `model.safetensors.index.json`.
pub fn shard_index(data: &[u8]) {
    if let Ok(names) = shard_names(data) {
        for n in names {
            assert!(!n.starts_with('/') && !n.split('/').any(|s| s == ".."), "escaping shard name {n:?} accepted");
        }
    }
}

/// A `tokenizer.json`, then a pair and a long text through it.
pub fn tokenizer(data: &[u8]) {
    let Ok(t) = PairTokenizer::from_bytes(data, &[]) else { return };
    let _ = t.encode_pair("what is a panda?", "The giant panda is a bear.", crate::tokenize::Limits { max_length: 32, query_max_length: 24, query_prefix: "", passage_prefix: "" });
    let _ = t.encode_single(&"word ".repeat(5000), 16);
}

/// The CLI's JSON Lines inputs.
pub fn jsonl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::jsonl::pairs(text);
    let _ = crate::jsonl::texts(text);
}
