//! The few layers the encoders are built from, as plain structs of tensors
//! with a `load` from checkpoint weights and a `forward`.

use burn::tensor::{Bool, Device, FloatDType, Int, Tensor, TensorData, activation, module};

use crate::config::Activation;
use crate::error::Result;
use crate::load::{Matrix, Weights};
use crate::quant::{HalfMatrix, QuantMatrix};

/// Row slabs a linear layer's input is cut into (see `Linear::forward`):
/// two per hardware thread (measured on 2 cores: 4 slabs 2.28 pairs/s,
/// 8 slabs 1.95, one per sequence 1.94, one flat GEMM 1.34 before AVX-512),
/// or 0 = as given where there is a single thread (wasm: one flat GEMM
/// measured no faster than one per sequence, 0.790 vs 0.857 pairs/s).
fn linear_slabs(rows: usize) -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 1 {
        return 0;
    }
    // The largest divisor of `rows` up to 2 per thread, at least 4 (the
    // backend only runs batch entries in parallel from 4 on).
    (4..=(2 * threads).max(4)).rev().find(|s| rows % s == 0).unwrap_or(0)
}

/// `nn.Linear`: `y = x W + b`.
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor<1>>,
    /// Multiply in f16 (f16 weights on a GPU that has the type).
    half_compute: bool,
}

enum LinearWeight {
    /// f32, transposed to `[in, out]` at load.
    Dense(Tensor<2>),
    /// Quantized `[out, in]` (PyTorch layout, blocks along `in`),
    /// dequantized for each forward pass.
    Quant(QuantMatrix),
    /// f16 `[out, in]`: multiplied in f16 on a GPU, widened to f32 for
    /// each forward pass elsewhere.
    Half(HalfMatrix),
}

