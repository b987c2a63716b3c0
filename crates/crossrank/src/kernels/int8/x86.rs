//! x86-64 integer kernels: AVX2 and AVX-512 VNNI, chosen at run time.
//!
//! Both are outer-product micro-kernels over a tile of `MR` rows × `NR`
//! output columns, with the weights repacked per call into column panels
//! of i16 (`pack_i16`: `NR` columns, k-pairs side by side; the repack is
//! O(n·k), about 5% of the kernel's time at reranker batch sizes, and
//! keeps the model's memory at the checkpoint's q8/q4 bytes) so that one
//! vector load gives a k-pair of weights for many columns, and each row's
//! activations for that pair are one 32-bit broadcast:
//!
//! * AVX2, `NR` 16 (two ymm), `MR` 4: `vpmaddwd` (i16 × i16, pairs summed
//!   into i32 lanes) then `vpaddd`;
//! * AVX-512 VNNI, `NR` 32 (two zmm), `MR` 6: `vpdpwssd` (the same, fused
//!   into the accumulator).
//!
//! Per block, the i32 lanes become f32 and are accumulated as the module
//! docs define (`acc + (dot · s) · d`), in f32 accumulators that live in
//! the output tile across a chunk of `KC` values of k.

use std::arch::x86_64::*;

use super::{Acts, OutPtr, Weights, grid, pack_i16, panel_scales, quantize_acts};

/// Rows of activations a task covers (a multiple of both kernels' `MR`).
const MC: usize = 48;
/// Values of k per pass over a panel: a panel chunk (8 KB for AVX2, 16 KB
/// for AVX-512) stays in L1 while a task's rows stream through it.
const KC: usize = 256;

pub(super) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

pub(super) fn has_avx512_vnni() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni")
}

// ---------------------------------------------------------------- AVX2

const NR2: usize = 16;
const MR2: usize = 4;

