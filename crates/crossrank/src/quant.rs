//! Weight-only quantization: q8 and q4 with one f16 scale per block of
//! `QUANT_BLOCK` weights along a row, symmetric (no zero point).
//!
//! Values are packed little-end-first into 32-bit words (four q8 or eight q4
//! per word) and kept packed on the device as an `i32` tensor, so a q8
//! matrix takes one byte per weight there and a q4 matrix half a byte. A
//! forward pass unpacks with shifts and masks and multiplies by the scales —
//! plain tensor ops that run the same on the CPU backend, native wgpu and
//! WebGPU. Burn 0.22's own `QuantScheme` was not used: its `native` store
//! panics for Q8S, Q4 matmul panics on wgpu for M > 1 (tracel-ai/burn#4492),
//! and it has no quantized gather for the embedding table.
//!
//! Checkpoint format (written by `crossrank quantize`, read by
//! [`crate::Weights`]): a quantized tensor `NAME` is stored as `NAME.q8` or
//! `NAME.q4` (U32, `[rows, cols * bits / 32]`, the packed values) and
//! `NAME.qscale` (F16, `[rows, cols / block]`); the block follows from the
//! shapes. Every other tensor keeps its original bytes.

use std::str::FromStr;

use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};

use crate::error::{Error, Result};

/// Weights per scale in linear layers.
pub const QUANT_BLOCK: usize = 32;

/// Weights per scale in embedding tables: a q8 bge-reranker-base then fits
/// 290 MB (block 32 would make it 295 MB), at a cosine cost measured as nil
/// (all-MiniLM-L6-v2 q8: 0.99945 with 64 vs 0.99952 with 32).
pub const EMBEDDING_BLOCK: usize = 64;

/// Matrices with fewer rows stay in float: single-row classifier heads and
/// token-type tables save nothing and are where errors would show most.
pub const MIN_QUANT_ROWS: usize = 16;

/// How weights are stored on the device. Compute is f32, except that `f16`
/// runs the linear layers' matrix products in f16 on a GPU that has
/// shader-f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// As f32 (every checkpoint dtype is widened).
    #[default]
    F32,
    /// Weight matrices and embedding tables in f16 (half of f32's bytes,
    /// exact for f16 checkpoints); LayerNorm, biases and small heads f32.
    /// On a GPU with shader-f16 the linear layers multiply in f16 (inputs
    /// cast to f16, outputs back to f32); attention, softmax, masks,
    /// normalization and the final logits stay f32 everywhere. Elsewhere
    /// (CPU, WebGPU without shader-f16) weights are widened per forward
    /// pass and compute is f32.
    F16,
    /// 8-bit everywhere.
    Q8,
    /// 4 bits where they cost least per byte saved, 8 elsewhere (see
    /// [`plan`]): encoders get 4-bit embedding tables (192M of
    /// bge-reranker-base's 278M weights) and 8-bit linear layers
    /// (all-MiniLM-L6-v2: cosine 0.993 vs f32, where all-4-bit gives 0.86);
    /// LLM rerankers get 4-bit linear layers and an 8-bit token table (it is
    /// also the scoring head).
    Q4,
    /// 4-bit everywhere: the smallest, for models that take it (LLM
    /// rerankers; check the ranking on your data). Round-to-nearest 4-bit
    /// linear layers cost small encoders their accuracy.
    Q4All,
}

impl WeightDtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q8 => "q8",
            Self::Q4 => "q4",
            Self::Q4All => "q4-all",
        }
    }
}

impl FromStr for WeightDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(Self::F16),
            "q8" | "int8" => Ok(Self::Q8),
            "q4" | "int4" => Ok(Self::Q4),
            "q4-all" | "q4all" => Ok(Self::Q4All),
            other => Err(Error::InvalidInput(format!("unknown dtype {other:?} (expected f32, f16, q8, q4 or q4-all)"))),
        }
    }
}