impl Linear {
    /// Load `{prefix}.weight` (`[out, in]` in PyTorch) and `{prefix}.bias`.
    pub fn load(w: &Weights, prefix: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Self> {
        let name = format!("{prefix}.weight");
        let weight = if w.quant_plan(&name).is_some() || w.is_half(&name) {
            match w.matrix(&name, d_out, d_in, device)? {
                Matrix::Quant(q) => LinearWeight::Quant(q),
                Matrix::Half(h) => LinearWeight::Half(h),
                Matrix::Dense(t) => LinearWeight::Dense(t.transpose()),
            }
        } else {
            LinearWeight::Dense(w.linear_weight(&name, d_in, d_out, device)?)
        };
        // f16 products on a GPU with the f16 type. The CPU backend has the
        // type too, but there f16 is for memory: the weight is widened and
        // the product stays on the tuned f32 GEMM (f16 GEMM speed on the
        // CPU was not measured), which also keeps CPU scores f32-exact for
        // f16 checkpoints.
        let half_compute = matches!(&weight, LinearWeight::Half(h) if h.native().is_some()) && !crate::device::is_cpu(device);
        let bias_name = format!("{prefix}.bias");
        let bias = if w.contains(&bias_name) {
            Some(w.tensor1(&bias_name, d_out, device)?)
        } else {
            None
        };
        Ok(Self { weight, bias, half_compute })
    }

    /// One layer computing `parts` side by side (outputs concatenated), e.g.
    /// q, k and v as one GEMM: one pass over the input instead of three,
    /// and a wider product. Parts stored alike stay so (quantized and f16
    /// rows concatenate); parts stored differently (an f16 checkpoint keeps
    /// a matrix with out-of-range values in f32) all become f32.
    pub fn concat(parts: Vec<Linear>) -> Linear {
        let outs: Vec<usize> = parts.iter().map(Linear::d_out).collect();
        let device = match &parts[0].weight {
            LinearWeight::Dense(t) => t.device(),
            LinearWeight::Quant(q) => q.device(),
            LinearWeight::Half(h) => h.device(),
        };
        let bias = parts.iter().any(|p| p.bias.is_some()).then(|| {
            let b = parts.iter().zip(&outs).map(|(p, &o)| p.bias.clone().unwrap_or_else(|| Tensor::zeros([o], &device)));
            Tensor::cat(b.collect(), 0)
        });
        // `Some` only when every part is quantized / every part is f16.
        let quant: Option<Vec<QuantMatrix>> = parts
            .iter()
            .map(|p| match &p.weight {
                LinearWeight::Quant(q) => Some(q.clone()),
                _ => None,
            })
            .collect();
        let half: Option<Vec<HalfMatrix>> = parts
            .iter()
            .map(|p| match &p.weight {
                LinearWeight::Half(h) => Some(h.clone()),
                _ => None,
            })
            .collect();
        let weight = match (quant.and_then(QuantMatrix::cat_rows), half.and_then(HalfMatrix::cat_rows)) {
            (Some(q), _) => LinearWeight::Quant(q),
            (_, Some(h)) => LinearWeight::Half(h),
            _ => LinearWeight::Dense(Tensor::cat(parts.iter().map(|p| p.weight_f32()).collect(), 1)),
        };
        let half_compute = matches!(weight, LinearWeight::Half(_)) && parts.iter().all(|p| p.half_compute);
        Linear { weight, bias, half_compute }
    }

    fn d_out(&self) -> usize {
        match &self.weight {
            LinearWeight::Dense(t) => t.dims()[1],
            LinearWeight::Quant(q) => q.rows(),
            LinearWeight::Half(h) => h.rows(),
        }
    }

    /// The weight in f32, `[in, out]`.
    fn weight_f32(&self) -> Tensor<2> {
        match &self.weight {
            LinearWeight::Dense(w) => w.clone(),
            LinearWeight::Quant(q) => q.dequantize().transpose(),
            LinearWeight::Half(h) => h.to_f32().transpose(),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let weight = match &self.weight {
            LinearWeight::Half(h) if self.half_compute => match h.native() {
                Some(w) => w.clone().transpose(),
                None => h.to_f32().transpose(),
            },
            _ => self.weight_f32(),
        };
        // GEMM shape: the CPU backend runs a batched product as one
        // single-threaded GEMM per batch entry, in parallel. Per sequence
        // (the natural batch) each GEMM re-packs the whole weight for a few
        // hundred rows; one flat GEMM leaves threading to gemm, which
        // measured slower still. A few equal slabs of all tokens keep every
        // core busy and the weight reused.
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = match linear_slabs(rows) {
            0 => return self.product(x, weight),
            s => self.product(x.reshape([s, rows / s, d_in]), weight),
        };
        dims[D - 1] = y.dims()[2];
        y.reshape(dims)
    }

    /// `x W + b`; in f16 with an f32 result (bias added in f32) when the
    /// layer computes in half precision.
    fn product<const K: usize>(&self, x: Tensor<K>, weight: Tensor<2>) -> Tensor<K> {
        if !self.half_compute {
            return module::linear(x, weight, self.bias.clone());
        }
        let y = module::linear(x.cast(FloatDType::F16), weight, None).cast(FloatDType::F32);
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze(),
            None => y,
        }
    }
}

/// `nn.LayerNorm` over the last dimension.
pub struct LayerNorm {
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    /// Load `{prefix}.weight`/`.bias`, or the `gamma`/`beta` names of old
    /// TF-converted BERT checkpoints (transformers renames those too).
    pub fn load(w: &Weights, prefix: &str, dim: usize, eps: f64, device: &Device) -> Result<Self> {
        let (g, b) = if w.contains(&format!("{prefix}.gamma")) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Self {
            gamma: w.tensor1(&format!("{prefix}.{g}"), dim, device)?,
            beta: w.tensor1(&format!("{prefix}.{b}"), dim, device)?,
            eps,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        module::layer_norm(x, self.gamma.clone(), Some(self.beta.clone()), self.eps)
    }
}

/// Largest buffer one embedding chunk may take. wgpu's default
/// `max_storage_buffer_binding_size` is 128 MiB (lavapipe refuses a 768 MB
/// buffer; browsers are stricter still), and XLM-R's 250002-row table is
/// 768 MB at hidden 768, so big tables are stored as row chunks.
pub const MAX_CHUNK_BYTES: usize = 128 << 20;

/// `nn.Embedding`: a row lookup, over a table split into row chunks that
/// each fit one device buffer.
pub struct Embedding {
    chunks: Vec<Matrix>,
    rows_per_chunk: usize,
}

impl Embedding {
    pub fn load(w: &Weights, name: &str, rows: usize, dim: usize, device: &Device) -> Result<Self> {
        // Device bytes per row: f32, f16, or packed words plus one f32 scale per block.
        let row_bytes = match w.quant_plan(name) {
            Some((bits, block)) => (dim * bits as usize / 32 + dim / block) * 4,
            None if w.is_half(name) => dim * 2,
            None => dim * 4,
        };
        let rows_per_chunk = (MAX_CHUNK_BYTES / row_bytes.max(1)).clamp(1, rows.max(1));
        Self::load_chunked(w, name, rows, dim, rows_per_chunk, device)
    }

