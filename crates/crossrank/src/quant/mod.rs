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
//! Checkpoint format (written by [`crate::quantize`], read by
//! `crate::weights::Weights`): a quantized tensor `NAME` is stored as `NAME.q8` or
//! `NAME.q4` (U32, `[rows, cols * bits / 32]`, the packed values) and
//! `NAME.qscale` (F16, `[rows, cols / block]`); the block follows from the
//! shapes. Every other tensor keeps its original bytes.

mod gptq;
mod storage;

use std::str::FromStr;

use crate::error::{Error, Result};

pub(crate) use gptq::{Gram, gptq, quantize_searched};
pub(crate) use storage::{HalfMatrix, QuantMatrix};

/// Weights per scale in linear layers.
pub(crate) const QUANT_BLOCK: usize = 32;

/// Weights per scale in embedding tables: a q8 bge-reranker-base then fits
/// 290 MB (block 32 would make it 295 MB), at a cosine cost measured as nil
/// (all-MiniLM-L6-v2 q8: 0.99945 with 64 vs 0.99952 with 32).
pub(crate) const EMBEDDING_BLOCK: usize = 64;

/// Matrices with fewer rows stay in float: single-row classifier heads and
/// token-type tables save nothing and are where errors would show most.
pub(crate) const MIN_QUANT_ROWS: usize = 16;

/// How weights are stored on the device. Compute is f32, except that the
/// linear layers of `q8`/`q4`/`q4-all` run integer matrix products on the
/// CPU (activations quantized per row and block to 16 bits:
/// `kernels::int8`), `int8`'s with 8-bit activations, and `f16` runs them
/// in f16 on a GPU that has shader-f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
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
    /// 8-bit weights everywhere; on the CPU, activations quantized to 16
    /// bits per row and block of 32 (the faithful default: all-MiniLM-L6-v2
    /// cosine 0.9995 vs f32).
    Q8,
    /// `q8`'s weights, byte for byte, with 8-bit activations (per row and
    /// block of 32, at run time) on the CPU: the speed class of ONNX
    /// Runtime's dynamic int8 (transformers.js `q8`), at cosine 0.998 where
    /// its per-tensor activations give 0.905. On a GPU it runs as `q8`.
    Int8,
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
    /// Whether `crossrank quantize` writes this dtype calibrated (GPTQ
    /// 4-bit encoder linears, see [`calibrated_4bit`]): `q4` and `q4-all`.
    pub fn calibrated(self) -> bool {
        matches!(self, Self::Q4 | Self::Q4All)
    }

    /// The dtype's name as the CLI and JS take it (`q4-all`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q8 => "q8",
            Self::Int8 => "int8",
            Self::Q4 => "q4",
            Self::Q4All => "q4-all",
        }
    }
}

impl FromStr for WeightDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(Self::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(Self::F16),
            "q8" => Ok(Self::Q8),
            "int8" => Ok(Self::Int8),
            "q4" | "int4" => Ok(Self::Q4),
            "q4-all" | "q4all" => Ok(Self::Q4All),
            other => Err(Error::InvalidInput(format!("unknown dtype {other:?} (expected f32, f16, q8, int8, q4 or q4-all)"))),
        }
    }
}

/// What a weight matrix is, which decides its bits (for `q4`) and block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
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
    /// The role of a Hugging Face tensor name. Decoders (Gemma, MiniCPM,
    /// Qwen3, Llama-style) name their table `embed_tokens` (under `model.`
    /// or bare, as Qwen3-Embedding stores it) and their projections
    /// `self_attn.{q,k,v,o}_proj` / `mlp.{gate,up,down}_proj`; encoders —
    /// ModernBERT's `model.layers.N.attn.Wqkv` / `mlp.Wi` too — anything else.
    pub(crate) fn of(name: &str) -> Self {
        let llama_linear = name.contains("self_attn.")
            || ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"].iter().any(|p| name.contains(p));
        if name.contains("embed_tokens") || name.starts_with("lm_head") {
            Self::TiedEmbedding
        } else if name.contains("embed") {
            Self::Embedding
        } else if llama_linear {
            Self::DecoderLinear
        } else {
            Self::Linear
        }
    }
}