/// What a weight matrix is, which decides its bits (for `q4`) and block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An encoder's lookup table (word / position embeddings): only
    /// looked-up rows are dequantized, its error enters as input noise, and
    /// it holds most of an XLM-R reranker's bytes.
    Embedding,
    /// An encoder's projection: its error compounds through every layer.
    Linear,
    /// A decoder's token table (`embed_tokens`), tied to the LM head whose
    /// "Yes" row is the score: its error lands on the score directly.
    TiedEmbedding,
    /// A decoder's projection: 80% of an LLM reranker's bytes.
    DecoderLinear,
}

impl Role {
    /// The role of a Hugging Face tensor name: decoders (Gemma, MiniCPM,
    /// Llama-style) name theirs `model.embed_tokens` / `model.layers.N`.
    pub fn of(name: &str) -> Self {
        let decoder = name.starts_with("model.layers.") || name.contains("embed_tokens") || name.starts_with("lm_head");
        match (name.contains("embed") || name.starts_with("lm_head"), decoder) {
            (true, true) => Self::TiedEmbedding,
            (true, false) => Self::Embedding,
            (false, true) => Self::DecoderLinear,
            (false, false) => Self::Linear,
        }
    }
}

/// Bits and block for a rank-2 weight of `shape` stored as `dtype`, or
/// `None` when it stays float. `q4` puts 4 bits where they cost least per
/// byte saved (measured): an encoder's embedding table, a decoder's linear
/// layers; the rest gets 8. The block is the role's preferred size, or the
/// largest of 32 / 16 dividing the row (tiny test models).
pub fn plan(dtype: WeightDtype, role: Role, shape: &[usize]) -> Option<(u32, usize)> {
    if shape.len() != 2 || shape[0] < MIN_QUANT_ROWS {
        return None;
    }
    let bits = match (dtype, role) {
        (WeightDtype::F32 | WeightDtype::F16, _) => return None,
        (WeightDtype::Q8, _) => 8,
        (WeightDtype::Q4All, _) => 4,
        (WeightDtype::Q4, Role::Embedding | Role::DecoderLinear) => 4,
        (WeightDtype::Q4, Role::Linear | Role::TiedEmbedding) => 8,
    };
    let preferred = match role {
        Role::Embedding | Role::TiedEmbedding => EMBEDDING_BLOCK,
        Role::Linear | Role::DecoderLinear => QUANT_BLOCK,
    };
    let block = [preferred, QUANT_BLOCK, 16].into_iter().find(|b| shape[1] % b == 0)?;
    Some((bits, block))
}

/// A quantized matrix on the host: packed words and f16 scales.
#[derive(Debug, Clone, PartialEq)]
pub struct HostQuant {
    pub rows: usize,
    pub cols: usize,
    pub bits: u32,
    pub block: usize,
    /// `[rows, cols * bits / 32]`.
    pub packed: Vec<u32>,
    /// `[rows, cols / block]`.
    pub scales: Vec<half::f16>,
}

impl HostQuant {
    /// Quantize row-major `[rows, cols]` values.
    pub fn quantize(values: &[f32], rows: usize, cols: usize, bits: u32, block: usize) -> Self {
        assert!(bits == 8 || bits == 4, "bits must be 4 or 8");
        assert!(cols % block == 0 && block % (32 / bits as usize) == 0 && values.len() == rows * cols);
        let qmax = ((1u32 << (bits - 1)) - 1) as f32; // 127 or 7
        let offset = 1u32 << (bits - 1); // stored unsigned: q + 128 or q + 8
        let per_word = 32 / bits as usize;
        let mut packed = vec![0u32; rows * cols / per_word];
        let mut scales = Vec::with_capacity(rows * cols / block);
        for (b, chunk) in values.chunks_exact(block).enumerate() {
            let absmax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            // The scale is stored in f16: quantize against the rounded value
            // so dequantization reproduces exactly what was encoded.
            let scale = half::f16::from_f32(absmax / qmax);
            scales.push(scale);
            let s = scale.to_f32();
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            for (i, v) in chunk.iter().enumerate() {
                let q = (v * inv).round().clamp(-qmax, qmax) as i32;
                let u = (q + offset as i32) as u32;
                let idx = b * block + i;
                packed[idx / per_word] |= u << ((idx % per_word) as u32 * bits);
            }
        }
        Self { rows, cols, bits, block, packed, scales }
    }