    /// `load` with an explicit chunk size. Each chunk is decoded and
    /// uploaded on its own: the host never holds the whole table in f32.
    pub fn load_chunked(
        w: &Weights,
        name: &str,
        rows: usize,
        dim: usize,
        rows_per_chunk: usize,
        device: &Device,
    ) -> Result<Self> {
        let chunks = (0..rows)
            .step_by(rows_per_chunk)
            .map(|start| {
                let n = rows_per_chunk.min(rows - start);
                w.matrix_rows(name, &[rows, dim], start, n, device)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { chunks, rows_per_chunk })
    }

    /// Host ids → `[ids.len(), dim]`.
    pub fn forward(&self, ids: &[i64], device: &Device) -> Tensor<2> {
        let int = |v: Vec<i64>, n: usize| Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(v, [n]), device);
        let gather = |chunk: &Matrix, local: Tensor<1, Int>| match chunk {
            Matrix::Dense(t) => t.clone().select(0, local),
            // Only the rows looked up are unpacked / widened.
            Matrix::Quant(q) => q.select_rows(local),
            Matrix::Half(h) => h.select_rows(local),
        };
        if self.chunks.len() == 1 {
            let n = ids.len();
            return gather(&self.chunks[0], int(ids.to_vec(), n));
        }
        // Gather from each chunk the tokens it holds, then put the rows back
        // in token order with one more gather.
        let mut parts = Vec::new();
        let mut inverse = vec![0i64; ids.len()];
        let mut next = 0i64;
        for (c, chunk) in self.chunks.iter().enumerate() {
            let lo = (c * self.rows_per_chunk) as i64;
            let hi = lo + chunk.rows() as i64;
            let mut local = Vec::new();
            for (pos, &id) in ids.iter().enumerate() {
                if id >= lo && id < hi {
                    local.push(id - lo);
                    inverse[pos] = next;
                    next += 1;
                }
            }
            if !local.is_empty() {
                let n = local.len();
                parts.push(gather(chunk, int(local, n)));
            }
        }
        Tensor::cat(parts, 0).select(0, int(inverse, ids.len()))
    }
}

/// Apply a feed-forward activation.
pub fn activate<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match act {
        Activation::Gelu if crate::device::is_cpu(&x.device()) && x.dtype() == burn::tensor::DType::F32 => crate::host::gelu(x),
        Activation::Gelu => activation::gelu(x),
        Activation::GeluTanh => activation::gelu_approximate(x),
        Activation::Relu => activation::relu(x),
        Activation::Silu => activation::silu(x),
    }
}

/// Packed rows are padded to a multiple of this with filler tokens, so the
/// CPU's linear layers can always cut them into equal slabs (see
/// `linear_slabs`; filler rows cost under 1% at batch 32).
const PACK_MULTIPLE: usize = 8;

/// A right-padded `[rows, cols]` batch stored without its padding: the
/// encoders' activations are `[tokens, hidden]`, the real tokens of each row
/// one after another (then filler tokens up to a multiple of
/// `PACK_MULTIPLE`). Linear layers, norms and GELU — nearly all of an
/// encoder's work — then skip padding entirely; only attention works on the
/// padded layout, gathered in and out of it (see [`packed_attention`]). With
/// batches sorted by length, padding was ~20% of the tokens of the speed
/// benchmark's batches.
pub struct Packing {
    rows: usize,
    cols: usize,
    /// The packed row of each padded position (row-major); padding points at
    /// row 0, whose values are masked (keys) or discarded (queries).
    index: Vec<i64>,
    /// `(row, col)` of each packed row; fillers repeat `(0, 0)`.
    coords: Vec<(usize, usize)>,
    /// Real tokens (packed rows before the fillers).
    tokens: usize,
}

impl Packing {
    /// From a batch's attention mask (`rows * cols`, 1 = token).
    pub fn new(attention_mask: &[u32], rows: usize, cols: usize) -> Self {
        let mut index = vec![0i64; rows * cols];
        let mut coords = Vec::with_capacity(attention_mask.len());
        for (pos, &m) in attention_mask.iter().enumerate() {
            if m != 0 {
                index[pos] = coords.len() as i64;
                coords.push((pos / cols.max(1), pos % cols.max(1)));
            }
        }
        let tokens = coords.len();
        let filled = tokens.max(1).div_ceil(PACK_MULTIPLE) * PACK_MULTIPLE;
        coords.resize(filled, (0, 0));
        Self { rows, cols, index, coords, tokens }
    }

