//! Multi-head self-attention on packed tokens: per sequence on the CPU's
//! host buffers, through gathers into the padded layout elsewhere.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData, module};
use gemm::{Parallelism, gemm};

use super::on_host;

/// How [`packed_attention`] runs for one batch, built once for all layers.
pub(crate) enum AttentionPlan {
    /// The CPU: each sequence over its own tokens, on the host; with a
    /// window, each token over the keys at most `window` positions away.
    Host { seqs: Vec<(usize, usize)>, heads: usize, window: Option<usize> },
    /// Index tensors into and out of the padded, head-split layout.
    Gathered { qkv: Tensor<1, Int>, merge: Tensor<1, Int>, mask: Tensor<4, Bool>, dims: [usize; 3] },
}

impl AttentionPlan {
    /// The plan for packed rows holding `seqs` — `(first packed row,
    /// length)` of every sequence, in order — then filler rows up to `rows`.
    /// `window`: sliding-window attention (ModernBERT's local layers), each
    /// query seeing the keys at most that many positions away.
    pub(crate) fn new(seqs: &[(usize, usize)], rows: usize, heads: usize, window: Option<usize>, device: &Device) -> Self {
        if on_host(device) {
            return Self::Host { seqs: seqs.to_vec(), heads, window };
        }
        Self::gathered(seqs, rows, heads, window, device)
    }

    /// The padded-layout gathers (any device): `[batch, heads, longest,
    /// head_dim]`, padding positions reading packed row 0 and masked as
    /// keys, as are keys outside the window.
    pub(crate) fn gathered(seqs: &[(usize, usize)], rows: usize, heads: usize, window: Option<usize>, device: &Device) -> Self {
        let b = seqs.len();
        let t = seqs.iter().map(|s| s.1).max().unwrap_or(0).max(1);
        // The packed row of each padded position; padding reads row 0.
        let at = |r: usize, c: usize| if c < seqs[r].1 { seqs[r].0 + c } else { 0 };
        // q, k and v rows of `head_dim` values, `[3, b, heads, t]` order,
        // from a fused projection viewed as `[rows * 3 * heads, head_dim]`.
        let mut qkv = Vec::with_capacity(3 * b * heads * t);
        for s in 0..3 {
            for r in 0..b {
                for h in 0..heads {
                    for c in 0..t {
                        qkv.push((at(r, c) * 3 * heads + s * heads + h) as i64);
                    }
                }
            }
        }
        // And back: each packed row's heads from `[b, heads, t, head_dim]`
        // (filler rows read position (0, 0)).
        let mut merge = vec![0i64; rows * heads];
        for (r, &(start, len)) in seqs.iter().enumerate() {
            for c in 0..len {
                for h in 0..heads {
                    merge[(start + c) * heads + h] = ((r * heads + h) * t + c) as i64;
                }
            }
        }
        let int = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        let mask = match window {
            None => {
                let pad: Vec<bool> = seqs.iter().flat_map(|&(_, len)| (0..t).map(move |c| c >= len)).collect();
                Tensor::<4, Bool>::from_data(TensorData::new(pad, [b, 1, 1, t]), device)
            }
            Some(w) => {
                let m: Vec<bool> = seqs
                    .iter()
                    .flat_map(|&(_, len)| (0..t).flat_map(move |i| (0..t).map(move |j| j >= len || i.abs_diff(j) > w)))
                    .collect();
                Tensor::<4, Bool>::from_data(TensorData::new(m, [b, 1, t, t]), device)
            }
        };
        Self::Gathered { qkv: int(qkv), merge: int(merge), mask: mask.expand([b, heads, t, t]), dims: [b, heads, t] }
    }
}

