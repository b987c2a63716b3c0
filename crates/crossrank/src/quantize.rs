//! `crossrank quantize`: write a checkpoint with its weights stored as f16,
//! q8, q4 or q4-all, in three steps — plan what each tensor becomes,
//! encode it, write the files (sharded, each through a temporary file and a
//! rename, so an interrupted run never leaves a half-written weights file
//! under its final name). The result loads like any checkpoint, natively
//! and in the browser; the format is described in `crate::quant`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::quant::{Role, WeightDtype, plan};
use crate::weights::Weights;

/// What [`quantize_checkpoint`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeReport {
    pub dtype: WeightDtype,
    /// Tensors stored quantized (or in f16) / kept as they were.
    pub quantized: usize,
    pub kept: usize,
    /// Bytes of the weights files read and written.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The weights files written.
    pub files: Vec<String>,
}

/// Largest weights file [`quantize_checkpoint`] writes before sharding (a
/// browser holds each downloaded file as one ArrayBuffer).
pub const MAX_SHARD_BYTES: usize = 1 << 30;

/// Write `ck` quantized as `dtype` (f16, q8, q4 or q4-all) into the directory
/// `out`: every matrix the quantization plan names as `NAME.q8`/`NAME.q4` +
/// `NAME.qscale` (for f16: as a plain F16 tensor), every other tensor with
/// its original bytes, and all non-weight files (config, tokenizer, ...)
/// copied.
pub fn quantize_checkpoint(ck: &Checkpoint, dtype: WeightDtype, out: &Path) -> Result<QuantizeReport> {
    if dtype == WeightDtype::F32 {
        return Err(Error::InvalidInput("quantize writes f16, q8, q4 or q4-all, not f32".into()));
    }
    let weights = Weights::open(ck)?.with_dtype(dtype);
    let mut names: Vec<String> = weights.names().map(str::to_string).collect();
    names.sort();
    let (mut tensors, mut quantized, mut kept) = (Vec::new(), 0, 0);
    for name in names {
        let (encoded, changed) = encode(&weights, &name, plan_tensor(&weights, &name, dtype)?)?;
        if changed {
            quantized += 1;
        } else {
            kept += 1;
        }
        tensors.extend(encoded);
    }
    drop(weights);

    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let is_weights_file = |f: &str| f.ends_with(".safetensors") || f == "model.safetensors.index.json";
    let mut bytes_in = 0u64;
    for f in ck.files()? {
        if is_weights_file(&f) {
            // Counted, not read: the weights were memory-mapped.
            bytes_in += ck.file_len(&f)?;
        } else {
            write_atomically(&out.join(&f), |p| std::fs::write(p, ck.read(&f)?).map_err(|e| Error::io(p, e)))?;
        }
    }
    let (files, bytes_out) = write(out, &tensors, dtype)?;
    Ok(QuantizeReport { dtype, quantized, kept, bytes_in, bytes_out, files })
}

/// What one stored tensor becomes.
enum Step {
    /// Its original bytes.
    Keep,
    /// Rounded to f16 (values that do not fit keep the tensor as it is).
    Half,
    /// `bits`-bit values in blocks of `block`, one f16 scale each.
    Quant { bits: u32, block: usize },
}

/// The plan for `name`: parts of an already quantized tensor and tensors
/// that are not float stay; f16 (which keeps F16 tensors as they are) or
/// q8/q4 per [`plan`].
fn plan_tensor(w: &Weights, name: &str, dtype: WeightDtype) -> Result<Step> {
    let (dt, shape, _) = w.raw(name).ok_or_else(|| Error::MissingTensor { name: name.into() })?;
    let part_of_quantized = [".q8", ".q4", ".qscale"].iter().filter_map(|s| name.strip_suffix(s)).any(|b| w.is_quantized(b));
    if part_of_quantized || !matches!(dt, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
        return Ok(Step::Keep);
    }
    if w.is_half(name) {
        return Ok(if dt == Dtype::F16 { Step::Keep } else { Step::Half });
    }
    Ok(match plan(dtype, Role::of(name), shape) {
        Some((bits, block)) => Step::Quant { bits, block },
        None => Step::Keep,
    })
}

