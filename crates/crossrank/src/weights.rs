//! A checkpoint's tensors: indexed from its safetensors files (F32, F16,
//! BF16, and the packed q8/q4 tensors `crossrank quantize` writes), checked
//! against the shapes the model expects, and turned into what the device
//! stores — f32, f16 or quantized, as the load dtype and [`crate::quant`]'s
//! plan say.

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::Dtype;

use crate::checkpoint::{Checkpoint, ShardBytes};
use crate::error::{Error, Result};
use crate::quant::{HalfMatrix, HostQuant, QuantMatrix, Role, WeightDtype, half_plan, plan};

struct Shard {
    bytes: ShardBytes,
}

struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A tensor stored quantized (`NAME.qweight` + `NAME.qscale`, see
/// [`crate::quant`]).
struct QuantEntry {
    shape: Vec<usize>,
    bits: u32,
    block: usize,
}

/// All tensors of a checkpoint, kept as their raw bytes until the model asks
/// for one, then converted to f32 (or quantized) and uploaded to the device.
/// Quantized tensors of a `crossrank quantize` checkpoint answer to their
/// plain names: [`Weights::f32`] dequantizes them, [`Weights::matrix`] keeps
/// them packed.
pub(crate) struct Weights {
    shards: Vec<Shard>,
    index: HashMap<String, Entry>,
    quant: HashMap<String, QuantEntry>,
    dtype: WeightDtype,
    /// Written by `crossrank quantize --dtype int8` (header metadata
    /// `crossrank.quantization`): its q8 matrices take 8-bit activations
    /// whatever the load dtype.
    int8_file: bool,
    /// Tensors given as device tensors instead of bytes (training: the
    /// parameters being trained, or LoRA-merged weights), answering to
    /// their checkpoint names in PyTorch layout. The model code turns them
    /// into its layers with tensor ops (transpose, concat, slice), so
    /// gradients flow back to them; reading one on the host is refused.
    live: HashMap<String, Live>,
}

/// A tensor given to [`Weights::with_live`] (only training makes them).
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "train"), allow(dead_code))]
pub(crate) enum Live {
    Vector(Tensor<1>),
    Matrix(Tensor<2>),
}

impl Live {
    fn shape(&self) -> Vec<usize> {
        match self {
            Self::Vector(t) => t.dims().to_vec(),
            Self::Matrix(t) => t.dims().to_vec(),
        }
    }
}

/// A rank-2 weight on the device: f32, or quantized (packed).
#[derive(Debug, Clone)]
pub(crate) enum Matrix {
    Dense(Tensor<2>),
    Quant(QuantMatrix),
    Half(HalfMatrix),
}

impl Matrix {
    pub(crate) fn rows(&self) -> usize {
        match self {
            Self::Dense(t) => t.dims()[0],
            Self::Quant(q) => q.rows(),
            Self::Half(h) => h.rows(),
        }
    }
}

impl Weights {
    /// Index the weights of a checkpoint (nothing is decoded yet).
    pub(crate) fn open(ck: &Checkpoint) -> Result<Self> {
        Self::from_shard_bytes(ck.weight_files()?)
    }

    /// Index one or more safetensors buffers (file name, bytes).
    #[cfg(test)]
    pub(crate) fn from_shards(shards: Vec<(String, Vec<u8>)>) -> Result<Self> {
        Self::from_shard_bytes(shards.into_iter().map(|(f, b)| (f, ShardBytes::Owned(b))).collect())
    }

