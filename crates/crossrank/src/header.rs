//! safetensors headers, read and written here rather than by the
//! safetensors crate: its validation counts a tensor's size in *bits* in a
//! `usize`, which on wasm32 overflows for any tensor over 512 MB — the f32
//! word-embedding table of an XLM-RoBERTa reranker (768 MB) could not be
//! loaded in a browser at all. Sizes here are 64-bit; the rules are the
//! crate's (tensors contiguous from offset 0 in offset order, each exactly
//! its shape's bytes, a header of at most 100 MB).

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorInfo};

/// The largest header accepted (the safetensors crate's limit).
pub(crate) const MAX_HEADER: u64 = 100_000_000;

/// A parsed header.
#[derive(Debug)]
pub(crate) struct Header {
    /// Bytes of the JSON (the data starts at `8 + json_len`).
    pub(crate) json_len: usize,
    /// Tensors in offset order.
    pub(crate) tensors: Vec<(String, TensorInfo)>,
    /// Bytes of the data section the tensors cover.
    pub(crate) data_len: u64,
    /// `__metadata__` (string to string, as safetensors defines it).
    pub(crate) metadata: HashMap<String, String>,
}

/// The JSON length a file starting with `buf` declares (its first 8
/// bytes), unchecked; `None` before 8 bytes.
pub(crate) fn json_len(buf: &[u8]) -> Option<u64> {
    buf.first_chunk::<8>().map(|b| u64::from_le_bytes(*b))
}

/// The header at the start of `buf`; `Ok(None)` when `buf` ends before it
/// does (more bytes are needed). Errors say what is wrong, for the
/// caller's "not a safetensors file or a corrupt header (…)".
pub(crate) fn read(buf: &[u8]) -> Result<Option<Header>, String> {
    let Some(len) = json_len(buf) else {
        return Ok(None);
    };
    if len > MAX_HEADER {
        return Err(format!("a {len}-byte header, more than {MAX_HEADER}"));
    }
    let Some(json) = buf.get(8..8 + len as usize) else {
        return Ok(None);
    };
    let raw: HashMap<String, serde_json::Value> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let mut tensors = Vec::with_capacity(raw.len());
    let mut metadata = HashMap::new();
    for (name, v) in raw {
        if name == "__metadata__" {
            metadata = serde_json::from_value::<HashMap<String, String>>(v).map_err(|e| format!("__metadata__: {e}"))?;
        } else {
            let info: TensorInfo = serde_json::from_value(v).map_err(|e| format!("tensor {name}: {e}"))?;
            tensors.push((name, info));
        }
    }
    tensors.sort_by(|a, b| a.1.data_offsets.cmp(&b.1.data_offsets).then_with(|| a.0.cmp(&b.0)));
    let mut at = 0u64;
    for (name, info) in &tensors {
        let (s, e) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        if s != at || e < s {
            return Err(format!("tensor {name}: offsets {s}..{e} leave a gap or overlap (expected a start of {at})"));
        }
        let bits = info.shape.iter().try_fold(info.dtype.bitsize() as u64, |acc, &d| acc.checked_mul(d as u64));
        if bits.is_none_or(|b| b % 8 != 0 || b / 8 != e - s) {
            return Err(format!("tensor {name}: shape {:?} of {:?} does not match its {} bytes", info.shape, info.dtype, e - s));
        }
        at = e;
    }
    Ok(Some(Header { json_len: len as usize, tensors, data_len: at, metadata }))
}

/// The JSON of a header for `tensors` (offsets as given) and `metadata`.
pub(crate) fn write(tensors: &[(String, TensorInfo)], metadata: &HashMap<String, String>) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), serde_json::to_value(metadata).expect("a string map serializes"));
    for (name, info) in tensors {
        map.insert(name.clone(), serde_json::to_value(info).expect("a TensorInfo serializes"));
    }
    serde_json::to_vec(&map).expect("JSON values serialize")
}

/// A tensor's description (for [`write`]).
pub(crate) fn info(dtype: Dtype, shape: &[usize], data_offsets: (usize, usize)) -> TensorInfo {
    TensorInfo { dtype, shape: shape.to_vec(), data_offsets }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> Vec<u8> {
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(json.as_bytes());
        b
    }

    #[test]
    fn sizes_are_64_bit_and_the_rules_are_safetensors() {
        // 192 M f32 values (768 MB, 6.1e9 bits): past a 32-bit bit count.
        let h = read(&file(r#"{"w":{"dtype":"F32","shape":[250002,768],"data_offsets":[0,768006144]},"__metadata__":{"a":"b"}}"#))
            .unwrap()
            .unwrap();
        assert_eq!(h.data_len, 768006144);
        assert_eq!(h.tensors.len(), 1);
        assert!(read(&file(r#"{"__metadata__":{"a":1}}"#)).unwrap_err().contains("__metadata__"));
        assert!(read(&file(r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#)).unwrap_err().contains("does not match"));
        assert!(read(&file(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#)).unwrap_err().contains("gap"));
        assert!(read(&file(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#)).is_err());
        let huge = r#"{"w":{"dtype":"F32","shape":[18446744073709551615,4],"data_offsets":[0,4]}}"#;
        assert!(read(&file(huge)).is_err());
        assert!(read(&file("{]")).is_err());
        assert!(read(&u64::MAX.to_le_bytes()).unwrap_err().contains("header"));
        // Too short: more bytes needed.
        assert!(read(&file("{}")[..5]).unwrap().is_none());
        assert!(read(&file(r#"{"w":{}}"#)[..10]).unwrap().is_none());
        assert_eq!(read(&file("{}")).unwrap().unwrap().tensors.len(), 0);
    }
}