/// Whether the encoder linear layer weight `name` (a matrix `plan` gives 4
/// bits under `q4-all`) takes calibrated 4-bit
/// values (GPTQ, [`gptq`]) when `crossrank quantize` writes `dtype`:
/// `q4-all`, every encoder linear layer; `q4`, those that measured least
/// sensitive — BERT / XLM-R query, key, attention output and FFN output,
/// ModernBERT's `attn.Wo` and `mlp.Wo`. The value projection and the FFN
/// intermediate (ModernBERT's fused `Wqkv` and `Wi` hold them) stay 8-bit:
/// on all-MiniLM-L6-v2 each alone at 4 bits cost the most (round-to-nearest,
/// the rest 4-bit: min cosine 0.926 with value 8-bit, 0.918 with the
/// intermediate 8-bit, against 0.87 – 0.874 for any other layer kept), and
/// the two are 5/12 of a BERT layer's weights, which keeps the
/// bge-reranker-base shape under 170 MB. Heads (pooler, classifier) and
/// unknown names stay 8-bit. Quantizing at load has no calibration data
/// and keeps [`plan`]'s 8-bit encoder linears.
pub(crate) fn calibrated_4bit(dtype: WeightDtype, name: &str) -> bool {
    if Role::of(name) != Role::Linear || !name.ends_with(".weight") {
        return false;
    }
    let heads = ["pooler", "classifier", "score", "head"];
    if heads.iter().any(|h| name.contains(h)) {
        return false;
    }
    match dtype {
        WeightDtype::Q4All => true,
        WeightDtype::Q4 => {
            let in_layer = name.contains("layer.") || name.contains("layers.");
            let four = [
                "attention.self.query.",
                "attention.self.key.",
                "attention.output.dense.",
                "attn.Wo.",
                "mlp.Wo.",
            ];
            in_layer && (four.iter().any(|p| name.contains(p)) || (name.contains(".output.dense.") && !name.contains("attention")))
        }
        _ => false,
    }
}