    /// Index one or more safetensors files, owned or memory-mapped.
    pub(crate) fn from_shard_bytes(shards: Vec<(String, ShardBytes)>) -> Result<Self> {
        let mut out =
            Weights { shards: Vec::new(), index: HashMap::new(), quant: HashMap::new(), dtype: WeightDtype::F32, int8_file: false, live: HashMap::new() };
        let mut names: Vec<String> = Vec::new();
        for (file, bytes) in shards {
            let bad = |m: String| Error::Safetensors { file: file.clone(), message: m };
            let header = crate::header::read(&bytes)
                .map_err(|e| bad(format!("not a safetensors file or a corrupt header ({e})")))?
                .ok_or_else(|| bad("truncated file: it ends inside its header".into()))?;
            let data_start = 8 + header.json_len;
            if data_start as u64 + header.data_len != bytes.len() as u64 {
                return Err(bad(if data_start as u64 + header.data_len > bytes.len() as u64 {
                    "truncated file: its header describes more data than the file holds".into()
                } else {
                    "the file holds more data than its header describes".into()
                }));
            }
            let shard = out.shards.len();
            out.int8_file |= header.metadata.get("crossrank.quantization").is_some_and(|q| q == WeightDtype::Int8.as_str());
            // `header::read` checked every tensor: contiguous offsets from 0,
            // each exactly its shape's bytes; and the data section is the
            // file's rest (above), so every range lies inside the file.
            for (name, info) in header.tensors {
                let (start, end) = info.data_offsets;
                // A tensor in two shards: which copy is meant is ambiguous
                // (the index's weight_map and the file order could disagree),
                // so refuse rather than let the later file win silently.
                if let Some(prev) = out.index.get(&name) {
                    let other = names.get(prev.shard).map(String::as_str).unwrap_or("another shard");
                    return Err(bad(format!("tensor {name} is also in {other}; a tensor must be stored once")));
                }
                out.index.insert(
                    name.clone(),
                    Entry { shard, dtype: info.dtype, shape: info.shape.clone(), start: data_start + start, end: data_start + end },
                );
            }
            out.shards.push(Shard { bytes });
            names.push(file);
        }
        out.index_quantized()?;
        Ok(out)
    }

    /// Find `NAME.q8` / `NAME.q4` + `NAME.qscale` pairs and check their shapes.
    fn index_quantized(&mut self) -> Result<()> {
        for (qname, packed) in &self.index {
            let Some((name, bits)) =
                [(".q8", 8u32), (".q4", 4)].into_iter().find_map(|(suffix, bits)| qname.strip_suffix(suffix).map(|n| (n, bits)))
            else {
                continue;
            };
            let bad = |m: String| Error::Safetensors { file: format!("tensor {name}"), message: m };
            let scale = self.index.get(&format!("{name}.qscale")).ok_or_else(|| bad(format!("has {qname} but no .qscale")))?;
            if packed.dtype != Dtype::U32 || scale.dtype != Dtype::F16 {
                return Err(bad(format!("quantized as {:?}/{:?}, expected U32/F16", packed.dtype, scale.dtype)));
            }
            let (&[rows, words], &[srows, groups]) = (packed.shape.as_slice(), scale.shape.as_slice()) else {
                return Err(bad("quantized tensors must be rank 2".into()));
            };
            let per_word = 32 / bits as usize;
            // Sizes from the file: no product may overflow, and no row is
            // longer than any real weight's (2^32 columns).
            let Some(cols) = words.checked_mul(per_word).filter(|&c| c as u64 <= 1 << 32 && rows.checked_mul(c).is_some()) else {
                return Err(bad(format!("shape {:?} is too large", packed.shape)));
            };
            let block = if groups > 0 { cols / groups } else { 0 };
            if srows != rows || block == 0 || groups * block != cols || block % per_word != 0 {
                return Err(bad(format!("shapes {:?} / {:?} are not a q{bits} block layout", packed.shape, scale.shape)));
            }
            self.quant.insert(name.to_string(), QuantEntry { shape: vec![rows, cols], bits, block });
        }
        Ok(())
    }

    /// Store weights as `dtype` on the device: q8/q4 quantize float matrices
    /// at load (already quantized ones stay as they are).
    pub(crate) fn with_dtype(mut self, dtype: WeightDtype) -> Self {
        self.dtype = dtype;
        self
    }

