//! Integer GEMM for quantized linear layers on the CPU backend (native and
//! wasm): `y = x Wᵀ + b` with `W` in the checkpoint's q8/q4 block format
//! (one f16 scale per block of 16 or 32 weights along a row) and `x`
//! quantized on the fly per row and block — llama.cpp's Q8_0 × Q8_0
//! arrangement: integer dot products inside a block, one scale multiply per
//! block. Two activation widths:
//!
//! * **16 bits** (`q8`, `q4`: the faithful default), below;
//! * **8 bits** (`int8`: ONNX Runtime's int8 speed class, at the
//!   fidelity per-row-and-block scales keep — real all-MiniLM-L6-v2 cosine
//!   0.998 vs ONNX Runtime's per-tensor 0.905), with panels built once at
//!   load: [`panels`].
//!
//! Why 16 bits is the default:
//!
//! * int8 activations cost fidelity everywhere, not in one layer: the real
//!   all-MiniLM-L6-v2 q8 fell from cosine 0.99945 (weight-only) to 0.99815
//!   vs f32, under the 0.999 gate, and keeping any one kind of layer in f32
//!   (q/k/v, attention output, intermediate, output, first or last layer)
//!   left it at 0.9982–0.9988. With 16-bit activations it is weight-only
//!   quantization's 0.99945.
//! * It costs nothing on AVX2 and wasm SIMD128, whose exact integer
//!   multiply-add is i16 × i16 (`vpmaddwd`, `i32x4.dot_i16x8_s`;
//!   `vpmaddubsw`'s u8 × s8 pair sums saturate i16 at 255·127·2), and
//!   AVX-512 VNNI has the i16 form too (`vpdpwssd`, 32 products per
//!   instruction and fused accumulation: twice an f32 FMA's 16).
//!
//! The arithmetic every path computes, bit for bit (the scalar
//! [`reference`] is the definition; each SIMD path is tested against it):
//!
//! * activations, per row `m` and block `b`: `amax = max |x|`,
//!   `d = amax / Q`, `q = round_half_even(x · (Q / amax))` (0 where
//!   `amax` is 0 or not finite), so `|q| ≤ Q` — `Q` = 32767 (16-bit) or
//!   127 (8-bit);
//! * weights: the stored unsigned field minus 2^(bits−1) (q8: −127..127,
//!   q4: −7..7), scale `s` (the f16 block scale);
//! * per output `(m, n)`: `acc = 0`; for each block in order
//!   `acc += (i32_dot as f32 · s[n, b]) · d[m, b]`, three roundings, no
//!   fused multiply-add (wasm SIMD128 has none); then `acc + bias`.
//!
//! The integer dot of a block is exact on every path (|dot| ≤ 32·127·32767
//! < 2^31), and every path applies the same f32 operations in the same
//! order, so all paths give identical outputs; a blocked loop over K
//! accumulates through the output buffer, which keeps that order.
//!
//! Paths, chosen once at run time (`path()`), overridable with
//! `CROSSRANK_INT8=off|scalar|avx2|avx512|neon|dotprod|i8mm|simd128` (for
//! benchmarks: `off` restores dequantize-to-f32 + f32 GEMM):
//! * x86-64 AVX-512 VNNI (`vpdpwssd`);
//! * x86-64 AVX2 (`vpmaddwd` + `vpaddd`);
//! * aarch64 with the dot-product extension (`sdot`/`udot`: Apple M1 and
//!   later, Graviton 2 and later, Cortex-A55/A76 and later): a 16-bit
//!   activation is two 8-bit digits, `q = 256·hi + lo`, so one block's
//!   dot is `256·sdot(hi, w) + udot(lo, w + 128) − 128·Σlo` — two
//!   instructions per 16 products, twice `smlal`'s rate ([`Layout::I8Quads`]);
//! * aarch64 with the 8-bit matrix multiply extension (i8mm: Apple M2 and
//!   later, Graviton 3 and later, Cortex-A510/A710/X2 and later): the same
//!   two digits, but `smmla` (hi) and `usmmla` (lo, unsigned × signed: no
//!   correction term) each multiply a 2 × 8 block of two rows by an 8 × 2
//!   block of two columns — 32 products per instruction, twice `sdot`'s
//!   ([`Layout::I8Octets`]);
//! * aarch64 NEON without either (`smlal`/`smlal2`, i16 × i16 widened);
//! * wasm32 SIMD128 (`i32x4.dot_i16x8_s`, the same arrangement as AVX2);
//! * the scalar reference elsewhere.
//!
//! Not here, and why: AMX (`tdpbssd` is 8-bit × 8-bit only: the digit
//! split would need two tiles per product and AMX's tile setup per call;
//! unmeasurable without such a CPU); wasm relaxed SIMD for 16-bit
//! activations (`i32x4.relaxed_dot_i8x16_i7x16_add_s` multiplies by
//! 7-bit unsigned values only, so a 16-bit activation takes three digits,
//! and even the 8-bit form measured no faster than `i32x4.dot_i16x8_s`
//! on an AVX2 host: see [`panels`]).

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod acts;
mod driver;
mod pack;
mod panels;
mod path;
mod scalar;
#[cfg(target_arch = "wasm32")]
mod simd128;
#[cfg(target_arch = "x86_64")]
mod x86;