/// Bits and block for a rank-2 weight of `shape` stored as `dtype`, or
/// `None` when it stays float. `q4` puts 4 bits where they cost least per
/// byte saved (measured): an encoder's embedding table, a decoder's linear
/// layers; the rest gets 8. The block is the role's preferred size, or the
/// largest of 32 / 16 dividing the row (tiny test models).
pub(crate) fn plan(dtype: WeightDtype, role: Role, shape: &[usize]) -> Option<(u32, usize)> {
    if shape.len() != 2 || shape[0] < MIN_QUANT_ROWS || shape[1] == 0 {
        return None;
    }
    let bits = match (dtype, role) {
        (WeightDtype::F32 | WeightDtype::F16, _) => return None,
        (WeightDtype::Q8 | WeightDtype::Int8, _) => 8,
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
pub(crate) struct HostQuant {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) bits: u32,
    pub(crate) block: usize,
    /// `[rows, cols * bits / 32]`.
    pub(crate) packed: Vec<u32>,
    /// `[rows, cols / block]`.
    pub(crate) scales: Vec<half::f16>,
}

impl HostQuant {
    /// Quantize row-major `[rows, cols]` values: per block, the scale is
    /// `absmax / qmax` rounded to f16, and each value
    /// `clamp(round(v / scale), ±qmax)` (round half away from zero; NaN,
    /// and ±inf in a block whose scale is infinite, give 0).
    ///
    /// Written as lane selects and one word per `32 / bits` values so
    /// that it vectorizes everywhere: `f32::max`, `f32::round` and the
    /// saturating `as` are library calls in wasm (`fmaxf`, `roundf`) and
    /// scalar natively, and the packing divided per value — a q8 load of
    /// an f32 checkpoint in the browser spent most of its time here.
    /// Bit for bit the arithmetic of the straightforward loop
    /// (`tests::quantize_reference`).
    pub(crate) fn quantize(values: &[f32], rows: usize, cols: usize, bits: u32, block: usize) -> Self {
        assert!(bits == 8 || bits == 4, "bits must be 4 or 8");
        assert!(cols % block == 0 && block % (32 / bits as usize) == 0 && values.len() == rows * cols);
        let qmax = ((1u32 << (bits - 1)) - 1) as f32; // 127 or 7
        let offset = 1i32 << (bits - 1); // stored unsigned: q + 128 or q + 8
        let per_word = 32 / bits as usize;
        let mut packed = vec![0u32; rows * cols / per_word];
        let mut scales = Vec::with_capacity(rows * cols / block);
        for (chunk, words) in values.chunks_exact(block).zip(packed.chunks_exact_mut(block / per_word)) {
            let absmax = crate::kernels::int8::absmax(chunk);
            // The scale is stored in f16: quantize against the rounded value
            // so dequantization reproduces exactly what was encoded.
            let scale = half::f16::from_f32(absmax / qmax);
            scales.push(scale);
            let s = scale.to_f32();
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            for (vals, word) in chunk.chunks_exact(per_word).zip(words.iter_mut()) {
                let mut w = 0u32;
                for (i, &v) in vals.iter().enumerate() {
                    let u = (round_away_clamped(v * inv, qmax) + offset) as u32;
                    w |= u << (i as u32 * bits);
                }
                *word = w;
            }
        }
        Self { rows, cols, bits, block, packed, scales }
    }

    /// Signed `bits`-bit values (row-major; stored `q + 2^(bits−1)`, as
    /// [`HostQuant::quantize`] writes them) and their scales, packed.
    pub(crate) fn from_signed(levels: &[i8], scales: Vec<half::f16>, rows: usize, cols: usize, bits: u32, block: usize) -> Self {
        let (per_word, offset) = (32 / bits as usize, 1i32 << (bits - 1));
        let packed = levels
            .chunks_exact(per_word)
            .map(|vals| vals.iter().enumerate().fold(0u32, |w, (i, &q)| w | (((q as i32 + offset) as u32) << (i as u32 * bits))))
            .collect();
        Self { rows, cols, bits, block, packed, scales }
    }

    /// Back to f32, row-major.
    pub(crate) fn dequantize(&self) -> Vec<f32> {
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
}

/// `round(y).clamp(-qmax, qmax) as i32` for an integer `qmax` < 2^23, NaN
/// to 0, without library calls: clamping first gives the same result
/// (`qmax` is an integer), truncation is the conversion, and the exact
/// remainder `y - trunc(y)` decides the half-away-from-zero step.
#[inline(always)]
fn round_away_clamped(y: f32, qmax: f32) -> i32 {
    let y = if y.is_nan() { 0.0 } else { y };
    let y = if y > qmax {
        qmax
    } else if y < -qmax {
        -qmax
    } else {
        y
    };
    // SAFETY: |y| ≤ qmax < 2^23, finite.
    let t = unsafe { y.to_int_unchecked::<i32>() };
    let f = y - t as f32;
    if f >= 0.5 {
        t + 1
    } else if f <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// Whether the linear layer `prefix` (a Hugging Face module name) takes
/// quantized activations when its weights are quantized and the CPU has
/// integer kernels (`kernels::int8`); the others dequantize their weights
/// and multiply in f32. Every layer does: with 16-bit activations no layer
/// measured a fidelity cost (all-MiniLM-L6-v2 q8 cosine 0.99953 vs
/// weight-only 0.99945). `CROSSRANK_INT8_SKIP=name,name` keeps the layers
/// whose names contain one of them in f32 — the diagnostic that showed
/// 8-bit activations losing fidelity in every kind of layer, not in one.
pub(crate) fn int8_activations(prefix: &str) -> bool {
    match std::env::var("CROSSRANK_INT8_SKIP") {
        Ok(v) => !v.split(',').any(|s| !s.is_empty() && prefix.contains(s)),
        Err(_) => true,
    }
}

/// Whether a weight of `shape` is stored in f16 under `dtype`: the same
/// matrices q8 would quantize (rank 2, at least [`MIN_QUANT_ROWS`] rows),
/// with an even row length so two values share a 32-bit word where the
/// device has no f16 type.
pub(crate) fn half_plan(dtype: WeightDtype, shape: &[usize]) -> bool {
    dtype == WeightDtype::F16 && shape.len() == 2 && shape[0] >= MIN_QUANT_ROWS && shape[1] % 2 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * if i % 97 == 0 { 4.0 } else { 1.0 }).collect()
    }

    /// The quantizer as first written (a value at a time, `f32::round`,
    /// `clamp`, the saturating cast): the definition `quantize` keeps.
    fn quantize_reference(values: &[f32], rows: usize, cols: usize, bits: u32, block: usize) -> HostQuant {
        let qmax = ((1u32 << (bits - 1)) - 1) as f32;
        let offset = 1u32 << (bits - 1);
        let per_word = 32 / bits as usize;
        let mut packed = vec![0u32; rows * cols / per_word];
        let mut scales = Vec::new();
        for (b, chunk) in values.chunks_exact(block).enumerate() {
            let absmax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
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
        HostQuant { rows, cols, bits, block, packed, scales }
    }

    #[test]
    fn quantize_matches_the_reference_bit_for_bit() {
        // Halves (x.5 steps after scaling), NaN, ±inf, zero blocks,
        // subnormals, f16-overflowing magnitudes, and pseudo-random values.
        let mut state = 0x2545_f491u32;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let (rows, cols) = (37, 192);
        let mut v: Vec<f32> = (0..rows * cols).map(|_| (rnd() as f32 / u32::MAX as f32 - 0.5) * 8.0).collect();
        for (i, x) in v.iter_mut().enumerate() {
            match rnd() % 23 {
                0 => *x = (i % 15) as f32 * 0.5 - 3.5,
                1 => *x = f32::NAN,
                2 if i % 3 == 0 => *x = f32::INFINITY,
                3 if i % 5 == 0 => *x = f32::NEG_INFINITY,
                4 => *x = 1e-40,
                5 => *x = -1e30,
                _ => {}
            }
        }
        v[..64].fill(0.0);
        v[64..128].iter_mut().enumerate().for_each(|(i, x)| *x = (i as f32 - 32.0) * 0.25);
        // Exact halves after scaling: each 16 values open with the block's
        // absmax, 127 (q8: scale 1.0) or 7 (q4: scale 1.0), then x.5 values.
        for (g, group) in v[128..256].chunks_exact_mut(16).enumerate() {
            let (top, span) = if g < 4 { (127.0, 120.0) } else { (7.0, 13.0) };
            group[0] = if g % 2 == 0 { top } else { -top };
            for (j, x) in group[1..].iter_mut().enumerate() {
                *x = ((j as f32 * 0.37) % 1.0 - 0.5) * span + 0.5 - (j % 2) as f32;
                *x = x.trunc() + x.signum() * 0.5;
            }
        }
        for bits in [8, 4] {
            for block in [16, 32, 64] {
                let got = HostQuant::quantize(&v, rows, cols, bits, block);
                let want = quantize_reference(&v, rows, cols, bits, block);
                assert_eq!(
                    got.scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                    want.scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                    "bits {bits} block {block}"
                );
                assert_eq!(got.packed, want.packed, "bits {bits} block {block}");
            }
        }
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
        assert_eq!(Role::of("layers.3.self_attn.q_proj.weight"), Role::DecoderLinear);
        assert_eq!(Role::of("embed_tokens.weight"), Role::TiedEmbedding);
        assert_eq!(Role::of("lm_head.2.linear_head.weight"), Role::TiedEmbedding);
        // ModernBERT is an encoder, whatever its `model.layers.N` prefix.
        assert_eq!(Role::of("model.layers.1.attn.Wqkv.weight"), Role::Linear);
        assert_eq!(Role::of("model.layers.1.mlp.Wi.weight"), Role::Linear);
        assert_eq!(Role::of("model.embeddings.tok_embeddings.weight"), Role::Embedding);
        assert_eq!(plan(q4m, Role::DecoderLinear, &[2048, 16384]), Some((4, 32)));
        assert_eq!(plan(q4m, Role::TiedEmbedding, &[256000, 2048]), Some((8, 64)));
    }
}