/// Multi-head self-attention on packed tokens: `qkv` is `[rows, 3 *
/// hidden]` (a fused q|k|v projection), the result `[rows, hidden]`. On the
/// CPU see [`host_attention`]. Elsewhere one gather puts q, k and v
/// straight into the padded, head-split `[batch, heads, seq, head_dim]`
/// layout and one gather takes the context back out, the same copies a
/// head split and merge would make; padded keys are masked.
pub(crate) fn packed_attention(qkv: Tensor<2>, plan: &AttentionPlan) -> Tensor<2> {
    let (qkv_index, merge, mask, [b, heads, t]) = match plan {
        AttentionPlan::Host { seqs, heads, window } => return host_attention(qkv, seqs, *heads, *window),
        AttentionPlan::Gathered { qkv, merge, mask, dims } => (qkv, merge, mask, *dims),
    };
    let [n, width] = qkv.dims();
    let d = width / 3 / heads;
    let split = qkv.reshape([n * 3 * heads, d]).select(0, qkv_index.clone()).reshape([3, b, heads, t, d]);
    let part = |s: usize| split.clone().slice(s..s + 1).reshape([b, heads, t, d]);
    let ctx = module::attention(part(0), part(1), part(2), Some(mask.clone()), None, Default::default());
    ctx.reshape([b * heads * t, d]).select(0, merge.clone()).reshape([n, heads * d])
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

/// Query rows per block of windowed attention: each block reads its rows'
/// window of keys (`WINDOW_BLOCK + 2w`), so a larger block wastes more
/// products on masked keys and a smaller one makes more, smaller GEMMs.
const WINDOW_BLOCK: usize = 64;

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
fn host_attention(qkv: Tensor<2>, seqs: &[(usize, usize)], heads: usize, window: Option<usize>) -> Tensor<2> {
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
    // A window attends in blocks of query rows, each against only the keys
    // its rows can see: work linear in the length, not quadratic.
    let block = |len: usize| if window.is_some() { WINDOW_BLOCK.min(len.max(1)) } else { len.max(1) };
    let run = |scores: &mut Vec<f32>, (start, len, h): (usize, usize, usize)| {
        let mut i0 = 0;
        while i0 < len {
            let i1 = (i0 + block(len)).min(len);
            let (k0, k1) = match window {
                Some(w) => (i0.saturating_sub(w), (i1 - 1).saturating_add(w).saturating_add(1).min(len)),
                None => (0, len),
            };
            let (rows, keys) = (i1 - i0, k1 - k0);
            scores.clear();
            scores.resize(rows * keys, 0.0);
            let (q, k, v) =
                (&src[(start + i0) * width + h * d..], &src[(start + k0) * width + hidden + h * d..], &src[(start + k0) * width + 2 * hidden + h * d..]);
            // SAFETY: q is `rows` rows and k, v `keys` rows of `d` values at
            // stride `width` inside `src` (start + len <= n); scores is rows
            // × keys; the output block is rows start+i0..start+i1, columns
            // h*d..(h+1)*d of `out`.
            unsafe {
                // scores[i][j] = scale * sum_c q[i][c] * k[j][c]
                gemm(
                    rows,
                    keys,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    keys as isize,
                    false,
                    q.as_ptr(),
                    1,
                    width as isize,
                    k.as_ptr(),
                    width as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for (r, row) in scores.chunks_exact_mut(keys).enumerate() {
                match window {
                    // Keys [i - w, i + w] of this row, relative to k0.
                    Some(w) => {
                        let i = i0 + r;
                        let lo = i.saturating_sub(w).max(k0) - k0;
                        let hi = (i + w + 1).min(k1) - k0;
                        row[..lo].fill(0.0);
                        row[hi..].fill(0.0);
                        softmax(&mut row[lo..hi]);
                    }
                    None => softmax(row),
                }
            }
            unsafe {
                gemm(
                    rows,
                    d,
                    keys,
                    dst.at((start + i0) * hidden + h * d),
                    1,
                    hidden as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    keys as isize,
                    v.as_ptr(),
                    1,
                    width as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            i0 = i1;
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

    /// Per-sequence host attention equals Burn's attention on the padded,
    /// masked layout (the reference semantics), for short and long
    /// sequences and two head sizes.
    #[test]
    fn host_attention_equals_masked_padded_attention() {
        use burn::tensor::{Bool, module};
        let dev = Device::flex();
        for (heads, d, lens, window) in [
            (2usize, 8usize, vec![5usize, 3, 1], None),
            (12, 32, vec![150, 97, 256, 2], None),
            (4, 64, vec![300, 40], None),
            (2, 8, vec![5, 3, 1], Some(1usize)),
            (4, 16, vec![150, 97, 256, 2, 64, 65], Some(64)),
            (2, 32, vec![300, 40, 129], Some(8)),
        ] {
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
            let got = host_attention(Tensor::<2>::from_data(TensorData::new(vals.clone(), [n, 3 * hidden]), &dev), &seqs, heads, window)
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
                                padded[(((part * b + s) * heads + h) * t + i) * d + c] =
                                    vals[(st + i) * 3 * hidden + part * hidden + h * d + c];
                            }
                        }
                    }
                }
            }
            let all = Tensor::<1>::from_data(TensorData::new(padded, [3 * b * heads * t * d]), &dev).reshape([3, b, heads, t, d]);
            let part = |p: usize| all.clone().slice(p..p + 1).reshape([b, heads, t, d]);
            let mask: Vec<bool> = lens
                .iter()
                .flat_map(|&l| (0..t).flat_map(move |i| (0..t).map(move |j| j >= l || window.is_some_and(|w| i.abs_diff(j) > w))))
                .collect();
            let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, t, t]), &dev).expand([b, heads, t, t]);
            let want =
                module::attention(part(0), part(1), part(2), Some(mask), None, Default::default()).into_data().try_to_vec::<f32>().unwrap();
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
            assert!(worst <= 1e-5, "heads {heads} d {d} lens {lens:?} window {window:?}: max abs err {worst}");
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
}