    /// Back to f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let per_word = 32 / self.bits as usize;
        let mask = (1u32 << self.bits) - 1;
        let offset = (1i32 << (self.bits - 1)) as f32;
        (0..self.rows * self.cols)
            .map(|idx| {
                let u = (self.packed[idx / per_word] >> ((idx % per_word) as u32 * self.bits)) & mask;
                (u as f32 - offset) * self.scales[idx / self.block].to_f32()
            })
            .collect()
    }

    /// Upload to `device`.
    pub fn to_device(&self, device: &Device) -> QuantMatrix {
        let words = self.cols * self.bits as usize / 32;
        let packed: Vec<i32> = self.packed.iter().map(|&w| w as i32).collect();
        let scales: Vec<f32> = self.scales.iter().map(|s| s.to_f32()).collect();
        QuantMatrix {
            packed: Tensor::from_data(TensorData::new(packed, [self.rows, words]), (device, DType::I32)),
            scales: Tensor::from_data(TensorData::new(scales, [self.rows, self.cols / self.block]), device),
            bits: self.bits,
            block: self.block,
            cols: self.cols,
        }
    }
}

/// A quantized `[rows, cols]` matrix on a device.
#[derive(Debug, Clone)]
pub struct QuantMatrix {
    packed: Tensor<2, Int>,
    scales: Tensor<2>,
    bits: u32,
    block: usize,
    cols: usize,
}

impl QuantMatrix {
    pub fn rows(&self) -> usize {
        self.packed.dims()[0]
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes this matrix takes on the device.
    pub fn device_bytes(&self) -> usize {
        let [r, w] = self.packed.dims();
        let [_, s] = self.scales.dims();
        r * (w + s) * 4
    }

    pub fn device(&self) -> Device {
        self.packed.device()
    }

    /// The rows of `parts` one after another (one layer's q, k and v), or
    /// `None` if they are not quantized alike.
    pub fn cat_rows(parts: Vec<QuantMatrix>) -> Option<QuantMatrix> {
        let first = parts.first()?.clone();
        if parts.iter().any(|p| (p.bits, p.block, p.cols) != (first.bits, first.block, first.cols)) {
            return None;
        }
        let (packed, scales) = parts.into_iter().map(|p| (p.packed, p.scales)).unzip();
        Some(QuantMatrix {
            packed: Tensor::cat(packed, 0),
            scales: Tensor::cat(scales, 0),
            ..first
        })
    }

    /// The whole matrix in f32, `[rows, cols]`. On the CPU in one host pass
    /// (`host::dequantize`) instead of the eight tensor ops of `unpack`.
    pub fn dequantize(&self) -> Tensor<2> {
        if crate::device::is_cpu(&self.packed.device()) {
            return crate::host::dequantize(self.packed.clone(), self.scales.clone(), self.bits, self.block, self.cols);
        }
        unpack(self.packed.clone(), self.scales.clone(), self.bits, self.block, self.cols)
    }

    /// Rows `ids` (device indices) in f32, `[ids.len(), cols]`: a gather on
    /// the packed words, then unpacking of those rows only.
    pub fn select_rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        let packed = self.packed.clone().select(0, ids.clone());
        let scales = self.scales.clone().select(0, ids);
        unpack(packed, scales, self.bits, self.block, self.cols)
    }
}

/// Shift every value out of its word, recentre, scale.
fn unpack(packed: Tensor<2, Int>, scales: Tensor<2>, bits: u32, block: usize, cols: usize) -> Tensor<2> {
    let rows = packed.dims()[0];
    let q = split_words(packed, bits, cols).float().sub_scalar((1i32 << (bits - 1)) as f32);
    let groups = cols / block;
    (q.reshape([rows, groups, block]) * scales.reshape([rows, groups, 1])).reshape([rows, cols])
}