    /// Packed rows (tokens plus fillers).
    pub fn len(&self) -> usize {
        self.coords.len()
    }

    /// Per-position host values (`rows * cols`, row-major) in packed order.
    pub fn pack<T: Copy>(&self, padded: &[T]) -> Vec<T> {
        self.coords.iter().map(|&(r, c)| padded[r * self.cols + c]).collect()
    }

    /// The packed rows of each row's first position (`<s>` / `[CLS]`).
    pub fn first_tokens(&self, device: &Device) -> Tensor<1, Int> {
        let v: Vec<i64> = (0..self.rows).map(|r| self.index[r * self.cols]).collect();
        Tensor::from_data(TensorData::new(v, [self.rows]), device)
    }

    /// `[packed, hidden]` → `[rows, cols, hidden]`. Padding positions hold
    /// a copy of some token's state (transformers computes states for
    /// padding too; either way pooling masks them out).
    pub fn unpack(&self, x: Tensor<2>) -> Tensor<3> {
        let h = x.dims()[1];
        let n = self.index.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(self.index.clone(), [n]), &x.device());
        x.select(0, index).reshape([self.rows, self.cols, h])
    }

    /// `(first packed row, length)` of every row's tokens (fillers, which
    /// also say row 0, excluded).
    fn sequences(&self) -> Vec<(usize, usize)> {
        let mut seqs = Vec::with_capacity(self.rows);
        let mut start = 0;
        for r in 0..self.rows {
            let len = self.coords[start..self.tokens].iter().take_while(|&&(row, _)| row == r).count();
            seqs.push((start, len));
            start += len;
        }
        seqs
    }

    /// How [`packed_attention`] runs with `heads` heads: on the CPU per
    /// sequence on the host buffers (`host::attention`), elsewhere with
    /// gathers to and from the padded layout.
    pub fn attention(&self, heads: usize, device: &Device) -> AttentionGather {
        if crate::device::is_cpu(device) {
            return AttentionGather::Host { seqs: self.sequences(), heads };
        }
        self.gathers(heads, device)
    }

