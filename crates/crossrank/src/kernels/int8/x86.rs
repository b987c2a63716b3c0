//! x86-64 integer kernels: AVX2 and AVX-512 VNNI, chosen at run time.
//!
//! Outer-product micro-kernels over a tile of `MR` rows × `NR` output
//! columns, reading weight panels built by [`super::Panels`] (once at load
//! for a model's q8 layers; per call for q4) so that one vector load gives
//! a k-group of weights for many columns, and each row's activations for
//! that group are one 32-bit broadcast:
//!
//! * AVX2, `NR` 16 (two ymm), `MR` 6: i8 pair panels widened as loaded
//!   (`vpmovsxbw`), `vpmaddwd` (i16 × i16, pairs summed into i32 lanes)
//!   then `vpaddd` — 12 accumulators, two weight vectors and a broadcast
//!   fill the 16 ymm registers (6 rows measured 1.1–1.3x 4 rows on Zen 3:
//!   fewer loads and broadcasts per multiply-add). 16- and 8-bit
//!   activations alike (see [`AVX2`]).
//! * AVX-512 VNNI, `NR` 32 (two zmm), `MR` 6: 16-bit activations on
//!   `vpdpwssd` (the same, fused into the accumulator) over widened i8
//!   pair panels; 8-bit ones on `vpdpbusd` (u8 × s8, four products per
//!   lane: twice the rate) over i8 quad panels.
//!
//! Per block, the i32 lanes become f32 and are accumulated as the module
//! docs define (`acc + (dot · s) · d`); `driver::run_panels` drives the
//! tiles.

use std::arch::x86_64::*;

use super::panels::{ActType, Kernel};
use super::{Layout, TileArgs, tiles};

pub(super) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

pub(super) fn has_avx512_vnni() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni")
}

// ---------------------------------------------------------------- AVX2

const NR2: usize = 16;
const MR2: usize = 6;

// ------------------------------------------------------- AVX-512 VNNI

const NR5: usize = 32;
const MR5: usize = 6;

/// AVX-512 VNNI, 16-bit activations: `vpdpwssd` on i16 rows and i8 pair
/// panels `[k/2][32][2]` widened as they are loaded.
pub(super) const VNNI16: Kernel =
    Kernel { nr: NR5, mr: MR5, layout: Layout::I8Pairs, acts: ActType::I16, sums: false, tile: vnni_tiles };

tiles!(vnni_tiles, vnni_tile, [6, 5, 4, 3, 2, 1], #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]);

/// One `R` × 32 tile over `nb` blocks of `B`: `a` i16 rows (stride `lda`),
/// `d` their block scales (stride `ldd`), `panel` `[k/2][32][2]` i8, `sw`
/// `[nb][32]`; accumulates into `c` (stride `ldc`; from zero on the `first`
/// pass over k).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let a = a.cast::<i16>();
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
                let w0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(wp.add(kp * 2 * NR5) as *const __m256i));
                let w1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(wp.add(kp * 2 * NR5 + 32) as *const __m256i));
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

// ------------------------------------------- 8-bit activations (int8)

/// AVX-512 VNNI, 8-bit activations: `vpdpbusd` on biased u8 activations
/// and i8 quad panels `[k/4][32][4]`, accumulators starting from the
/// panels' `−128 · Σ w` (see `panels`).
pub(super) const VNNI8: Kernel =
    Kernel { nr: NR5, mr: MR5, layout: Layout::I8Quads, acts: ActType::U8, sums: true, tile: vnni8_tiles };

tiles!(vnni8_tiles, vnni8_tile, [6, 5, 4, 3, 2, 1], #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]);

/// One `R` × 32 tile over `nb` blocks of `B`: `a` biased u8 rows (stride
/// `lda`), panel `[k/4][32][4]` i8, `sums` `[nb][32]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni8_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, sums, nb, c, ldc, first } = t;
    unsafe {
        let mut accf = [[_mm512_setzero_ps(); 2]; R];
        for (r, acc) in accf.iter_mut().enumerate().filter(|_| !first) {
            acc[0] = _mm512_loadu_ps(c.add(r * ldc));
            acc[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
        }
        for b in 0..nb {
            // Σ (q + 128)·w − 128·Σ w = Σ q·w, exact in i32.
            let c0 = _mm512_loadu_si512(sums.add(b * NR5) as *const __m512i);
            let c1 = _mm512_loadu_si512(sums.add(b * NR5 + 16) as *const __m512i);
            let mut acc = [[c0, c1]; R];
            let wp = panel.add(b * B * NR5);
            let ap = a.add(b * B);
            for kq in 0..B / 4 {
                // Columns 0..16 and 16..32, a k-quad each per i32 lane.
                let w0 = _mm512_loadu_si512(wp.add(kq * 4 * NR5) as *const __m512i);
                let w1 = _mm512_loadu_si512(wp.add(kq * 4 * NR5 + 64) as *const __m512i);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32((ap.add(r * lda + 4 * kq) as *const i32).read_unaligned());
                    acc[0] = _mm512_dpbusd_epi32(acc[0], x, w0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], x, w1);
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

/// AVX2, 16- and 8-bit activations: `vpmaddwd` on i16 rows, the i8 pair
/// panels `[k/2][16][2]` widened as they are loaded (`vpmovsxbw`). For
/// 8-bit activations, measured against the 8-bit form
/// `vpmaddubsw(|x|, sign(w, x))` → `vpmaddwd` by ones → `vpaddd` (the
/// exact one: the biased u8 × s8 form saturates i16 pair sums, so it cannot
/// equal the reference): on Zen 4, 2048 rows of bge-reranker-base's
/// shapes, that ran 105–111 GMAC/s and this 120–128, as many µops per
/// product and fewer temporaries (6 rows instead of 4).
pub(super) const AVX2: Kernel =
    Kernel { nr: NR2, mr: MR2, layout: Layout::I8Pairs, acts: ActType::I16, sums: false, tile: avx2_tiles };

tiles!(avx2_tiles, avx2_tile, [6, 5, 4, 3, 2, 1], #[target_feature(enable = "avx2,fma")]);

/// One `R` × 16 tile over `nb` blocks of `B`: `a` i16 rows (stride `lda`),
/// panel `[k/2][16][2]` i8.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let a = a.cast::<i16>();
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
                let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(kp * 2 * NR2) as *const __m128i));
                let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(kp * 2 * NR2 + 16) as *const __m128i));
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
