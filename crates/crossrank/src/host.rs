//! CPU fast paths that work on the CPU backend's host buffers directly,
//! where Burn's generic CPU kernels measured slow. Layers pick them with
//! `device::is_cpu`; every other device runs the plain tensor code.

use burn::tensor::{Int, Tensor, TensorData};
use gemm::{Parallelism, gemm};

/// `f((index, chunk))` over `v` cut into chunks of `size`, in parallel
/// where there are threads.
fn for_each_chunk(v: &mut [f32], size: usize, f: impl Fn((usize, &mut [f32])) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        v.par_chunks_mut(size).enumerate().for_each(f);
    }
    #[cfg(not(feature = "rayon"))]
    v.chunks_mut(size).enumerate().for_each(f);
}

/// `erf` to within a few f32 ulps (max abs error 4.2e-7 vs libm, unit-tested)
/// without a branch or a call, so the loop below vectorizes: the rational
/// approximation of Eigen's / TensorFlow's `generic_fast_erf_float`; outside
/// ±4 erf is ±1 in f32.
#[inline(always)]
fn erf_fast(x: f32) -> f32 {
    // Plain multiply-adds, not `mul_add`: without FMA enabled at compile
    // time (the x86-64 baseline) `mul_add` is a libm call per element.
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906e-4;
    p = x2 * p - 2.954_600_1e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329e-3;
    q = x2 * q - 1.426_474e-2;
    x * p / q
}