    /// The padded-layout gathers (any device).
    fn gathers(&self, heads: usize, device: &Device) -> AttentionGather {
        let (b, t, n) = (self.rows, self.cols, self.len());
        // q, k and v rows of `head_dim` values, `[3, b, heads, t]` order,
        // from a fused projection viewed as `[n * 3 * heads, head_dim]`.
        let mut qkv = Vec::with_capacity(3 * b * heads * t);
        for s in 0..3 {
            for r in 0..b {
                for h in 0..heads {
                    for c in 0..t {
                        qkv.push((self.index[r * t + c] as usize * 3 * heads + s * heads + h) as i64);
                    }
                }
            }
        }
        // And back: each packed token's heads from `[b, heads, t, head_dim]`.
        let mut merge = Vec::with_capacity(n * heads);
        for &(r, c) in &self.coords {
            merge.extend((0..heads).map(|h| ((r * heads + h) * t + c) as i64));
        }
        let int = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        // Keys that are padding: every position no real token came from.
        let mut pad = vec![true; b * t];
        for &(r, c) in &self.coords[..self.tokens] {
            pad[r * t + c] = false;
        }
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(pad, [b, 1, 1, t]), device);
        AttentionGather::Device {
            qkv: int(qkv),
            merge: int(merge),
            mask: mask.expand([b, heads, t, t]),
            dims: [b, heads, t],
        }
    }
}

/// How [`packed_attention`] runs for one batch, built once for all layers.
pub enum AttentionGather {
    /// The CPU: each sequence's own tokens, on the host.
    Host { seqs: Vec<(usize, usize)>, heads: usize },
    /// Index tensors into and out of the padded layout.
    Device {
        qkv: Tensor<1, Int>,
        merge: Tensor<1, Int>,
        mask: Tensor<4, Bool>,
        dims: [usize; 3],
    },
}