/// The unsigned `bits`-wide fields of 32-bit words, low field first:
/// `[rows, words]` → `[rows, cols]` (`cols = words * 32 / bits`).
fn split_words(words: Tensor<2, Int>, bits: u32, cols: usize) -> Tensor<2, Int> {
    let [rows, n] = words.dims();
    let mask = ((1u64 << bits) - 1) as i32;
    let parts: Vec<Tensor<3, Int>> = (0..32 / bits)
        .map(|k| words.clone().bitwise_right_shift_scalar((k * bits) as i32).bitwise_and_scalar(mask).reshape([rows, n, 1]))
        .collect();
    Tensor::cat(parts, 2).reshape([rows, cols])
}

/// Whether a weight of `shape` is stored in f16 under `dtype`: the same
/// matrices q8 would quantize (rank 2, at least [`MIN_QUANT_ROWS`] rows),
/// with an even row length so two values share a 32-bit word where the
/// device has no f16 type.
pub fn half_plan(dtype: WeightDtype, shape: &[usize]) -> bool {
    dtype == WeightDtype::F16 && shape.len() == 2 && shape[0] >= MIN_QUANT_ROWS && shape[1] % 2 == 0
}

/// An f16 `[rows, cols]` matrix on a device: a native f16 tensor where the
/// device has the type (the CPU backend, wgpu / WebGPU with shader-f16),
/// else pairs of f16 bit patterns packed into `i32` words and widened
/// exactly with integer ops — 2 bytes per weight either way.
#[derive(Debug, Clone)]
pub enum HalfMatrix {
    Native(Tensor<2>),
    Packed { words: Tensor<2, Int>, cols: usize },
}

impl HalfMatrix {
    /// Upload row-major f16 values (`cols` even).
    pub fn upload(values: Vec<half::f16>, rows: usize, cols: usize, device: &Device) -> Self {
        debug_assert!(cols % 2 == 0 && values.len() == rows * cols);
        if device.supports_dtype(FloatDType::F16) {
            return Self::Native(Tensor::from_data(TensorData::new(values, [rows, cols]), (device, DType::F16)));
        }
        Self::packed(values, rows, cols, device)
    }

    /// Upload as packed words whatever the device supports.
    pub fn packed(values: Vec<half::f16>, rows: usize, cols: usize, device: &Device) -> Self {
        let words: Vec<i32> = values.chunks_exact(2).map(|p| (p[0].to_bits() as u32 | (p[1].to_bits() as u32) << 16) as i32).collect();
        Self::Packed {
            words: Tensor::from_data(TensorData::new(words, [rows, cols / 2]), (device, DType::I32)),
            cols,
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            Self::Native(t) => t.dims()[0],
            Self::Packed { words, .. } => words.dims()[0],
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Self::Native(t) => t.device(),
            Self::Packed { words, .. } => words.device(),
        }
    }

    /// The rows of `parts` one after another, or `None` if they are not
    /// stored alike.
    pub fn cat_rows(parts: Vec<HalfMatrix>) -> Option<HalfMatrix> {
        match parts.first()? {
            Self::Native(_) => {
                let t: Option<Vec<Tensor<2>>> = parts.into_iter().map(|p| p.native().cloned()).collect();
                Some(Self::Native(Tensor::cat(t?, 0)))
            }
            &Self::Packed { cols, .. } => {
                let w: Option<Vec<Tensor<2, Int>>> = parts
                    .into_iter()
                    .map(|p| match p {
                        Self::Packed { words, cols: c } if c == cols => Some(words),
                        _ => None,
                    })
                    .collect();
                Some(Self::Packed { words: Tensor::cat(w?, 0), cols })
            }
        }
    }

    /// The f16 tensor, where the device holds one.
    pub fn native(&self) -> Option<&Tensor<2>> {
        match self {
            Self::Native(t) => Some(t),
            Self::Packed { .. } => None,
        }
    }