/// Exact-erf GELU on the CPU backend, in place on the activation's own
/// buffer: Burn's CPU GELU calls scalar libm `erff` per element, which the
/// profile put at 13% of bge-reranker-base's CPU time.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let mut data = x.into_data();
    let v = data.as_mut_slice::<f32>().expect("f32 activations");
    for_each_chunk(v, 1 << 14, |(_, c)| {
        for y in c {
            *y = 0.5 * *y * (1.0 + erf_fast(*y * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
    Tensor::<D>::from_data(data, &device)
}

/// `exp` within 2 f32 ulps for x ≤ 88 (unit-tested against libm), branch-
/// and call-free so softmax loops vectorize: Cephes' `expf` — x = n ln2 + r,
/// a degree-6 polynomial for eʳ, 2ⁿ put in the exponent bits. Below -87 it
/// returns ~1e-38 instead of a denormal or 0, immaterial next to softmax's
/// largest term, 1. The profile put scalar libm `expf` and its loop at 9%
/// of bge-reranker-base's CPU time.
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest through the 1.5·2²³ trick (no `roundf` call).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// In-place softmax of one row, in passes that vectorize (eight partial
/// sums: a single running sum is a serial dependency).
fn softmax(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    row.iter_mut().for_each(|x| *x = exp_fast(*x - max));
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    let sum = lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// Unpack a quantized `[rows, cols]` matrix to f32 in one pass: `bits`-wide
/// fields of 32-bit words (low field first), recentred by 2^(bits-1), times
/// one scale per `block` values — the same arithmetic as `quant::unpack`'s
/// tensor ops, so the values are identical. Those ops (shifts, masks, a
/// concatenation, a cast, a broadcast multiply: each a pass over the
/// matrix) made q8 16% slower than f32 on the CPU.
pub(crate) fn dequantize(packed: Tensor<2, Int>, scales: Tensor<2>, bits: u32, block: usize, cols: usize) -> Tensor<2> {
    let device = packed.device();
    let [rows, words] = packed.dims();
    let groups = cols / block;
    let packed = packed.into_data().convert::<i32>();
    let scales = scales.into_data().convert::<f32>();
    let (packed, scales) = (packed.as_slice::<i32>().expect("i32 words"), scales.as_slice::<f32>().expect("f32 scales"));
    let per_word = (32 / bits) as usize;
    let mask = (1u32 << bits) - 1;
    let offset = 1i32 << (bits - 1);
    let mut out = vec![0f32; rows * cols];
    let row = |(r, dst): (usize, &mut [f32])| {
        let (w, sc) = (&packed[r * words..(r + 1) * words], &scales[r * groups..(r + 1) * groups]);
        for (g, (chunk, &scale)) in dst.chunks_exact_mut(block).zip(sc).enumerate() {
            let base = g * block / per_word;
            for (i, x) in chunk.iter_mut().enumerate() {
                let word = w[base + i / per_word] as u32;
                let field = (word >> ((i % per_word) as u32 * bits)) & mask;
                *x = (field as i32 - offset) as f32 * scale;
            }
        }
    };
    for_each_chunk(&mut out, cols, row);
    Tensor::from_data(TensorData::new(out, [rows, cols]), &device)
}

/// A pointer the attention tasks write disjoint blocks through.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every task writes a block (its sequence's rows × its head's
// columns) no other task touches, and the buffer outlives the tasks.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer (see `attention`).
        unsafe { self.0.add(offset) }
    }
}

/// Multi-head self-attention on packed tokens, each sequence over its own
/// tokens only: no padded rows, no padded keys, no masks. `qkv` is `[n,
/// 3 * hidden]` (q | k | v, heads side by side within each), `seqs` the
/// `(first packed row, length)` of every sequence; the result is `[n,
/// hidden]` (filler rows zero). Per (sequence, head), in parallel: scores =
/// q kᵀ / √d with gemm reading q, k and v in place through strides,
/// softmax, then scores · v written straight into the output's columns —
/// no head split or merge copies. Replaced Burn's CPU attention on the
/// gathered padded layout, which the profile put at 12.5% plus 3% of
/// gathers.
pub(crate) fn attention(qkv: Tensor<2>, seqs: &[(usize, usize)], heads: usize) -> Tensor<2> {
    let device = qkv.device();
    let [n, width] = qkv.dims();
    let hidden = width / 3;
    let d = hidden / heads;
    assert!(seqs.iter().all(|&(s, l)| s + l <= n) && d * heads * 3 == width, "attention: bad packing");
    let data = qkv.cast(burn::tensor::FloatDType::F32).into_data();
    let src = data.as_slice::<f32>().expect("f32 activations");
    let mut out = vec![0f32; n * hidden];
    let dst = SharedOut(out.as_mut_ptr());
    let scale = 1.0 / (d as f32).sqrt();
    let run = |scores: &mut Vec<f32>, (start, len, h): (usize, usize, usize)| {
        scores.clear();
        scores.resize(len * len, 0.0);
        let row = start * width + h * d;
        let (q, k, v) = (&src[row..], &src[row + hidden..], &src[row + 2 * hidden..]);
        // SAFETY: q, k and v are `len` rows of `d` values at stride `width`
        // inside `src` (start + len <= n); scores is len × len; the output
        // block is rows start..start+len, columns h*d..(h+1)*d of `out`.
        unsafe {
            // scores[i][j] = scale * sum_c q[i][c] * k[j][c]
            gemm(
                len, len, d,
                scores.as_mut_ptr(), 1, len as isize, false,
                q.as_ptr(), 1, width as isize,
                k.as_ptr(), width as isize, 1,
                0.0, scale, false, false, false, Parallelism::None,
            );
        }
        scores.chunks_exact_mut(len).for_each(softmax);
        unsafe {
            gemm(
                len, d, len,
                dst.at(start * hidden + h * d), 1, hidden as isize, false,
                scores.as_ptr(), 1, len as isize,
                v.as_ptr(), 1, width as isize,
                0.0, 1.0, false, false, false, Parallelism::None,
            );
        }
    };
    let tasks = seqs.iter().flat_map(|&(s, l)| (0..heads).map(move |h| (s, l, h)));
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        tasks.collect::<Vec<_>>().into_par_iter().for_each_init(Vec::new, run);
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut scores = Vec::new();
        tasks.for_each(|t| run(&mut scores, t));
    }
    Tensor::from_data(TensorData::new(out, [n, hidden]), &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, activation};

    /// Per-sequence host attention equals Burn's attention on the padded,
    /// masked layout (the reference semantics), for short and long
    /// sequences and two head sizes.
    #[test]
    fn host_attention_equals_masked_padded_attention() {
        use burn::tensor::{Bool, module};
        let dev = Device::flex();
        for (heads, d, lens) in [(2usize, 8usize, vec![5usize, 3, 1]), (12, 32, vec![150, 97, 256, 2]), (4, 64, vec![300, 40])] {
            let hidden = heads * d;
            let (b, t) = (lens.len(), *lens.iter().max().unwrap());
            let n: usize = lens.iter().sum();
            let mut x = 12345u32;
            let vals: Vec<f32> = (0..n * 3 * hidden)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 2001) as f32 / 500.0 - 2.0
                })
                .collect();
            let mut seqs = Vec::new();
            let mut start = 0;
            for &l in &lens {
                seqs.push((start, l));
                start += l;
            }
            let got = attention(Tensor::<2>::from_data(TensorData::new(vals.clone(), [n, 3 * hidden]), &dev), &seqs, heads)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            // Reference: padded [b, heads, t, d] with a key mask.
            let mut padded = vec![0f32; 3 * b * heads * t * d];
            for (s, &(st, l)) in seqs.iter().enumerate() {
                for i in 0..l {
                    for part in 0..3 {
                        for h in 0..heads {
                            for c in 0..d {
                                padded[(((part * b + s) * heads + h) * t + i) * d + c] = vals[(st + i) * 3 * hidden + part * hidden + h * d + c];
                            }
                        }
                    }
                }
            }
            let all = Tensor::<1>::from_data(TensorData::new(padded, [3 * b * heads * t * d]), &dev).reshape([3, b, heads, t, d]);
            let part = |p: usize| all.clone().slice(p..p + 1).reshape([b, heads, t, d]);
            let mask: Vec<bool> = lens.iter().flat_map(|&l| (0..t).map(move |j| j >= l)).collect();
            let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, 1, t]), &dev).expand([b, heads, t, t]);
            let want = module::attention(part(0), part(1), part(2), Some(mask), None, Default::default()).into_data().try_to_vec::<f32>().unwrap();
            let mut worst = 0f32;
            for (s, &(st, l)) in seqs.iter().enumerate() {
                for i in 0..l {
                    for h in 0..heads {
                        for c in 0..d {
                            let w = want[((s * heads + h) * t + i) * d + c];
                            worst = worst.max((got[(st + i) * hidden + h * d + c] - w).abs());
                        }
                    }
                }
            }
            assert!(worst <= 1e-5, "heads {heads} d {d} lens {lens:?}: max abs err {worst}");
        }
    }

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0f32;
        for i in 0..=2_000_000 {
            let x = -87.0 + i as f32 * (87.0 + 88.0) / 2e6;
            let (got, want) = (exp_fast(x), libm::expf(x));
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst <= 2.5e-7, "exp max rel error {worst}");
        assert!(exp_fast(-1e30) < 1e-37 && exp_fast(0.0) == 1.0);
        let mut row = vec![0.5, -3.0, 2.0, 2.0, -100.0, 0.0, 1.0, 7.0, -2.5, 3.0];
        let want: Vec<f32> = {
            let z: f32 = row.iter().map(|x: &f32| (x - 7.0).exp()).sum();
            row.iter().map(|x| (x - 7.0).exp() / z).collect()
        };
        softmax(&mut row);
        for (g, w) in row.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-7, "{g} vs {w}");
        }
    }

    #[test]
    fn fast_erf_and_host_gelu_match_libm() {
        let mut worst = 0f32;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            worst = worst.max((erf_fast(x) - libm::erff(x)).abs());
        }
        assert!(worst <= 5e-7, "erf max abs error {worst}");
        assert!((erf_fast(1e30) - 1.0).abs() <= 2e-7 && (erf_fast(-7.0) + 1.0).abs() <= 2e-7);
        let dev = Device::flex();
        let xs: Vec<f32> = (0..3000).map(|i| (i as f32 - 1500.0) * 0.01).collect();
        let t = Tensor::<2>::from_data(TensorData::new(xs.clone(), [30, 100]), &dev);
        let got = gelu(t.clone()).into_data().try_to_vec::<f32>().unwrap();
        let want = activation::gelu(t).into_data().try_to_vec::<f32>().unwrap();
        for ((g, w), x) in got.iter().zip(&want).zip(&xs) {
            assert!((g - w).abs() <= 1e-6 * (1.0 + x.abs()), "gelu({x}): {g} vs {w}");
        }
    }
}