pub(super) fn avx2_linear(x: &[f32], m: usize, w: &Weights) -> Vec<f32> {
    assert!(has_avx2());
    let a = quantize_acts(x, m, w.k, w.block);
    let panels = w.n.div_ceil(NR2);
    let packed = pack_i16(w, NR2);
    let scales = panel_scales(w, NR2);
    let mut out = super::uninit_output(m * w.n);
    let o = OutPtr(out.as_mut_ptr());
    let (packed, scales, a) = (&packed, &scales, &a);
    grid(m, panels, MC, |m0, m1, p0, p1| {
        let o = o;
        // SAFETY: AVX2 + FMA checked above; tasks write disjoint tiles.
        unsafe {
            match w.block {
                16 => avx2_task::<16>(a, packed, scales, w, m0, m1, p0, p1, o.0),
                _ => avx2_task::<32>(a, packed, scales, w, m0, m1, p0, p1, o.0),
            }
        }
    });
    out
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_task<const B: usize>(
    a: &Acts,
    packed: &[i16],
    scales: &[f32],
    w: &Weights,
    m0: usize,
    m1: usize,
    p0: usize,
    p1: usize,
    out: *mut f32,
) {
    unsafe {
        let (k, n, blocks) = (w.k, w.n, w.blocks());
        let kcb = KC / B;
        let mut scratch = [0f32; MR2 * NR2];
        for b0 in (0..blocks).step_by(kcb) {
            let nb = kcb.min(blocks - b0);
            for p in p0..p1 {
                let cols = NR2.min(n - p * NR2);
                let panel = packed.as_ptr().add(p * k * NR2 + b0 * B * NR2);
                let sw = scales.as_ptr().add((p * blocks + b0) * NR2);
                for r0 in (m0..m1).step_by(MR2) {
                    let rows = MR2.min(m1 - r0);
                    let ap = a.q.as_ptr().add(r0 * k + b0 * B);
                    let dp = a.d.as_ptr().add(r0 * blocks + b0);
                    let cp = out.add(r0 * n + p * NR2);
                    let first = b0 == 0;
                    let (c, ldc) = if cols == NR2 { (cp, n) } else { (tile_in(&mut scratch, NR2, cp, n, rows, cols, first), NR2) };
                    match rows {
                        4 => avx2_tile::<4, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        3 => avx2_tile::<3, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        2 => avx2_tile::<2, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        _ => avx2_tile::<1, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                    }
                    if cols != NR2 {
                        tile_out(&scratch, cp, n, rows, cols, NR2);
                    }
                }
            }
        }
    }
}

/// Copy a partial output tile (`rows` × `cols` at `c`, stride `ldc`) into
/// `scratch` (stride `width`, zeros beyond `cols`) for a full-width kernel;
/// nothing to copy on the `first` pass over k (the output is not written yet).
unsafe fn tile_in(scratch: &mut [f32], width: usize, c: *const f32, ldc: usize, rows: usize, cols: usize, first: bool) -> *mut f32 {
    unsafe {
        scratch.fill(0.0);
        for r in (0..rows).filter(|_| !first) {
            for j in 0..cols {
                scratch[r * width + j] = *c.add(r * ldc + j);
            }
        }
        scratch.as_mut_ptr()
    }
}

unsafe fn tile_out(scratch: &[f32], c: *mut f32, ldc: usize, rows: usize, cols: usize, width: usize) {
    unsafe {
        for r in 0..rows {
            for j in 0..cols {
                *c.add(r * ldc + j) = scratch[r * width + j];
            }
        }
    }
}

/// One `R` × 16 tile over `nb` blocks of `B`: `a` i16 rows (stride `lda`),
/// `d` their block scales (stride `ldd`), `panel` `[k/2][16][2]`, `sw`
/// `[nb][16]`; accumulates into `c` (stride `ldc`; from zero on the `first` pass over k,
/// when `c` holds nothing yet).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile<const R: usize, const B: usize>(
    a: *const i16,
    lda: usize,
    d: *const f32,
    ldd: usize,
    panel: *const i16,
    sw: *const f32,
    nb: usize,
    c: *mut f32,
    ldc: usize,
    first: bool,
) {
    unsafe {
        let mut accf = [[_mm256_setzero_ps(); 2]; R];
        for (r, acc) in accf.iter_mut().enumerate().filter(|_| !first) {
            acc[0] = _mm256_loadu_ps(c.add(r * ldc));
            acc[1] = _mm256_loadu_ps(c.add(r * ldc + 8));
        }
        for b in 0..nb {
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            let wp = panel.add(b * B * NR2);
            let ap = a.add(b * B);
            for kp in 0..B / 2 {
                let w0 = _mm256_loadu_si256(wp.add(kp * 2 * NR2) as *const __m256i);
                let w1 = _mm256_loadu_si256(wp.add(kp * 2 * NR2 + 16) as *const __m256i);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_epi32((ap.add(r * lda + 2 * kp) as *const i32).read_unaligned());
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(w0, x));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(w1, x));
                }
            }
            let s0 = _mm256_loadu_ps(sw.add(b * NR2));
            let s1 = _mm256_loadu_ps(sw.add(b * NR2 + 8));
            for r in 0..R {
                let dv = _mm256_set1_ps(*d.add(r * ldd + b));
                accf[r][0] = _mm256_add_ps(accf[r][0], _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][0]), s0), dv));
                accf[r][1] = _mm256_add_ps(accf[r][1], _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][1]), s1), dv));
            }
        }
        for (r, acc) in accf.iter().enumerate() {
            _mm256_storeu_ps(c.add(r * ldc), acc[0]);
            _mm256_storeu_ps(c.add(r * ldc + 8), acc[1]);
        }
    }
}

// ------------------------------------------------------- AVX-512 VNNI

const NR5: usize = 32;
const MR5: usize = 6;