    /// The whole matrix widened to f32.
    pub fn to_f32(&self) -> Tensor<2> {
        match self {
            Self::Native(t) => t.clone().cast(FloatDType::F32),
            Self::Packed { words, cols } => widen_f16(words.clone(), *cols),
        }
    }

    /// Rows `ids` widened to f32, `[ids.len(), cols]`.
    pub fn select_rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        match self {
            Self::Native(t) => t.clone().select(0, ids).cast(FloatDType::F32),
            Self::Packed { words, cols } => widen_f16(words.clone().select(0, ids), *cols),
        }
    }
}

/// f16 bit patterns, two per word (low half first), to f32 — exactly:
/// `sign * (mantissa + 1024·[exp > 0]) * 2^max(exp, 1) * 2^-25` is an
/// 11-bit integer times a power of two. Checkpoint values that are not
/// finite in f16 never get here (see `Weights::rows_f16`).
fn widen_f16(words: Tensor<2, Int>, cols: usize) -> Tensor<2> {
    let h = split_words(words, 16, cols);
    let exp = h.clone().bitwise_right_shift_scalar(10).bitwise_and_scalar(31);
    let mag = h.clone().bitwise_and_scalar(1023) + exp.clone().clamp_max(1).mul_scalar(1024);
    let pow = exp.clone().ones_like().bitwise_left_shift(exp.clamp_min(1));
    let sign = h.bitwise_right_shift_scalar(15).mul_scalar(-2).add_scalar(1);
    (mag.float() * pow.float() * sign.float()).mul_scalar(2f32.powi(-25))
}

/// What [`quantize_checkpoint`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeReport {
    pub dtype: WeightDtype,
    /// Tensors stored quantized / kept as they were.
    pub quantized: usize,
    pub kept: usize,
    /// Bytes of the weights files read and written.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The weights files written.
    pub files: Vec<String>,
}

/// Largest weights file `quantize_checkpoint` writes before sharding (a
/// browser holds each downloaded file as one ArrayBuffer).
pub const MAX_SHARD_BYTES: usize = 1 << 30;

