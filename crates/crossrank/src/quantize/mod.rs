//! `crossrank quantize`: write a checkpoint with its weights stored as f16,
//! q8, q4 or q4-all, in three steps — plan what each tensor becomes,
//! encode it, write the files (sharded, into a temporary directory beside
//! the target that is renamed into place at the end, so an interrupted run
//! never leaves a half-written checkpoint under the target's name). The result loads like any checkpoint, natively
//! and in the browser; the format is described in `crate::quant`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::files::Staging;
use crate::quant::{Gram, HostQuant, Role, WeightDtype, calibrated_4bit, gptq, half_plan, plan, quantize_searched};
use crate::weights::{Weights, decode};

pub mod calibrate;
mod stream;
pub use stream::StreamingQuantizer;

/// What [`quantize_checkpoint`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeReport {
    /// The dtype written.
    pub dtype: WeightDtype,
    /// Tensors stored quantized (or in f16) / kept as they were.
    pub quantized: usize,
    /// Tensors kept as they were.
    pub kept: usize,
    /// Bytes of the weights files read and written.
    pub bytes_in: u64,
    /// Bytes of the weights files written.
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
/// its original bytes, and the checkpoint's other files (config, tokenizer,
/// sentence-transformers files; not other weight formats such as
/// `pytorch_model.bin`) copied, links followed.
///
/// Nothing the user had is lost: `out` may not be the source (links
/// resolved) nor hold it; everything is written into a temporary directory
/// beside `out` and moved into place at the end, replacing a previous
/// checkpoint there as a whole (no stale file shadows a new one). An
/// interrupted run leaves `out` as it was.
///
/// `q4` / `q4-all` are calibrated: the f32 model reads the built-in
/// calibration texts ([`calibrate::BUILTIN`]) and the encoder linear
/// layers [`calibrated_4bit`] names are rounded to 4 bits by GPTQ, the
/// 4-bit embedding tables with searched scales (see `quant::gptq`); use
/// [`quantize_checkpoint_with`] to calibrate on other texts.
pub fn quantize_checkpoint(ck: &Checkpoint, dtype: WeightDtype, out: &Path) -> Result<QuantizeReport> {
    quantize_checkpoint_with(ck, dtype, out, &calibrate::texts_of(calibrate::BUILTIN))
}

/// [`quantize_checkpoint`], calibrating `q4` / `q4-all` on `calibration`
/// (texts; a reranker reads each paired with the next).
pub fn quantize_checkpoint_with(ck: &Checkpoint, dtype: WeightDtype, out: &Path, calibration: &[String]) -> Result<QuantizeReport> {
    if dtype == WeightDtype::F32 {
        return Err(Error::InvalidInput("quantize writes f16, q8, q4 or q4-all, not f32".into()));
    }
    check_target(ck, out)?;
    let weights = Weights::open(ck)?.with_dtype(dtype);
    if let Some(name) = weights.names().find(|n| [".q8", ".q4"].iter().any(|s| n.strip_suffix(s).is_some_and(|b| weights.is_quantized(b))))
    {
        return Err(Error::InvalidInput(format!(
            "the checkpoint is already quantized ({name}); quantizing it again would compound the rounding error \
             (and change nothing for its quantized tensors): quantize the original f32/bf16/f16 checkpoint"
        )));
    }
    let mut names: Vec<String> = weights.names().map(str::to_string).collect();
    names.sort();
    let grams = calibration_grams(ck, &weights, &names, dtype, calibration)?;
    let rounded = run_gptq(&weights, grams, dtype)?;
    let (mut tensors, mut quantized, mut kept) = (Vec::new(), 0, 0);
    for name in names {
        let (step, rounding) = match (plan_tensor(&weights, &name, dtype)?, rounded.get(&name)) {
            (Step::Quant { block, .. }, Some(q)) => (Step::Quant { bits: 4, block }, Rounding::Gptq(q)),
            (step @ Step::Quant { bits: 4, .. }, None) if dtype.calibrated() && Role::of(&name) == Role::Embedding => {
                (step, Rounding::Searched)
            }
            (step, _) => (step, Rounding::Nearest),
        };
        let (encoded, changed) = encode(&weights, &name, step, rounding)?;
        if changed {
            quantized += 1;
        } else {
            kept += 1;
        }
        tensors.extend(encoded);
    }
    drop(weights);
    let mut seen = std::collections::HashSet::new();
    if let Some((dup, ..)) = tensors.iter().find(|t| !seen.insert(t.0.as_str())) {
        return Err(Error::InvalidInput(format!(
            "the quantized checkpoint would hold two tensors named {dup} (the source has a tensor with that name beside the one quantized into it)"
        )));
    }

    let staging = Staging::new(out)?;
    let bytes_in = copy_other_files(ck, &staging, |_| true)?;
    let metadata = metadata(dtype);
    let (files, bytes_out) = write_weights(staging.path(), &tensors, metadata)?;
    staging.commit()?;
    Ok(QuantizeReport { dtype, quantized, kept, bytes_in, bytes_out, files })
}