pub(super) fn vnni_linear(x: &[f32], m: usize, w: &Weights) -> Vec<f32> {
    assert!(has_avx512_vnni());
    let a = quantize_acts(x, m, w.k, w.block);
    let panels = w.n.div_ceil(NR5);
    let packed = pack_i16(w, NR5);
    let scales = panel_scales(w, NR5);
    let mut out = super::uninit_output(m * w.n);
    let o = OutPtr(out.as_mut_ptr());
    let (packed, scales, a) = (&packed, &scales, &a);
    grid(m, panels, MC, |m0, m1, p0, p1| {
        let o = o;
        // SAFETY: AVX-512 F/BW/VNNI checked above; tasks write disjoint tiles.
        unsafe {
            match w.block {
                16 => vnni_task::<16>(a, packed, scales, w, m0, m1, p0, p1, o.0),
                _ => vnni_task::<32>(a, packed, scales, w, m0, m1, p0, p1, o.0),
            }
        }
    });
    out
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_task<const B: usize>(
    a: &Acts,
    packed: &[i16],
    scales: &[f32],
    w: &Weights,
    m0: usize,
    m1: usize,
    p0: usize,
    p1: usize,
    out: *mut f32,
) {
    unsafe {
        let (k, n, blocks) = (w.k, w.n, w.blocks());
        let kcb = KC / B;
        let mut scratch = [0f32; MR5 * NR5];
        for b0 in (0..blocks).step_by(kcb) {
            let nb = kcb.min(blocks - b0);
            for p in p0..p1 {
                let cols = NR5.min(n - p * NR5);
                let panel = packed.as_ptr().add(p * k * NR5 + b0 * B * NR5);
                let sw = scales.as_ptr().add((p * blocks + b0) * NR5);
                for r0 in (m0..m1).step_by(MR5) {
                    let rows = MR5.min(m1 - r0);
                    let ap = a.q.as_ptr().add(r0 * k + b0 * B);
                    let dp = a.d.as_ptr().add(r0 * blocks + b0);
                    let cp = out.add(r0 * n + p * NR5);
                    let first = b0 == 0;
                    let (c, ldc) = if cols == NR5 { (cp, n) } else { (tile_in(&mut scratch, NR5, cp, n, rows, cols, first), NR5) };
                    match rows {
                        6 => vnni_tile::<6, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        5 => vnni_tile::<5, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        4 => vnni_tile::<4, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        3 => vnni_tile::<3, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        2 => vnni_tile::<2, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        _ => vnni_tile::<1, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                    }
                    if cols != NR5 {
                        tile_out(&scratch, cp, n, rows, cols, NR5);
                    }
                }
            }
        }
    }
}

/// One `R` × 32 tile over `nb` blocks of `B`: `a` i16 rows (stride `lda`),
/// `d` their block scales (stride `ldd`), `panel` `[k/2][32][2]`, `sw`
/// `[nb][32]`; accumulates into `c` (stride `ldc`; from zero on the `first`
/// pass over k).
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_tile<const R: usize, const B: usize>(
    a: *const i16,
    lda: usize,
    d: *const f32,
    ldd: usize,
    panel: *const i16,
    sw: *const f32,
    nb: usize,
    c: *mut f32,
    ldc: usize,
    first: bool,
) {
    unsafe {
        let mut accf = [[_mm512_setzero_ps(); 2]; R];
        for (r, acc) in accf.iter_mut().enumerate().filter(|_| !first) {
            acc[0] = _mm512_loadu_ps(c.add(r * ldc));
            acc[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
        }
        for b in 0..nb {
            let mut acc = [[_mm512_setzero_si512(); 2]; R];
            let wp = panel.add(b * B * NR5);
            let ap = a.add(b * B);
            for kp in 0..B / 2 {
                // Columns 0..16 and 16..32, a k-pair each per i32 lane.
                let w0 = _mm512_loadu_si512(wp.add(kp * 2 * NR5) as *const __m512i);
                let w1 = _mm512_loadu_si512(wp.add(kp * 2 * NR5 + 32) as *const __m512i);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32((ap.add(r * lda + 2 * kp) as *const i32).read_unaligned());
                    acc[0] = _mm512_dpwssd_epi32(acc[0], w0, x);
                    acc[1] = _mm512_dpwssd_epi32(acc[1], w1, x);
                }
            }
            let s0 = _mm512_loadu_ps(sw.add(b * NR5));
            let s1 = _mm512_loadu_ps(sw.add(b * NR5 + 16));
            for r in 0..R {
                let dv = _mm512_set1_ps(*d.add(r * ldd + b));
                accf[r][0] = _mm512_add_ps(accf[r][0], _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][0]), s0), dv));
                accf[r][1] = _mm512_add_ps(accf[r][1], _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][1]), s1), dv));
            }
        }
        for (r, acc) in accf.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * ldc), acc[0]);
            _mm512_storeu_ps(c.add(r * ldc + 16), acc[1]);
        }
    }
}