/// Write `ck` quantized as `dtype` (f16, q8, q4 or q4-all) into the directory
/// `out`: every matrix [`plan`] quantizes as `.q8`/`.q4` + `.qscale` (for
/// f16: every matrix [`half_plan`] names, as a plain F16 tensor), every
/// other tensor with its original bytes, and all non-weight files (config,
/// tokenizer, ...) copied. The result loads like any checkpoint, natively
/// and in the browser.
pub fn quantize_checkpoint(ck: &crate::Checkpoint, dtype: WeightDtype, out: &std::path::Path) -> Result<QuantizeReport> {
    use safetensors::tensor::{Dtype, TensorView};
    if dtype == WeightDtype::F32 {
        return Err(Error::InvalidInput("quantize writes f16, q8, q4 or q4-all, not f32".into()));
    }
    let weights = ck.weights()?.with_dtype(dtype);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out.to_path_buf(), e))?;
    let is_weights_file = |f: &str| f.ends_with(".safetensors") || f == "model.safetensors.index.json";
    let mut bytes_in = 0u64;
    for f in ck.files()? {
        if is_weights_file(&f) {
            // Counted, not read: `weights` already maps them.
            bytes_in += ck.file_len(&f)?;
            continue;
        }
        std::fs::write(out.join(&f), ck.read(&f)?).map_err(|e| Error::io(out.join(&f), e))?;
    }

    // Build every output tensor as (name, dtype, shape, bytes), in name order.
    let mut names: Vec<String> = weights.names().map(str::to_string).collect();
    names.sort();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let (mut quantized, mut kept) = (0, 0);
    for name in names {
        let (dt, shape, raw) = weights.raw(&name).expect("listed tensor");
        let base = [".q8", ".q4", ".qscale"].iter().find_map(|s| name.strip_suffix(s));
        let already = base.is_some_and(|b| weights.is_quantized(b));
        let float = matches!(dt, Dtype::F32 | Dtype::F16 | Dtype::BF16);
        let planned = plan(dtype, Role::of(&name), shape).filter(|_| !already && float);
        let half = (weights.is_half(&name) && dt != Dtype::F16 && !already && float)
            .then(|| weights.rows_f16(&name, shape, 0, shape[0]))
            .transpose()?
            .flatten();
        if let Some(h) = half {
            let bytes: Vec<u8> = h.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.push((name.clone(), Dtype::F16, shape.to_vec(), bytes));
            quantized += 1;
        } else if let Some((bits, block)) = planned {
            let q = weights.host_quant(&name, shape, 0, shape[0], bits, block)?;
            let words = q.cols * bits as usize / 32;
            let packed: Vec<u8> = q.packed.iter().flat_map(|w| w.to_le_bytes()).collect();
            let scales: Vec<u8> = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            tensors.push((format!("{name}.q{bits}"), Dtype::U32, vec![q.rows, words], packed));
            tensors.push((format!("{name}.qscale"), Dtype::F16, vec![q.rows, q.cols / q.block], scales));
            quantized += 1;
        } else {
            tensors.push((name.clone(), dt, shape.to_vec(), raw.to_vec()));
            kept += 1;
        }
    }
    drop(weights);

    // Shard at MAX_SHARD_BYTES.
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0usize;
    for (i, t) in tensors.iter().enumerate() {
        if size + t.3.len() > MAX_SHARD_BYTES && !shards.last().expect("one shard").is_empty() {
            shards.push(Vec::new());
            size = 0;
        }
        size += t.3.len();
        shards.last_mut().expect("one shard").push(i);
    }
    let n = shards.len();
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    metadata.insert("crossrank.quantization".to_string(), dtype.as_str().to_string());
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
        safetensors::serialize_to_file(views, Some(metadata.clone()), &path)
            .map_err(|e| Error::InvalidInput(format!("writing {}: {e}", path.display())))?;
        bytes_out += std::fs::metadata(&path).map_err(|e| Error::io(path.clone(), e))?.len();
        files.push(file);
    }
    if n > 1 {
        let index = serde_json::json!({ "metadata": { "total_size": bytes_out }, "weight_map": weight_map });
        let path = out.join("model.safetensors.index.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&index).expect("json")).map_err(|e| Error::io(path, e))?;
    }
    Ok(QuantizeReport { dtype, quantized, kept, bytes_in, bytes_out, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * if i % 97 == 0 { 4.0 } else { 1.0 }).collect()
    }

    #[test]
    fn host_roundtrip_error_is_bounded_by_half_a_step() {
        let (rows, cols) = (6, 64);
        let v = sample(rows * cols);
        for bits in [8, 4] {
            let q = HostQuant::quantize(&v, rows, cols, bits, QUANT_BLOCK);
            let back = q.dequantize();
            for (b, chunk) in v.chunks(QUANT_BLOCK).enumerate() {
                let step = q.scales[b].to_f32();
                for (i, x) in chunk.iter().enumerate() {
                    let err = (x - back[b * QUANT_BLOCK + i]).abs();
                    assert!(err <= step * 0.5 + 1e-6, "bits {bits}: err {err} > step/2 {}", step / 2.0);
                }
            }
        }
    }

    #[test]
    fn device_unpacking_matches_the_host() {
        let dev = Device::flex();
        let (rows, cols) = (5, 96);
        let v = sample(rows * cols);
        for bits in [8, 4] {
            let q = HostQuant::quantize(&v, rows, cols, bits, QUANT_BLOCK);
            let want = q.dequantize();
            let m = q.to_device(&dev);
            let got: Vec<f32> = m.dequantize().into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            assert_eq!(got, want, "bits {bits}");
            // The tensor-op unpacking other devices run gives the same values.
            let ops = unpack(m.packed.clone(), m.scales.clone(), m.bits, m.block, m.cols);
            assert_eq!(ops.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(), want, "bits {bits} tensor ops");
            let ids = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 0, 3], [3]), &dev);
            let rows_got: Vec<f32> = m.select_rows(ids).into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            let mut rows_want = want[3 * cols..4 * cols].to_vec();
            rows_want.extend_from_slice(&want[..cols]);
            rows_want.extend_from_slice(&want[3 * cols..4 * cols]);
            assert_eq!(rows_got, rows_want, "bits {bits} gather");
        }
    }

    #[test]
    fn packed_f16_widens_every_finite_value_exactly() {
        let dev = Device::flex();
        let values: Vec<half::f16> = (0..=u16::MAX).map(half::f16::from_bits).filter(|h| h.is_finite()).collect();
        let n = values.len() / 2 * 2;
        let values = values[..n].to_vec();
        let want: Vec<f32> = values.iter().map(|h| h.to_f32()).collect();
        let m = HalfMatrix::packed(values.clone(), n / 64, 64, &dev);
        assert!(m.native().is_none());
        let got = m.to_f32().into_data().try_to_vec::<f32>().unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "widened bit patterns");
        let ids = Tensor::<1, Int>::from_data(TensorData::new(vec![5i64, 0], [2]), &dev);
        let rows = m.select_rows(ids.clone()).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(rows[..64], want[5 * 64..6 * 64]);
        assert_eq!(rows[64..], want[..64]);
        // The native f16 tensor gives the same values.
        let native = HalfMatrix::upload(values, n / 64, 64, &dev);
        assert!(native.native().is_some());
        assert_eq!(bits(&native.to_f32().into_data().try_to_vec::<f32>().unwrap()), bits(&want));
        assert_eq!(native.select_rows(ids).into_data().try_to_vec::<f32>().unwrap(), rows);
    }

    #[test]
    fn dtype_parses() {
        assert_eq!("Q8".parse::<WeightDtype>().unwrap(), WeightDtype::Q8);
        assert!("q3".parse::<WeightDtype>().is_err());
        let (q8, q4m) = (WeightDtype::Q8, WeightDtype::Q4);
        assert_eq!(plan(q8, Role::Linear, &[768, 768]), Some((8, 32)));
        assert_eq!(plan(q8, Role::Embedding, &[250002, 768]), Some((8, 64)));
        assert_eq!(plan(q4m, Role::Embedding, &[250002, 768]), Some((4, 64)));
        assert_eq!(plan(q4m, Role::Linear, &[768, 3072]), Some((8, 32)));
        assert_eq!(plan(q8, Role::Linear, &[16, 16]), Some((8, 16)));
        assert_eq!(plan(q8, Role::Linear, &[1, 768]), None);
        assert_eq!(plan(q8, Role::Linear, &[1000, 100]), None);
        assert_eq!(plan(WeightDtype::F32, Role::Linear, &[768, 768]), None);
        assert_eq!("fp16".parse::<WeightDtype>().unwrap(), WeightDtype::F16);
        assert_eq!(plan(WeightDtype::F16, Role::Linear, &[768, 768]), None);
        assert!(half_plan(WeightDtype::F16, &[250002, 768]));
        assert!(!half_plan(WeightDtype::F16, &[1, 768]) && !half_plan(WeightDtype::F16, &[768]));
        assert!(!half_plan(WeightDtype::Q8, &[768, 768]));
        assert_eq!(Role::of("roberta.embeddings.word_embeddings.weight"), Role::Embedding);
        assert_eq!(Role::of("model.embed_tokens.weight"), Role::TiedEmbedding);
        assert_eq!(Role::of("model.layers.0.mlp.up_proj.weight"), Role::DecoderLinear);
        assert_eq!(Role::of("roberta.encoder.layer.0.output.dense.weight"), Role::Linear);
        assert_eq!(plan(q4m, Role::DecoderLinear, &[2048, 16384]), Some((4, 32)));
        assert_eq!(plan(q4m, Role::TiedEmbedding, &[256000, 2048]), Some((8, 64)));
    }
}