/// The calibration Gram matrices of the weights of `names` that
/// [`calibrated_4bit`] rounds by GPTQ under `dtype` (none for other
/// dtypes, or for models without such layers: LLM rerankers' 4-bit
/// linear layers are rounded to nearest — their 16384-wide Gram matrices
/// would take a gigabyte each).
fn calibration_grams(ck: &Checkpoint, w: &Weights, names: &[String], dtype: WeightDtype, texts: &[String]) -> Result<HashMap<String, Gram>> {
    if !dtype.calibrated() {
        return Ok(HashMap::new());
    }
    let mut wanted = std::collections::HashSet::new();
    for name in names {
        // A float matrix q4-all makes 4-bit (plan_tensor keeps the rest).
        if matches!(plan_tensor(w, name, WeightDtype::Q4All)?, Step::Quant { bits: 4, .. }) && calibrated_4bit(dtype, name) {
            wanted.insert(name.clone());
        }
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    tracing::info!("calibrating {} layers on {} texts", wanted.len(), texts.len());
    calibrate::grams(ck, wanted, texts)
}

/// GPTQ of each weight in `grams` (4 bits, the block [`plan`] gives it),
/// the layers in parallel where the crate has threads.
fn run_gptq(w: &Weights, grams: HashMap<String, Gram>, dtype: WeightDtype) -> Result<HashMap<String, HostQuant>> {
    let mut jobs = Vec::with_capacity(grams.len());
    for (name, gram) in grams {
        let Step::Quant { block, .. } = plan_tensor(w, &name, dtype)? else { continue };
        let (dt, shape, raw) = w.raw(&name).ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
        let (rows, cols) = (shape[0], shape[1]);
        if gram.d != cols {
            return Err(Error::InvalidInput(format!("calibration: {name} has {cols} inputs, its layer was given {}", gram.d)));
        }
        jobs.push((name.clone(), decode(&name, dt, raw)?, rows, cols, block, gram));
    }
    let run = |(name, values, rows, cols, block, gram): (String, Vec<f32>, usize, usize, usize, Gram)| {
        let q = gptq(&values, rows, cols, block, &gram);
        (name, q)
    };
    #[cfg(feature = "rayon")]
    let done = {
        use rayon::prelude::*;
        jobs.into_par_iter().map(run).collect()
    };
    #[cfg(not(feature = "rayon"))]
    let done = jobs.into_iter().map(run).collect();
    Ok(done)
}

/// A quantized weights file's header metadata (the streaming quantizer
/// writes the same).
fn metadata(dtype: WeightDtype) -> HashMap<String, String> {
    HashMap::from([("format".to_string(), "pt".to_string()), ("crossrank.quantization".to_string(), dtype.as_str().to_string())])
}

/// Files in subdirectories a checkpoint may have (sentence-transformers).
const SUBDIR_FILES: &[&str] = &["1_Pooling/config.json"];

/// Copy `ck`'s files other than weights (config, tokenizer,
/// sentence-transformers files) that `keep` accepts into `staging`; other
/// weight formats are never copied. Returns the weights files' total size.
pub(crate) fn copy_other_files(ck: &Checkpoint, staging: &Staging, keep: impl Fn(&str) -> bool) -> Result<u64> {
    let mut bytes_in = 0u64;
    for f in ck.files()? {
        if is_weights_file(&f) {
            // Counted, not read: the weights were memory-mapped.
            bytes_in += ck.file_len(&f)?;
        } else if !is_other_weights_format(&f) && keep(&f) {
            staging.write(&f, &ck.read(&f)?)?;
        }
    }
    for f in SUBDIR_FILES.iter().filter(|f| keep(f)) {
        if let Some(bytes) = ck.read_optional(f)? {
            staging.write(f, &bytes)?;
        }
    }
    Ok(bytes_in)
}

fn is_weights_file(f: &str) -> bool {
    f.ends_with(".safetensors") || f == "model.safetensors.index.json"
}

/// The same weights in other formats: copying them would put gigabytes of
/// unquantized weights beside the quantized ones.
fn is_other_weights_format(f: &str) -> bool {
    [".bin", ".pt", ".pth", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ot", ".gguf", ".ckpt"].iter().any(|ext| f.ends_with(ext))
        || f.starts_with("pytorch_model.bin.index")
        || f.starts_with("tf_model")
        || f.starts_with("flax_model")
}

/// `out` must not be the source checkpoint's directory (links resolved),
/// nor contain it (replacing `out` would delete it); an existing `out`
/// must be a directory.
fn check_target(ck: &Checkpoint, out: &Path) -> Result<()> {
    let Checkpoint::Dir(src) = ck else {
        return Ok(());
    };
    let canon = |p: &Path| std::fs::canonicalize(p).map_err(|e| Error::io(p, e));
    let src = canon(src)?;
    if out.exists() || std::fs::symlink_metadata(out).is_ok() {
        let meta = std::fs::metadata(out).map_err(|e| Error::io(out, e))?;
        if !meta.is_dir() {
            return Err(Error::InvalidInput(format!("--out {} exists and is not a directory", out.display())));
        }
        let target = canon(out)?;
        if src == target {
            return Err(Error::InvalidInput(format!(
                "--out {} is the checkpoint being quantized; write the quantized copy to another directory",
                out.display()
            )));
        }
        if src.starts_with(&target) {
            return Err(Error::InvalidInput(format!(
                "--out {} contains the checkpoint being quantized, which replacing it would delete; pick another directory",
                out.display()
            )));
        }
        // Only a checkpoint (or nothing) is replaced: never a directory of
        // the user's other files.
        let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
        if entries.next().is_some() && !out.join("config.json").exists() {
            return Err(Error::InvalidInput(format!(
                "--out {} holds files but no checkpoint (no config.json); pass a new or empty directory, or a previous output to replace",
                out.display()
            )));
        }
    }
    Ok(())
}

/// What one stored tensor becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Its original bytes.
    Keep,
    /// Rounded to f16 (values that do not fit keep the tensor as it is).
    Half,
    /// `bits`-bit values in blocks of `block`, one f16 scale each.
    Quant { bits: u32, block: usize },
}

/// How a 4-bit tensor's values are chosen (`quantize_checkpoint` of `q4` /
/// `q4-all`; quantizing at load rounds to nearest).
#[derive(Clone, Copy)]
enum Rounding<'a> {
    /// Round to nearest, scale `absmax / qmax` ([`HostQuant::quantize`]).
    Nearest,
    /// Rounded by GPTQ on the layer's calibration Gram matrix.
    Gptq(&'a HostQuant),
    /// Each block's scale searched (no calibration).
    Searched,
}

/// The plan for one stored tensor under `dtype`: parts of an already
/// quantized tensor (`part_of_quantized`) and tensors that are not float
/// stay; f16 (which keeps F16 tensors as they are) or q8/q4 per [`plan`].
/// The same rule at load ([`Weights::quant_plan`], [`Weights::is_half`]),
/// so a checkpoint written here loads as quantizing at load would.
fn step(name: &str, dt: Dtype, shape: &[usize], dtype: WeightDtype, part_of_quantized: bool) -> Step {
    if part_of_quantized || !matches!(dt, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
        return Step::Keep;
    }
    if half_plan(dtype, shape) {
        return if dt == Dtype::F16 { Step::Keep } else { Step::Half };
    }
    match plan(dtype, Role::of(name), shape) {
        Some((bits, block)) => Step::Quant { bits, block },
        None => Step::Keep,
    }
}

/// [`step`] for a tensor of `w`.
fn plan_tensor(w: &Weights, name: &str, dtype: WeightDtype) -> Result<Step> {
    let (dt, shape, _) = w.raw(name).ok_or_else(|| Error::MissingTensor { name: name.into() })?;
    let part_of_quantized = [".q8", ".q4", ".qscale"].iter().filter_map(|s| name.strip_suffix(s)).any(|b| w.is_quantized(b));
    Ok(step(name, dt, shape, dtype, part_of_quantized))
}

/// One tensor to write: name, dtype, shape, little-endian bytes.
pub(crate) type Encoded = (String, Dtype, Vec<usize>, Vec<u8>);

/// The f16 bytes of a float tensor's `raw` bytes (F16 as stored), or
/// `None` when a value does not fit f16 (the tensor is then kept).
fn half_bytes(name: &str, dt: Dtype, raw: &[u8]) -> Result<Option<Vec<u8>>> {
    if dt == Dtype::F16 {
        return Ok(Some(raw.to_vec()));
    }
    let h: Vec<half::f16> = decode(name, dt, raw)?.into_iter().map(half::f16::from_f32).collect();
    Ok(h.iter().all(|x| x.is_finite()).then(|| h.iter().flat_map(|x| x.to_le_bytes()).collect()))
}

/// `rows` whole rows of a `[_, cols]` float tensor (`raw`, stored as `dt`)
/// quantized: the packed words and the f16 scales, little-endian. Rows
/// are independent (blocks lie within a row), so a tensor quantized a few
/// rows at a time is the tensor quantized at once.
fn quant_rows(name: &str, dt: Dtype, raw: &[u8], rows: usize, cols: usize, bits: u32, block: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    Ok(words_and_scales(&HostQuant::quantize(&decode(name, dt, raw)?, rows, cols, bits, block)))
}

/// A quantized matrix's packed words and f16 scales, little-endian.
fn words_and_scales(q: &HostQuant) -> (Vec<u8>, Vec<u8>) {
    (q.packed.iter().flat_map(|x| x.to_le_bytes()).collect(), q.scales.iter().flat_map(|s| s.to_le_bytes()).collect())
}

/// Names, dtypes and shapes of the packed words and the scales `name`
/// (`[rows, cols]`) is stored as in `bits` bits and blocks of `block`.
fn quant_parts(name: &str, rows: usize, cols: usize, bits: u32, block: usize) -> [(String, Dtype, Vec<usize>); 2] {
    [
        (format!("{name}.q{bits}"), Dtype::U32, vec![rows, cols * bits as usize / 32]),
        (format!("{name}.qscale"), Dtype::F16, vec![rows, cols / block]),
    ]
}

/// Bytes of a tensor of `dtype` and `shape` (a part from [`quant_parts`]).
fn part_bytes(dtype: Dtype, shape: &[usize]) -> usize {
    shape.iter().product::<usize>() * dtype.bitsize() / 8
}

/// The tensors `name` is written as under `step`, and whether that
/// changed it.
fn encode(w: &Weights, name: &str, step: Step, rounding: Rounding) -> Result<(Vec<Encoded>, bool)> {
    let (dt, shape, raw) = w.raw(name).ok_or_else(|| Error::MissingTensor { name: name.into() })?;
    let keep = || (vec![(name.to_string(), dt, shape.to_vec(), raw.to_vec())], false);
    Ok(match step {
        Step::Keep => keep(),
        Step::Half => match half_bytes(name, dt, raw)? {
            Some(h) => (vec![(name.to_string(), Dtype::F16, shape.to_vec(), h)], true),
            None => keep(),
        },
        Step::Quant { bits, block } => {
            let (rows, cols) = (shape[0], shape[1]);
            let (packed, scales) = match rounding {
                Rounding::Nearest => quant_rows(name, dt, raw, rows, cols, bits, block)?,
                Rounding::Gptq(q) => words_and_scales(q),
                Rounding::Searched => words_and_scales(&quantize_searched(&decode(name, dt, raw)?, rows, cols, block)),
            };
            let [(pn, pd, ps), (sn, sd, ss)] = quant_parts(name, rows, cols, bits, block);
            (vec![(pn, pd, ps, packed), (sn, sd, ss, scales)], true)
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
pub(crate) fn write_weights(out: &Path, tensors: &[Encoded], metadata: HashMap<String, String>) -> Result<(Vec<String>, u64)> {
    let shards = shards(tensors);
    let n = shards.len();
    let mut files = Vec::new();
    let mut weight_map = serde_json::Map::new();
    let mut bytes_out = 0u64;
    for (k, shard) in shards.iter().enumerate() {
        let file = if n == 1 { "model.safetensors".to_string() } else { format!("model-{:05}-of-{n:05}.safetensors", k + 1) };
        for &i in shard {
            weight_map.insert(tensors[i].0.clone(), serde_json::Value::String(file.clone()));
        }
        bytes_out += write_safetensors(&out.join(&file), shard.iter().map(|&i| &tensors[i]), &metadata)?;
        files.push(file);
    }
    if n > 1 {
        let index = serde_json::json!({ "metadata": { "total_size": bytes_out }, "weight_map": weight_map });
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| Error::InvalidInput(format!("index: {e}")))?;
        let path = out.join("model.safetensors.index.json");
        std::fs::write(&path, &bytes).map_err(|e| Error::write(path, e))?;
    }
    Ok((files, bytes_out))
}

/// One safetensors file of `tensors` at `path` (never sharded: state that
/// is read back whole, such as optimizer moments); returns its size.
pub(crate) fn write_safetensors<'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = &'a Encoded>,
    metadata: &HashMap<String, String>,
) -> Result<u64> {
    let views = tensors
        .into_iter()
        .map(|(name, dt, shape, bytes)| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::InvalidInput(format!("cannot write {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, Some(metadata.clone()), path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => Error::write(path, io),
        e => Error::InvalidInput(format!("cannot write {}: {e}", path.display())),
    })?;
    Ok(std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len())
}