/// Multi-head self-attention on packed tokens: `qkv` is `[packed, 3 *
/// hidden]` (a fused q|k|v projection), the result `[packed, hidden]`. On
/// the CPU see `host::attention`. Elsewhere one gather puts q, k and v
/// straight into the padded, head-split `[batch, heads, seq, head_dim]`
/// layout and one gather takes the context back out, the same copies a
/// head split and merge would make; padded keys are masked.
pub fn packed_attention(qkv: Tensor<2>, g: &AttentionGather) -> Tensor<2> {
    let (qkv_index, merge, mask, [b, heads, t]) = match g {
        AttentionGather::Host { seqs, heads } => return crate::host::attention(qkv, seqs, *heads),
        AttentionGather::Device { qkv, merge, mask, dims } => (qkv, merge, mask, *dims),
    };
    let [n, width] = qkv.dims();
    let d = width / 3 / heads;
    let split = qkv.reshape([n * 3 * heads, d]).select(0, qkv_index.clone()).reshape([3, b, heads, t, d]);
    let part = |s: usize| split.clone().slice(s..s + 1).reshape([b, heads, t, d]);
    let ctx = module::attention(part(0), part(1), part(2), Some(mask.clone()), None, Default::default());
    ctx.reshape([b * heads * t, d]).select(0, merge.clone()).reshape([n, heads * d])
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * w`.
/// Gemma's `(1 + w)` is folded into `w` at load time.
pub struct RmsNorm {
    weight: Tensor<1>,
    eps: f64,
}

impl RmsNorm {
    /// Load `{name}`; `offset` is added to every weight (1.0 for Gemma).
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64, offset: f32, device: &Device) -> Result<Self> {
        let mut v = w.f32(name, &[dim])?;
        v.iter_mut().for_each(|x| *x += offset);
        Ok(Self {
            weight: Tensor::from_data(burn::tensor::TensorData::new(v, [dim]), device),
            eps,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let var = x.clone().square().mean_dim(D - 1);
        x * var.add_scalar(self.eps).sqrt().recip() * self.weight.clone().unsqueeze()
    }
}

/// Rotary position embedding (`rotate_half` convention), with the cos/sin
/// tables computed in f32 the way transformers computes them.
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Self { inv_freq }
    }

    /// `[1, 1, seq, head_dim]` cos and sin for positions `0..seq`.
    pub fn tables(&self, seq: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let hd = self.inv_freq.len() * 2;
        let mut cos = Vec::with_capacity(seq * hd);
        let mut sin = Vec::with_capacity(seq * hd);
        for p in 0..seq {
            for _ in 0..2 {
                for &f in &self.inv_freq {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let t = |v: Vec<f32>| Tensor::<4>::from_data(burn::tensor::TensorData::new(v, [1, 1, seq, hd]), device);
        (t(cos), t(sin))
    }

    /// `x * cos + rotate_half(x) * sin` on `[batch, heads, seq, head_dim]`.
    pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let hd = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, hd / 2);
        let x2 = x.clone().narrow(3, hd / 2, hd / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}

/// Causal self-attention mask for a right-padded batch: `[batch, 1, seq,
/// seq]`, true where query `i` may not see key `j` (`j > i` or `j` padding).
pub fn causal_padding_mask(attention_mask: &[u32], rows: usize, cols: usize, device: &Device) -> Tensor<4, Bool> {
    let mut m = Vec::with_capacity(rows * cols * cols);
    for r in 0..rows {
        let keys = &attention_mask[r * cols..(r + 1) * cols];
        for i in 0..cols {
            for (j, &k) in keys.iter().enumerate() {
                m.push(j > i || k == 0);
            }
        }
    }
    Tensor::from_data(burn::tensor::TensorData::new(m, [rows, 1, cols, cols]), device)
}

/// Grouped-query attention: `q` `[b, heads, t, d]`, `k`/`v` `[b, kv_heads,
/// t, d]`; kv heads are repeated to match, as transformers' `repeat_kv`.
pub fn grouped_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &Tensor<4, Bool>, scale: f64) -> Tensor<4> {
    let [b, heads, t, d] = q.dims();
    let kv = k.dims()[1];
    let repeat = |x: Tensor<4>| {
        if kv == heads {
            x
        } else {
            x.unsqueeze_dim::<5>(2).expand([b, kv, heads / kv, t, d]).reshape([b, heads, t, d])
        }
    };
    let options = burn::tensor::ops::AttentionModuleOptions {
        scale: Some(scale),
        ..Default::default()
    };
    module::attention(q, repeat(k), repeat(v), Some(mask.clone().expand([b, heads, t, t])), None, options)
}

/// Sizes of a Llama-style decoder block.
#[derive(Debug, Clone, Copy)]
pub struct DecoderDims {
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f64,
}

/// A pre-norm decoder block (Gemma, MiniCPM, Llama): RMSNorm → GQA
/// self-attention with RoPE → residual, RMSNorm → gated MLP → residual,
/// with the residual branches scaled by `residual_scale` (MiniCPM's
/// `scale_depth / sqrt(layers)`, 1 elsewhere).
pub struct DecoderLayer {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    dims: DecoderDims,
}

impl DecoderLayer {
    /// Load `{prefix}.{input_layernorm,self_attn.*_proj,post_attention_layernorm,mlp.*_proj}`;
    /// `norm_offset` is added to the norm weights (1 for Gemma's `1 + w`).
    pub fn load(w: &Weights, prefix: &str, d: DecoderDims, norm_offset: f32, dev: &Device) -> Result<Self> {
        let (h, i, hd) = (d.hidden, d.ffn, d.head_dim);
        let lin = |n: &str, a, b| Linear::load(w, &format!("{prefix}.{n}"), a, b, dev);
        Ok(Self {
            input_norm: RmsNorm::load(w, &format!("{prefix}.input_layernorm.weight"), h, d.eps, norm_offset, dev)?,
            q: lin("self_attn.q_proj", h, d.heads * hd)?,
            k: lin("self_attn.k_proj", h, d.kv_heads * hd)?,
            v: lin("self_attn.v_proj", h, d.kv_heads * hd)?,
            o: lin("self_attn.o_proj", d.heads * hd, h)?,
            post_norm: RmsNorm::load(w, &format!("{prefix}.post_attention_layernorm.weight"), h, d.eps, norm_offset, dev)?,
            gate: lin("mlp.gate_proj", h, i)?,
            up: lin("mlp.up_proj", h, i)?,
            down: lin("mlp.down_proj", i, h)?,
            dims: d,
        })
    }

    /// `[b, t, hidden]` → `[b, t, hidden]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        mask: &Tensor<4, Bool>,
        rope: (&Tensor<4>, &Tensor<4>),
        act: Activation,
        residual_scale: f32,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let d = self.dims;
        let heads = |x: Tensor<3>, n: usize| x.reshape([b, t, n, d.head_dim]).swap_dims(1, 2);
        let hn = self.input_norm.forward(x.clone());
        let q = Rope::apply(heads(self.q.forward(hn.clone()), d.heads), rope.0, rope.1);
        let k = Rope::apply(heads(self.k.forward(hn.clone()), d.kv_heads), rope.0, rope.1);
        let v = heads(self.v.forward(hn), d.kv_heads);
        let ctx = grouped_attention(q, k, v, mask, (d.head_dim as f64).powf(-0.5));
        let attn = self.o.forward(ctx.swap_dims(1, 2).reshape([b, t, d.heads * d.head_dim]));
        let x = x + attn.mul_scalar(residual_scale);
        let hn = self.post_norm.forward(x.clone());
        let ff = self.down.forward(activate(act, self.gate.forward(hn.clone())) * self.up.forward(hn));
        x + ff.mul_scalar(residual_scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing round-trips, and attention on packed tokens is the same on
    /// the host path and through the padded layout — with padding, and for
    /// a single row whose fillers must not join its sequence.
    #[test]
    fn packed_attention_paths_agree() {
        let dev = Device::flex();
        let (heads, d) = (3usize, 4usize);
        for (mask, rows, cols) in [(vec![1u32; 6], 1usize, 6usize), (vec![1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0], 3, 5)] {
            let p = Packing::new(&mask, rows, cols);
            let tokens = mask.iter().filter(|&&m| m == 1).count();
            assert_eq!(p.len(), tokens.div_ceil(PACK_MULTIPLE) * PACK_MULTIPLE);
            let positions: Vec<i64> = (0..(rows * cols) as i64).collect();
            let packed = p.pack(&positions);
            assert_eq!(&packed[..tokens], &positions.iter().zip(&mask).filter(|(_, m)| **m == 1).map(|(x, _)| *x).collect::<Vec<_>>()[..]);
            let want_first: Vec<i64> = (0..rows).map(|r| p.index[r * cols]).collect();
            assert_eq!(p.first_tokens(&dev).into_data().convert::<i64>().try_to_vec::<i64>().unwrap(), want_first);
            // unpack puts every token's row back at its position.
            let x = Tensor::<1, Int>::from_data(TensorData::new(packed.clone(), [p.len()]), &dev).float().reshape([p.len(), 1]);
            let back = p.unpack(x).into_data().try_to_vec::<f32>().unwrap();
            for (pos, &m) in mask.iter().enumerate() {
                if m == 1 {
                    assert_eq!(back[pos], pos as f32);
                }
            }
            let n = p.len();
            let vals: Vec<f32> = (0..n * 3 * heads * d).map(|i| ((i * 7919) % 113) as f32 / 40.0 - 1.4).collect();
            let qkv = Tensor::<2>::from_data(TensorData::new(vals, [n, 3 * heads * d]), &dev);
            let host = packed_attention(qkv.clone(), &p.attention(heads, &dev)).into_data().try_to_vec::<f32>().unwrap();
            let gathered = packed_attention(qkv, &p.gathers(heads, &dev)).into_data().try_to_vec::<f32>().unwrap();
            let err = host[..tokens * heads * d]
                .iter()
                .zip(&gathered[..tokens * heads * d])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "rows {rows}: host vs gathered attention differ by {err}");
        }
    }

    /// A fused projection gives the parts' outputs side by side, for every
    /// storage (and a mix of storages, which falls back to f32).
    #[test]
    fn concatenated_linears_equal_their_parts() {
        use crate::quant::HostQuant;
        let dev = Device::flex();
        let (d_in, d_out, n) = (64, 16, 5);
        let vals = |len: usize, seed: usize| -> Vec<f32> { (0..len).map(|i| (((i * 37 + seed * 101) % 97) as f32 - 48.0) / 64.0).collect() };
        // `[out, in]` row-major, as checkpoints store it.
        let make = |kind: usize, seed: usize| -> Linear {
            let w = vals(d_out * d_in, seed);
            let weight = match kind {
                0 => LinearWeight::Dense(Tensor::<2>::from_data(TensorData::new(w, [d_out, d_in]), &dev).transpose()),
                1 => LinearWeight::Quant(HostQuant::quantize(&w, d_out, d_in, 8, 32).to_device(&dev)),
                2 => LinearWeight::Half(HalfMatrix::upload(w.iter().map(|&x| half::f16::from_f32(x)).collect(), d_out, d_in, &dev)),
                _ => LinearWeight::Half(HalfMatrix::packed(w.iter().map(|&x| half::f16::from_f32(x)).collect(), d_out, d_in, &dev)),
            };
            let bias = (seed != 2).then(|| Tensor::<1>::from_data(TensorData::new(vals(d_out, seed + 7), [d_out]), &dev));
            Linear { weight, bias, half_compute: false }
        };
        let x = Tensor::<2>::from_data(TensorData::new(vals(n * d_in, 9), [n, d_in]), &dev);
        for kinds in [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3], [0, 1, 2], [2, 3, 2]] {
            let parts: Vec<Linear> = kinds.iter().enumerate().map(|(s, &k)| make(k, s + 1)).collect();
            let want: Vec<Tensor<2>> = parts.iter().map(|p| p.forward(x.clone())).collect();
            let want = Tensor::cat(want, 1).into_data().try_to_vec::<f32>().unwrap();
            let fused = Linear::concat(parts);
            assert_eq!(fused.d_out(), 3 * d_out);
            let same_kind = kinds.iter().all(|&k| k == kinds[0]);
            assert_eq!(matches!(fused.weight, LinearWeight::Dense(_)), !same_kind || kinds[0] == 0, "{kinds:?}");
            let got = fused.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5, "{kinds:?}: {err}");
        }
    }

    #[test]
    fn chunked_embedding_equals_one_table() {
        let dev = Device::flex();
        let (rows, dim) = (10, 3);
        let v: Vec<f32> = (0..rows * dim).map(|x| x as f32 * 0.5 - 3.0).collect();
        // Stored f16 so the chunked path decodes row ranges, as for real tables.
        let bytes: Vec<u8> = v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![rows, dim], &bytes).unwrap();
        let file = safetensors::serialize(vec![("e".to_string(), view)], None).unwrap();
        let w = Weights::from_shards(vec![("m".into(), file)]).unwrap();
        let ids = [9i64, 0, 4, 4, 7, 1, 3, 9];
        let whole = Embedding::load(&w, "e", rows, dim, &dev).unwrap().forward(&ids, &dev);
        let chunked = Embedding::load_chunked(&w, "e", rows, dim, 3, &dev).unwrap();
        assert_eq!(chunked.chunks.len(), 4);
        let got = chunked.forward(&ids, &dev).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got, whole.into_data().try_to_vec::<f32>().unwrap());
        let want: Vec<f32> = ids.iter().flat_map(|&i| v[i as usize * dim..(i as usize + 1) * dim].to_vec()).collect();
        assert_eq!(got, want);
    }
}
