//! Activation quantization: each row of `x`, per block, to 16-bit or 8-bit
//! values and a scale (the arithmetic in the module doc, vectorizable as
//! written), written straight into the element type a kernel reads (i16,
//! i8, or u8 biased by 128 for `vpdpbusd`), and the two-digit re-encoding
//! the 8-bit dot-product kernels take for 16-bit activations.

/// Activations quantized per row and block: i16 values (within ±32767)
/// and block scales `d`.
pub(crate) struct Acts {
    pub(crate) m: usize,
    pub(crate) q: Vec<i16>,
    pub(crate) d: Vec<f32>,
}

/// The 16-bit activations' largest magnitude (`q8`).
pub(crate) const QMAX16: i32 = 32767;
/// The 8-bit activations' largest magnitude (`int8`): symmetric, so that
/// `−q` is representable and `|q| · |w| ≤ 127²` keeps `vpmaddubsw`'s pair
/// sums below i16's limit (the AVX2 kernel).
pub(crate) const QMAX8: i32 = 127;

/// What a kernel reads a quantized activation as.
pub(super) trait Elem: Copy + Default + Send + Sync {
    fn from_q(q: i32) -> Self;
}
impl Elem for i16 {
    #[inline(always)]
    fn from_q(q: i32) -> Self {
        q as i16
    }
}
impl Elem for i8 {
    #[inline(always)]
    fn from_q(q: i32) -> Self {
        q as i8
    }
}
/// `q + 128`: the unsigned operand of `vpdpbusd` (u8 × s8).
impl Elem for u8 {
    #[inline(always)]
    fn from_q(q: i32) -> Self {
        (q + 128) as u8
    }
}

/// Round half to even for |v| < 2^22 with two f32 additions (the FPU's
/// default rounding): the same on every target, and vectorizable without
/// SSE4.1's `roundps`.
#[inline(always)]
pub(super) fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (v + MAGIC) - MAGIC
}

/// The largest `|v|`, NaN ignored (as `f32::max` does), over lanes of 8
/// so that it vectorizes (`f32::max` does not). Also the load-time weight
/// quantizer's (`quant`).
#[inline(always)]
pub(crate) fn absmax(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for c in chunks.by_ref() {
        for (l, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *l = if a > *l { a } else { *l };
        }
    }
    let tail = chunks.remainder().iter().map(|v| v.abs());
    lanes.into_iter().chain(tail).fold(0f32, |m, a| if a > m { a } else { m })
}

/// Quantize one block (a multiple of 8 values) into `q`; its scale. Written
/// as selects over lanes of 8 so that it compiles to vector compares and
/// conversions on every target (`f32::max`/`clamp` and the saturating
/// `as` cast each keep it scalar: with the per-value division the weight
/// repack had, 4% of a native q8 forward pass), with
/// the same results: NaN is ignored by the maximum and quantizes to 0.
#[inline(always)]
pub(super) fn quantize_block<T: Elem, const QMAX: i32>(xb: &[f32], qb: &mut [T]) -> f32 {
    let qmax = QMAX as f32;
    let amax = absmax(xb);
    let (scale, inv) = if amax > 0.0 && amax.is_finite() { (amax / qmax, qmax / amax) } else { (0.0, 0.0) };
    for (xc, qc) in xb.chunks_exact(8).zip(qb.chunks_exact_mut(8)) {
        for (v, o) in xc.iter().zip(qc.iter_mut()) {
            // |x·inv| ≤ QMAX up to rounding: clamped; NaN (x NaN, or ±inf
            // times a 0 scale) is 0.
            let y = v * inv;
            let y = if y > qmax {
                qmax
            } else if y < -qmax {
                -qmax
            } else {
                y
            };
            let y = if y.is_nan() { 0.0 } else { round_even(y) };
            // SAFETY: y is an integer within ±qmax (not NaN, not infinite).
            *o = T::from_q(unsafe { y.to_int_unchecked::<i32>() });
        }
    }
    scale
}

/// Quantize `[m, k]` row-major f32 activations per row and `block` to
/// 16 bits (`q8`'s activations; the tests' way to the scalar reference).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn quantize_acts(x: &[f32], m: usize, k: usize, block: usize) -> Acts {
    quantize_acts_to(x, m, k, block, QMAX16)
}

/// [`quantize_acts`] to `qmax` ([`QMAX16`] or [`QMAX8`]), as i16.
pub(crate) fn quantize_acts_to(x: &[f32], m: usize, k: usize, block: usize, qmax: i32) -> Acts {
    let (q, d) = if qmax == QMAX8 { quantize_rows::<i16, QMAX8>(x, m, k, block) } else { quantize_rows::<i16, QMAX16>(x, m, k, block) };
    Acts { m, q, d }
}

/// Quantize `[m, k]` row-major f32 activations per row and `block` to
/// `±QMAX` as `T`: the values `[m, k]` and the scales `[m, k / block]`.
pub(super) fn quantize_rows<T: Elem, const QMAX: i32>(x: &[f32], m: usize, k: usize, block: usize) -> (Vec<T>, Vec<f32>) {
    let blocks = k / block;
    let mut q = vec![T::default(); m * k];
    let mut d = vec![0f32; m * blocks];
    let row = |((xr, qr), dr): ((&[f32], &mut [T]), &mut [f32])| {
        for (b, (xb, qb)) in xr.chunks_exact(block).zip(qr.chunks_exact_mut(block)).enumerate() {
            dr[b] = quantize_block::<T, QMAX>(xb, qb);
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (x.par_chunks_exact(k).zip(q.par_chunks_exact_mut(k))).zip(d.par_chunks_exact_mut(blocks)).with_min_len(16).for_each(row);
    }
    #[cfg(not(feature = "rayon"))]
    (x.chunks_exact(k).zip(q.chunks_exact_mut(k))).zip(d.chunks_exact_mut(blocks)).for_each(row);
    (q, d)
}

/// Re-encode quantized activations in place, per block of `block` values,
/// as their 8-bit digits: `block` high bytes (`q >> 8`, signed −128..127)
/// then `block` low bytes (`q & 255`, unsigned), so that `q = 256·hi + lo`
/// exactly for every i16.
pub(super) fn to_digits(q: &mut [i16], block: usize) {
    let mut bytes = [0u8; 64];
    for b in q.chunks_exact_mut(block) {
        for (j, v) in b.iter().enumerate() {
            bytes[j] = (*v >> 8) as u8;
            bytes[block + j] = *v as u8;
        }
        // SAFETY: the block's 2·block bytes, written as bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<u8>(), 2 * block) };
        out.copy_from_slice(&bytes[..2 * block]);
    }
}