    /// Whether q8 matrices take 8-bit activations: the `int8` load dtype,
    /// or a checkpoint quantized as `int8` (its weights are `q8`'s byte
    /// for byte; the dtype is what it runs as).
    pub(crate) fn act8(&self) -> bool {
        self.dtype == WeightDtype::Int8 || self.int8_file
    }

    /// Serve these tensors from the device instead of the files (see
    /// [`Weights::live`]): LoRA's merged projections over a frozen base.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn with_live(mut self, live: HashMap<String, Live>) -> Self {
        self.live = live;
        self
    }

    /// Only live tensors: a model built entirely from device tensors.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn live_only(live: HashMap<String, Live>) -> Self {
        Weights { shards: Vec::new(), index: HashMap::new(), quant: HashMap::new(), dtype: WeightDtype::F32, int8_file: false, live }
    }

    /// Whether `name` is served from a live tensor.
    pub(crate) fn is_live(&self, name: &str) -> bool {
        self.live.contains_key(name)
    }

    /// True when a tensor of this name exists (plain or quantized).
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.live.contains_key(name) || self.index.contains_key(name) || self.quant.contains_key(name)
    }

    /// The live tensor `name`, checked against `expected`.
    fn live_tensor(&self, name: &str, expected: &[usize]) -> Result<Option<&Live>> {
        match self.live.get(name) {
            Some(l) if l.shape() != expected => {
                Err(Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), actual: l.shape() })
            }
            other => Ok(other),
        }
    }

    /// Refuse a host read of a live tensor: its values would be copied off
    /// the graph, and training would silently not update what they feed.
    fn no_host_read(&self, name: &str) -> Result<()> {
        if self.live.contains_key(name) {
            return Err(Error::InvalidInput(format!(
                "{name} is being trained but this model reads it on the host, where no gradient reaches it: \
                 it cannot be trained (freeze it)"
            )));
        }
        Ok(())
    }

    /// Names of all stored tensors (unordered; quantized ones as their
    /// `.q8`/`.q4` and `.qscale` parts).
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Shape of a tensor, if present (the logical shape for quantized ones).
    pub(crate) fn shape(&self, name: &str) -> Option<&[usize]> {
        if self.live.contains_key(name) {
            // Live tensors stand for stored ones of the same shape; a new
            // one is only reached through the typed accessors below.
            return self.index.get(name).map(|e| e.shape.as_slice());
        }
        self.quant.get(name).map(|q| q.shape.as_slice()).or_else(|| self.index.get(name).map(|e| e.shape.as_slice()))
    }

    /// The raw stored bytes and dtype of a tensor as in the file.
    pub(crate) fn raw(&self, name: &str) -> Option<(Dtype, &[usize], &[u8])> {
        self.index.get(name).map(|e| (e.dtype, e.shape.as_slice(), &self.shards[e.shard].bytes[e.start..e.end]))
    }

    /// Whether `name` is stored quantized in the checkpoint.
    pub(crate) fn is_quantized(&self, name: &str) -> bool {
        self.quant.contains_key(name)
    }

    fn check_shape(&self, name: &str, expected: &[usize]) -> Result<()> {
        match self.shape(name) {
            None => Err(Error::MissingTensor { name: name.to_string() }),
            Some(s) if s != expected => {
                Err(Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), actual: s.to_vec() })
            }
            Some(_) => Ok(()),
        }
    }

    /// Rows `start..start + count` of a stored quantized tensor.
    fn stored_quant(&self, name: &str, start: usize, count: usize) -> HostQuant {
        let q = &self.quant[name];
        let (rows, cols) = (q.shape[0], q.shape[1]);
        debug_assert!(start + count <= rows);
        let words = cols * q.bits as usize / 32;
        let groups = cols / q.block;
        let p = &self.index[&format!("{name}.q{}", q.bits)];
        let s = &self.index[&format!("{name}.qscale")];
        let pb = &self.shards[p.shard].bytes[p.start + start * words * 4..p.start + (start + count) * words * 4];
        let sb = &self.shards[s.shard].bytes[s.start + start * groups * 2..s.start + (start + count) * groups * 2];
        HostQuant {
            rows: count,
            cols,
            bits: q.bits,
            block: q.block,
            packed: pb.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            scales: sb.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]])).collect(),
        }
    }

    /// Rows of a rank-2 weight quantized with `bits` in blocks of `block`:
    /// read as stored when the checkpoint is quantized, else decoded and
    /// quantized here.
    pub(crate) fn host_quant(
        &self,
        name: &str,
        expected: &[usize],
        start: usize,
        count: usize,
        bits: u32,
        block: usize,
    ) -> Result<HostQuant> {
        self.check_shape(name, expected)?;
        if self.quant.contains_key(name) {
            return Ok(self.stored_quant(name, start, count));
        }
        let v = self.rows(name, expected, start, count)?;
        Ok(HostQuant::quantize(&v, count, expected[1], bits, block))
    }

    /// Whether the rank-2 weight `name` goes to the device quantized: its
    /// bits and block, as stored or as [`plan`] decides for the load dtype.
    pub(crate) fn quant_plan(&self, name: &str) -> Option<(u32, usize)> {
        if self.live.contains_key(name) {
            return None;
        }
        if let Some(q) = self.quant.get(name) {
            return Some((q.bits, q.block));
        }
        plan(self.dtype, Role::of(name), self.shape(name)?)
    }

    /// Whether the rank-2 weight `name` goes to the device in f16 (load
    /// dtype `f16`, see [`half_plan`]).
    pub(crate) fn is_half(&self, name: &str) -> bool {
        !self.live.contains_key(name) && !self.quant.contains_key(name) && self.shape(name).is_some_and(|s| half_plan(self.dtype, s))
    }

    /// Rows `start..start + count` of a rank-2 float tensor as f16: the
    /// stored bits for an f16 checkpoint, rounded otherwise; `None` when a
    /// value does not fit f16 (the caller keeps that matrix in f32).
    pub(crate) fn rows_f16(&self, name: &str, expected: &[usize], start: usize, count: usize) -> Result<Option<Vec<half::f16>>> {
        let h: Vec<half::f16> = match self.stored_rows(name, expected, start, count)? {
            (Dtype::F16, raw) => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect(),
            (dtype, raw) => decode(name, dtype, raw)?.into_iter().map(half::f16::from_f32).collect(),
        };
        Ok(h.iter().all(|x| x.is_finite()).then_some(h))
    }

    /// Rows `start..start + count` of a rank-2 weight on the device as
    /// [`Weights::quant_plan`] / [`Weights::is_half`] say: quantized, f16
    /// or f32 (PyTorch layout).
    pub(crate) fn matrix_rows(&self, name: &str, expected: &[usize], start: usize, count: usize, device: &Device) -> Result<Matrix> {
        self.matrix_rows_as(name, expected, start, count, device, None)
    }

    /// [`Weights::matrix_rows`]; `for_matmul`: the matrix is only
    /// multiplied, so a quantized one may be stored for a fused
    /// dequantizing matmul ([`HostQuant::to_device_for_matmul`]), widened
    /// on the host to at least the given bits first (exact: see
    /// [`HostQuant::widened`]).
    fn matrix_rows_as(
        &self,
        name: &str,
        expected: &[usize],
        start: usize,
        count: usize,
        device: &Device,
        for_matmul: Option<u32>,
    ) -> Result<Matrix> {
        if let Some(Live::Matrix(t)) = self.live_tensor(name, expected)? {
            return Ok(Matrix::Dense(t.clone().slice(start..start + count)));
        }
        self.check_shape(name, expected)?;
        if let Some((bits, block)) = self.quant_plan(name) {
            let q = self.host_quant(name, expected, start, count, bits, block)?;
            return Ok(Matrix::Quant(match for_matmul {
                Some(min_bits) if q.bits < min_bits => q.widened().to_device_for_matmul(device, self.act8()),
                Some(_) => q.to_device_for_matmul(device, self.act8()),
                None => q.to_device(device),
            }));
        }
        if self.is_half(name) {
            if let Some(h) = self.rows_f16(name, expected, start, count)? {
                return Ok(Matrix::Half(HalfMatrix::upload(h, count, expected[1], device)));
            }
            tracing::warn!("{name} has values outside f16's range: kept in f32");
        }
        let v = self.rows(name, expected, start, count)?;
        Ok(Matrix::Dense(Tensor::from_data(TensorData::new(v, [count, expected[1]]), device)))
    }

    /// A linear layer's rank-2 weight `[rows, cols]` as stored (PyTorch
    /// layout), on the device quantized, in f16 or in f32; a quantized one
    /// with at least `min_bits` (8: a 4-bit part beside 8-bit ones,
    /// concatenated on the device as 8 bits, exactly).
    pub(crate) fn matrix(&self, name: &str, rows: usize, cols: usize, min_bits: u32, device: &Device) -> Result<Matrix> {
        self.matrix_rows_as(name, &[rows, cols], 0, rows, device, Some(min_bits))
    }

    /// Read every tensor every way the models can (fuzzing: no file may
    /// make one of these panic).
    pub(crate) fn touch_all(&self) {
        let names: Vec<&str> = self.quant.keys().chain(self.index.keys()).map(String::as_str).collect();
        for name in names {
            let Some(shape) = self.shape(name).map(<[usize]>::to_vec) else { continue };
            let _ = self.f32(name, &shape);
            if let &[rows, cols] = shape.as_slice()
                && rows > 0
            {
                let _ = self.row(name, &shape, rows - 1);
                let _ = self.rows_f16(name, &shape, 0, 1);
                if cols % 32 == 0 && cols > 0 {
                    let _ = self.host_quant(name, &shape, 0, 1, 4, 32);
                }
            }
        }
    }

    /// A tensor as f32 values, checked against the expected shape.
    pub(crate) fn f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        self.no_host_read(name)?;
        if self.quant.contains_key(name) {
            self.check_shape(name, expected)?;
            return Ok(self.stored_quant(name, 0, expected[0]).dequantize());
        }
        let e = self.index.get(name).ok_or_else(|| Error::MissingTensor { name: name.to_string() })?;
        if e.shape != expected {
            return Err(Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), actual: e.shape.clone() });
        }
        decode(name, e.dtype, &self.shards[e.shard].bytes[e.start..e.end])
    }

    /// Row `row` of a rank-2 tensor as f32, reading only that row's bytes.
    pub(crate) fn row(&self, name: &str, expected: &[usize], row: usize) -> Result<Vec<f32>> {
        self.rows(name, expected, row, 1)
    }

    /// Rows `start..start + count` of a rank-2 tensor as f32, decoding only
    /// those bytes (big embedding tables are converted chunk by chunk).
    pub(crate) fn rows(&self, name: &str, expected: &[usize], start: usize, count: usize) -> Result<Vec<f32>> {
        self.no_host_read(name)?;
        if self.quant.contains_key(name) {
            self.check_shape(name, expected)?;
            if start + count > expected[0] {
                return Err(Error::InvalidInput(format!("rows {start}..{} of {name} are out of range", start + count)));
            }
            return Ok(self.stored_quant(name, start, count).dequantize());
        }
        let (dtype, raw) = self.stored_rows(name, expected, start, count)?;
        decode(name, dtype, raw)
    }

    /// The stored dtype and bytes of rows `start..start + count` of a plain
    /// (not quantized) rank-2 tensor, checked against the expected shape.
    fn stored_rows(&self, name: &str, expected: &[usize], start: usize, count: usize) -> Result<(Dtype, &[u8])> {
        let e = self.index.get(name).ok_or_else(|| Error::MissingTensor { name: name.to_string() })?;
        if e.shape != expected || expected.len() != 2 || start + count > expected[0] {
            return Err(Error::ShapeMismatch { name: name.to_string(), expected: expected.to_vec(), actual: e.shape.clone() });
        }
        let row_bytes = expected[1] * e.dtype.bitsize() / 8;
        let from = e.start + start * row_bytes;
        Ok((e.dtype, &self.shards[e.shard].bytes[from..from + count * row_bytes]))
    }

    /// A rank-1 tensor on `device`.
    pub(crate) fn tensor1(&self, name: &str, dim: usize, device: &Device) -> Result<Tensor<1>> {
        if let Some(Live::Vector(t)) = self.live_tensor(name, &[dim])? {
            return Ok(t.clone());
        }
        let v = self.f32(name, &[dim])?;
        Ok(Tensor::from_data(TensorData::new(v, [dim]), device))
    }

    /// A PyTorch `nn.Linear` weight (`[out, in]`) transposed to Burn's
    /// `[in, out]` layout on the host, so the device holds it contiguous.
    pub(crate) fn linear_weight(&self, name: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Tensor<2>> {
        if let Some(Live::Matrix(t)) = self.live_tensor(name, &[d_out, d_in])? {
            return Ok(t.clone().transpose());
        }
        let v = self.f32(name, &[d_out, d_in])?;
        let mut t = vec![0f32; v.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = v[o * d_in + i];
            }
        }
        Ok(Tensor::from_data(TensorData::new(t, [d_in, d_out]), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn st(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: Vec<(String, TensorView)> =
            tensors.iter().map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn reads_f32_f16_bf16_and_checks_shapes() {
        let vals = [1.5f32, -2.25, 0.0, 3.0];
        let f32b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16b: Vec<u8> = vals.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        let bf16b: Vec<u8> = vals.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        let bytes = st(&[
            ("a", Dtype::F32, vec![2, 2], f32b),
            ("b", Dtype::F16, vec![4], f16b),
            ("c", Dtype::BF16, vec![4], bf16b),
            ("i", Dtype::I64, vec![1], vec![0; 8]),
        ]);
        let w = Weights::from_shards(vec![("m".into(), bytes)]).unwrap();
        assert_eq!(w.f32("a", &[2, 2]).unwrap(), vals);
        assert_eq!(w.f32("b", &[4]).unwrap(), vals);
        assert_eq!(w.f32("c", &[4]).unwrap(), vals);
        assert!(matches!(w.f32("a", &[4]), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(w.f32("zz", &[4]), Err(Error::MissingTensor { .. })));
        assert!(matches!(w.f32("i", &[1]), Err(Error::UnsupportedDtype { .. })));
    }

    #[test]
    fn corrupt_and_truncated_files_are_typed_errors() {
        let bytes = st(&[("a", Dtype::F32, vec![64], vec![0; 256])]);
        let truncated = bytes[..bytes.len() - 10].to_vec();
        let e = Weights::from_shards(vec![("m".into(), truncated)]).err().unwrap();
        assert!(matches!(e, Error::Safetensors { .. }), "{e}");
        let e = Weights::from_shards(vec![("m".into(), b"garbage!garbage".to_vec())]).err().unwrap();
        assert!(matches!(e, Error::Safetensors { .. }), "{e}");
        let e = Weights::from_shards(vec![("m".into(), vec![1, 2])]).err().unwrap();
        assert!(matches!(e, Error::Safetensors { .. }), "{e}");
    }
}

/// Little-endian F32 / F16 / BF16 bytes → f32 values.
pub(crate) fn decode(name: &str, dtype: Dtype, raw: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => {
            return Err(Error::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") });
        }
    })
}