/// One tensor to write: name, dtype, shape, little-endian bytes.
type Encoded = (String, Dtype, Vec<usize>, Vec<u8>);

/// The tensors `name` is written as under `step`, and whether that
/// changed it.
fn encode(w: &Weights, name: &str, step: Step) -> Result<(Vec<Encoded>, bool)> {
    let (dt, shape, raw) = w.raw(name).ok_or_else(|| Error::MissingTensor { name: name.into() })?;
    let keep = || (vec![(name.to_string(), dt, shape.to_vec(), raw.to_vec())], false);
    Ok(match step {
        Step::Keep => keep(),
        Step::Half => match w.rows_f16(name, shape, 0, shape[0])? {
            Some(h) => (vec![(name.to_string(), Dtype::F16, shape.to_vec(), h.iter().flat_map(|x| x.to_le_bytes()).collect())], true),
            None => keep(),
        },
        Step::Quant { bits, block } => {
            let q = w.host_quant(name, shape, 0, shape[0], bits, block)?;
            let words = q.cols * bits as usize / 32;
            let packed =
                (format!("{name}.q{bits}"), Dtype::U32, vec![q.rows, words], q.packed.iter().flat_map(|x| x.to_le_bytes()).collect());
            let scales = (
                format!("{name}.qscale"),
                Dtype::F16,
                vec![q.rows, q.cols / q.block],
                q.scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
            );
            (vec![packed, scales], true)
        }
    })
}

/// Indices of `tensors` per shard: in order, a new shard before one would
/// pass [`MAX_SHARD_BYTES`].
fn shards(tensors: &[Encoded]) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0usize;
    for (i, t) in tensors.iter().enumerate() {
        let current = shards.len() - 1;
        if size + t.3.len() > MAX_SHARD_BYTES && !shards[current].is_empty() {
            shards.push(Vec::new());
            size = 0;
        }
        size += t.3.len();
        let current = shards.len() - 1;
        shards[current].push(i);
    }
    shards
}

/// Write the weights files (and the index when there are several); returns
/// their names and total size.
fn write(out: &Path, tensors: &[Encoded], dtype: WeightDtype) -> Result<(Vec<String>, u64)> {
    let shards = shards(tensors);
    let n = shards.len();
    let metadata =
        HashMap::from([("format".to_string(), "pt".to_string()), ("crossrank.quantization".to_string(), dtype.as_str().to_string())]);
    let mut files = Vec::new();
    let mut weight_map = serde_json::Map::new();
    let mut bytes_out = 0u64;
    for (k, shard) in shards.iter().enumerate() {
        let file = if n == 1 { "model.safetensors".to_string() } else { format!("model-{:05}-of-{n:05}.safetensors", k + 1) };
        let views = shard
            .iter()
            .map(|&i| {
                let (name, dt, shape, bytes) = &tensors[i];
                weight_map.insert(name.clone(), serde_json::Value::String(file.clone()));
                TensorView::new(*dt, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::InvalidInput(format!("cannot write {name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let path = out.join(&file);
        write_atomically(&path, |p| {
            safetensors::serialize_to_file(views, Some(metadata.clone()), p)
                .map_err(|e| Error::InvalidInput(format!("writing {}: {e}", p.display())))
        })?;
        bytes_out += std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        files.push(file);
    }
    if n > 1 {
        let index = serde_json::json!({ "metadata": { "total_size": bytes_out }, "weight_map": weight_map });
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| Error::InvalidInput(format!("index: {e}")))?;
        let path = out.join("model.safetensors.index.json");
        write_atomically(&path, |p| std::fs::write(p, &bytes).map_err(|e| Error::io(p, e)))?;
    }
    Ok((files, bytes_out))
}

/// Write `path` through `write` into a temporary sibling, then rename it
/// into place: a reader sees the old file or the whole new one.
fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".crossrank-tmp");
    let tmp = std::path::PathBuf::from(tmp);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