#[allow(unused_imports)] // quantize_acts: the tests'
pub(crate) use acts::{Acts, QMAX8, QMAX16, absmax, quantize_acts, quantize_acts_to};
pub(crate) use panels::Panels;
#[allow(unused_imports)] // the SIMD kernels' (none on some targets)
use driver::{Layout, TileArgs, tiles};
pub(crate) use path::{Path, path};
pub(crate) use scalar::reference;

/// A quantized weight matrix `[n, k]` as stored: `bits`-wide unsigned
/// fields of 32-bit words (low field first) and one scale per block.
#[derive(Clone, Copy)]
pub(crate) struct QuantWeights<'a> {
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) bits: u32,
    pub(crate) block: usize,
    /// `[n, k * bits / 32]`.
    pub(crate) words: &'a [u32],
    /// `[n, k / block]`.
    pub(crate) scales: &'a [f32],
}

impl QuantWeights<'_> {
    /// The signed value at `(row, col)`.
    #[inline(always)]
    pub(crate) fn q(&self, row: usize, col: usize) -> i32 {
        let per_word = 32 / self.bits as usize;
        let idx = row * self.k + col;
        let field = (self.words[idx / per_word] >> ((idx % per_word) as u32 * self.bits)) & ((1u32 << self.bits) - 1);
        field as i32 - (1i32 << (self.bits - 1))
    }

    pub(super) fn blocks(&self) -> usize {
        self.k / self.block
    }
}

/// `out[m, n] = Σ_b dot_b · s · d (+ bias[n])` for `x` `[m, k]` on `path`
/// with activations quantized to `±qmax` ([`QMAX16`] or [`QMAX8`]), or
/// `None` when the path does not take this shape (block not 16 or 32,
/// 8-bit activations on weights that are not q8, or `Off`), for the
/// caller's f32 fallback. A SIMD path builds the [`Panels`] for this call
/// (a model builds a q8 layer's once, at load).
pub(crate) fn linear(path: Path, x: &[f32], m: usize, w: &QuantWeights, bias: Option<&[f32]>, qmax: i32) -> Option<Vec<f32>> {
    if !matches!(w.block, 16 | 32) || w.k % w.block != 0 || x.len() != m * w.k || (qmax == QMAX8 && w.bits != 8) {
        return None;
    }
    if m == 0 || w.n == 0 {
        return (path != Path::Off).then(|| vec![0f32; m * w.n]);
    }
    match path {
        Path::Off => None,
        Path::Scalar => {
            let mut out = reference(&quantize_acts_to(x, m, w.k, w.block, qmax), w);
            add_bias(&mut out, w.n, bias);
            Some(out)
        }
        _ => Panels::new(path, w, qmax).map(|p| p.linear(x, m, bias)),
    }
}

/// `out[m, n] += bias[n]` for every row of `out` (`[.., n]`).
fn add_bias(out: &mut [f32], n: usize, bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(n) {
            row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
        }
    }
}

#[cfg(test)]
mod tests;
