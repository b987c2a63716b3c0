//! aarch64 integer kernels, chosen at run time: the 8-bit matrix multiply
//! extension (i8mm: `smmla`/`usmmla`) where the CPU has it, else the
//! dot-product extension (`sdot`/`udot`), else NEON `smlal`. All three
//! compute the module's arithmetic bit for bit (tested against the scalar
//! reference under qemu-user: `tests/int8-cross`, with CPU models that
//! have both extensions, the dot product only, and neither). Their speed
//! is unmeasured: no aarch64 machine was at hand, and qemu's timings say
//! nothing about one.
//!
//! * `smlal` (plain NEON, e.g. Cortex-A72, Raspberry Pi 4): i8 pair
//!   panels (`[k/2][8][2]`) widened as loaded; a row's k-pair broadcast as
//!   one 32-bit lane, `smlal`/`smlal2` widen-multiply-accumulate each
//!   (column, k parity) into an i32 lane, and `addp` folds the parities
//!   per block: 8 columns × 4 rows, 4 products per instruction.
//! * dot product (`sdot`/`udot`, indexed): i8 quad panels (`[k/4][8][4]`)
//!   and each 16-bit activation as two 8-bit digits `q = 256·hi + lo`
//!   ([`super::Layout::I8Quads`]): per block `dot = 256·sdot(hi, w) +
//!   udot(lo, w + 128) − 128·Σlo` (`w + 128` is `w`'s byte with the sign
//!   bit flipped, unsigned 1..255), exact in i32. Two instructions per 16
//!   activation × weight products: twice `smlal`'s rate. (`usdot`, i8mm's
//!   mixed-sign form, would drop the correction — one subtraction per row
//!   and block — but is missing on Apple M1 and Graviton 2.)
//! * i8mm (`smmla`/`usmmla`: Apple M2+, Graviton 3+): the same digits,
//!   i8 octet panels (`[k/8][8][8]`, [`super::Layout::I8Octets`]); each
//!   instruction multiplies two rows × eight k by eight k × two columns:
//!   32 products, twice `sdot`'s. `usmmla` takes the unsigned low digits
//!   against the signed weights directly, so there is no correction term.
//!
//! Rust's `sdot`/`udot` and `smmla`/`usmmla` intrinsics are unstable
//! (`stdarch_neon_dotprod`, `stdarch_neon_i8mm`), so those instructions are
//! inline assembly; the rest is `std::arch`.

use std::arch::aarch64::*;
use std::arch::asm;

use super::panels::{ActType, Kernel};
use super::{Layout, TileArgs, tiles};

pub(super) fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

pub(super) fn has_dotprod() -> bool {
    has_neon() && std::arch::is_aarch64_feature_detected!("dotprod")
}

const NR: usize = 8;
const MR: usize = 4;

// ---------------------------------------------------------------- smlal

/// Adds the block's f32 contribution `(dot · s) · d` of one row: `dot`
/// columns 0..4 and 4..8, `s` the panel's scales, `d` the row's.
#[inline(always)]
unsafe fn accumulate(accf: &mut [float32x4_t; 2], dot: [int32x4_t; 2], s: [float32x4_t; 2], d: f32) {
    unsafe {
        for h in 0..2 {
            accf[h] = vaddq_f32(accf[h], vmulq_n_f32(vmulq_f32(vcvtq_f32_s32(dot[h]), s[h]), d));
        }
    }
}

/// The output tile in f32 registers: loaded unless `first`.
#[inline(always)]
unsafe fn load_tile<const R: usize>(c: *mut f32, ldc: usize, first: bool) -> [[float32x4_t; 2]; R] {
    // SAFETY: the caller's tile is inside `c`; NEON is baseline on aarch64.
    unsafe {
        let mut accf = [[vdupq_n_f32(0.0); 2]; R];
        for (r, acc) in accf.iter_mut().enumerate().filter(|_| !first) {
            acc[0] = vld1q_f32(c.add(r * ldc));
            acc[1] = vld1q_f32(c.add(r * ldc + 4));
        }
        accf
    }
}

#[inline(always)]
unsafe fn store_tile<const R: usize>(c: *mut f32, ldc: usize, accf: &[[float32x4_t; 2]; R]) {
    for (r, acc) in accf.iter().enumerate() {
        // SAFETY: the caller's tile is inside `c`.
        unsafe {
            vst1q_f32(c.add(r * ldc), acc[0]);
            vst1q_f32(c.add(r * ldc + 4), acc[1]);
        }
    }
}

// ---------------------------------------------------------- sdot / udot

/// The dot product, 16-bit activations as two 8-bit digits (see the
/// module docs), i8 quad panels `[k/4][8][4]`.
pub(super) const DOTPROD16: Kernel =
    Kernel { nr: NR, mr: MR, layout: Layout::I8Quads, acts: ActType::Digits, sums: false, tile: dotprod_tiles };

tiles!(dotprod_tiles, dotprod_tile, [4, 3, 2, 1], #[target_feature(enable = "neon,dotprod")]);

/// `acc[i] += Σ_j w[4i + j] · x[4L + j]` (signed), `sdot` by element.
#[inline(always)]
unsafe fn sdot<const L: i32>(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: the caller's function enables `dotprod`; registers only.
    unsafe {
        asm!("sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{l}]", acc = inout(vreg) acc, w = in(vreg) w, x = in(vreg) x,
            l = const L, options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// `acc[i] += Σ_j w[4i + j] · x[4L + j]` (unsigned), `udot` by element.
#[inline(always)]
unsafe fn udot<const L: i32>(mut acc: uint32x4_t, w: uint8x16_t, x: uint8x16_t) -> uint32x4_t {
    // SAFETY: as `sdot`.
    unsafe {
        asm!("udot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{l}]", acc = inout(vreg) acc, w = in(vreg) w, x = in(vreg) x,
            l = const L, options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// One `R` × 8 tile over `nb` blocks of `B` (see [`TileArgs`]): digit
/// activations (per block `B` high bytes, then `B` low bytes), panel
/// `[k/4][8][4]` i8.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn dotprod_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let a = a.cast::<i16>();
    let panel = panel.cast::<i8>();
    let flip = vdupq_n_u8(0x80);
    unsafe {
        let mut accf = load_tile::<R>(c, ldc, first);
        for b in 0..nb {
            // Columns 0..4 and 4..8: high digits (signed), low digits (unsigned).
            let mut hi = [[vdupq_n_s32(0); 2]; R];
            let mut lo = [[vdupq_n_u32(0); 2]; R];
            let mut lo_sum = [0u32; R];
            let wp = panel.add(b * B * NR);
            // Row r's block: bytes at `a + r·lda + b·B` (i16 units).
            let ap = a.add(b * B).cast::<i8>();
            // Sixteen k (four quads) at a time: one register of each digit.
            for g in 0..B / 16 {
                let mut xh = [vdupq_n_s8(0); R];
                let mut xl = [vdupq_n_u8(0); R];
                for r in 0..R {
                    let row = ap.add(2 * r * lda);
                    xh[r] = vld1q_s8(row.add(16 * g));
                    xl[r] = vld1q_u8(row.add(B + 16 * g).cast());
                    lo_sum[r] += vaddlvq_u8(xl[r]) as u32;
                }
                macro_rules! quad {
                    ($l:literal) => {{
                        let q = wp.add((4 * g + $l) * 4 * NR);
                        let (w0, w1) = (vld1q_s8(q), vld1q_s8(q.add(16)));
                        let (u0, u1) = (veorq_u8(vreinterpretq_u8_s8(w0), flip), veorq_u8(vreinterpretq_u8_s8(w1), flip));
                        for r in 0..R {
                            hi[r][0] = sdot::<$l>(hi[r][0], w0, xh[r]);
                            hi[r][1] = sdot::<$l>(hi[r][1], w1, xh[r]);
                            lo[r][0] = udot::<$l>(lo[r][0], u0, xl[r]);
                            lo[r][1] = udot::<$l>(lo[r][1], u1, xl[r]);
                        }
                    }};
                }
                quad!(0);
                quad!(1);
                quad!(2);
                quad!(3);
            }
            let s = [vld1q_f32(sw.add(b * NR)), vld1q_f32(sw.add(b * NR + 4))];
            for r in 0..R {
                // udot summed lo·(w + 128); |256·hi| ≤ 2^27, lo ≤ 2^21: exact.
                let corr = vdupq_n_s32(128 * lo_sum[r] as i32);
                let dot = [0, 1].map(|h| vaddq_s32(vshlq_n_s32::<8>(hi[r][h]), vsubq_s32(vreinterpretq_s32_u32(lo[r][h]), corr)));
                accumulate(&mut accf[r], dot, s, *d.add(r * ldd + b));
            }
        }
        store_tile::<R>(c, ldc, &accf);
    }
}

// ------------------------------------------------------- smmla / usmmla

pub(super) fn has_i8mm() -> bool {
    has_neon() && std::arch::is_aarch64_feature_detected!("i8mm")
}

/// i8mm, 16-bit activations as two 8-bit digits, i8 octet panels
/// `[k/8][8][8]`.
pub(super) const I8MM16: Kernel =
    Kernel { nr: NR, mr: MR, layout: Layout::I8Octets, acts: ActType::Digits, sums: false, tile: i8mm_tiles };

tiles!(i8mm_tiles, i8mm_tile, [4, 3, 2, 1], #[target_feature(enable = "neon,i8mm")]);

/// `acc[2i + j] += Σ_l x[8i + l] · w[8j + l]`, both signed: rows `i` of
/// `x` (2 × 8) times columns `j` of `w` (stored as 2 × 8), `smmla`.
#[inline(always)]
unsafe fn smmla(mut acc: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
    // SAFETY: the caller's function enables `i8mm`; registers only.
    unsafe {
        asm!("smmla {acc:v}.4s, {x:v}.16b, {w:v}.16b", acc = inout(vreg) acc, x = in(vreg) x, w = in(vreg) w,
            options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// As [`smmla`] with `x` unsigned, `usmmla`.
#[inline(always)]
unsafe fn usmmla(mut acc: int32x4_t, x: uint8x16_t, w: int8x16_t) -> int32x4_t {
    // SAFETY: as `smmla`.
    unsafe {
        asm!("usmmla {acc:v}.4s, {x:v}.16b, {w:v}.16b", acc = inout(vreg) acc, x = in(vreg) x, w = in(vreg) w,
            options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// One `R` × 8 tile over `nb` blocks of `B` (see [`TileArgs`]): digit
/// activations (per block `B` high bytes, then `B` low bytes), panel
/// `[k/8][8][8]` i8. Rows go in pairs (a missing second row of an odd `R`
/// is zeros), columns in pairs: per eight k, each (row pair, column pair)
/// is one `smmla` on the high digits and one `usmmla` on the low ones,
/// whose 2 × 2 results `[r0·c0, r0·c1, r1·c0, r1·c1]` are unzipped into
/// rows at the end of the block.
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn i8mm_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let a = a.cast::<i16>();
    let panel = panel.cast::<i8>();
    let pairs = R.div_ceil(2);
    unsafe {
        let mut accf = load_tile::<R>(c, ldc, first);
        for b in 0..nb {
            // [row pair][column pair]: high digits, low digits.
            let mut hi = [[vdupq_n_s32(0); 4]; 2];
            let mut lo = [[vdupq_n_s32(0); 4]; 2];
            let wp = panel.add(b * B * NR);
            // Row r's block: bytes at `a + r·lda + b·B` (i16 units).
            let ap = a.add(b * B).cast::<i8>();
            for g in 0..B / 8 {
                let q = wp.add(g * 8 * NR);
                let wv = [0, 1, 2, 3].map(|j| vld1q_s8(q.add(16 * j)));
                for p in 0..pairs {
                    let r0 = ap.add(2 * (2 * p) * lda + 8 * g);
                    // The pair's second row, or zeros past an odd R.
                    let (h1, l1) = if 2 * p + 1 < R {
                        let r1 = ap.add(2 * (2 * p + 1) * lda + 8 * g);
                        (vld1_s8(r1), vld1_u8(r1.add(B).cast()))
                    } else {
                        (vdup_n_s8(0), vdup_n_u8(0))
                    };
                    let xh = vcombine_s8(vld1_s8(r0), h1);
                    let xl = vcombine_u8(vld1_u8(r0.add(B).cast()), l1);
                    for j in 0..4 {
                        hi[p][j] = smmla(hi[p][j], xh, wv[j]);
                        lo[p][j] = usmmla(lo[p][j], xl, wv[j]);
                    }
                }
            }
            let s = [vld1q_f32(sw.add(b * NR)), vld1q_f32(sw.add(b * NR + 4))];
            for p in 0..pairs {
                // |256·hi| ≤ 2^27, |lo| ≤ 2^21: exact in i32.
                let dot = [0, 1, 2, 3].map(|j| vreinterpretq_s64_s32(vaddq_s32(vshlq_n_s32::<8>(hi[p][j]), lo[p][j])));
                // Columns 0..4 and 4..8 of the pair's first row, then its second.
                let rows =
                    [[vzip1q_s64(dot[0], dot[1]), vzip1q_s64(dot[2], dot[3])], [vzip2q_s64(dot[0], dot[1]), vzip2q_s64(dot[2], dot[3])]];
                for (h, row) in rows.iter().enumerate() {
                    let r = 2 * p + h;
                    if r < R {
                        let dot = row.map(|v| vreinterpretq_s32_s64(v));
                        accumulate(&mut accf[r], dot, s, *d.add(r * ldd + b));
                    }
                }
            }
        }
        store_tile::<R>(c, ldc, &accf);
    }
}

// ------------------------------------------- 8-bit activations (int8)

/// NEON without the dot product, 16- and 8-bit activations: `smlal` on
/// i16 rows, the i8 pair panels `[k/2][8][2]` widened as they are loaded.
pub(super) const NEON: Kernel =
    Kernel { nr: NR, mr: MR, layout: Layout::I8Pairs, acts: ActType::I16, sums: false, tile: neon_tiles };

tiles!(neon_tiles, neon_tile, [4, 3, 2, 1], #[target_feature(enable = "neon")]);

/// One `R` × 8 tile over `nb` blocks of `B`: i16 activation rows, panel
/// `[k/2][8][2]` i8. Lanes (column 2j, k even), (2j, k odd), (2j+1,
/// even), (2j+1, odd); `addp` folds the k parities per block.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn neon_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let (a, panel) = (a.cast::<i16>(), panel.cast::<i8>());
    unsafe {
        let mut accf = load_tile::<R>(c, ldc, first);
        for b in 0..nb {
            let mut acc = [[vdupq_n_s32(0); 4]; R];
            let wp = panel.add(b * B * NR);
            let ap = a.add(b * B);
            for kp in 0..B / 2 {
                let w8 = vld1q_s8(wp.add(kp * 2 * NR));
                let (w0, w1) = (vmovl_s8(vget_low_s8(w8)), vmovl_high_s8(w8));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = vreinterpretq_s16_s32(vld1q_dup_s32(ap.add(r * lda + 2 * kp).cast()));
                    acc[0] = vmlal_s16(acc[0], vget_low_s16(w0), vget_low_s16(x));
                    acc[1] = vmlal_high_s16(acc[1], w0, x);
                    acc[2] = vmlal_s16(acc[2], vget_low_s16(w1), vget_low_s16(x));
                    acc[3] = vmlal_high_s16(acc[3], w1, x);
                }
            }
            let s = [vld1q_f32(sw.add(b * NR)), vld1q_f32(sw.add(b * NR + 4))];
            for r in 0..R {
                let dot = [vpaddq_s32(acc[r][0], acc[r][1]), vpaddq_s32(acc[r][2], acc[r][3])];
                accumulate(&mut accf[r], dot, s, *d.add(r * ldd + b));
            }
        }
        store_tile::<R>(c, ldc, &accf);
    }
}

/// The dot product, 8-bit activations: `sdot` on i8 rows as they are
/// and i8 quad panels `[k/4][8][4]` — one instruction per 16 products.
pub(super) const DOTPROD8: Kernel =
    Kernel { nr: NR, mr: MR, layout: Layout::I8Quads, acts: ActType::I8, sums: false, tile: dotprod8_tiles };

tiles!(dotprod8_tiles, dotprod8_tile, [4, 3, 2, 1], #[target_feature(enable = "neon,dotprod")]);

/// One `R` × 8 tile over `nb` blocks of `B`: i8 activation rows, panel
/// `[k/4][8][4]` i8.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn dotprod8_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let (a, panel) = (a.cast::<i8>(), panel.cast::<i8>());
    unsafe {
        let mut accf = load_tile::<R>(c, ldc, first);
        for b in 0..nb {
            let mut acc = [[vdupq_n_s32(0); 2]; R];
            let wp = panel.add(b * B * NR);
            let ap = a.add(b * B);
            for g in 0..B / 16 {
                let mut x = [vdupq_n_s8(0); R];
                for (r, x) in x.iter_mut().enumerate() {
                    *x = vld1q_s8(ap.add(r * lda + 16 * g));
                }
                macro_rules! quad {
                    ($l:literal) => {{
                        let q = wp.add((4 * g + $l) * 4 * NR);
                        let (w0, w1) = (vld1q_s8(q), vld1q_s8(q.add(16)));
                        for r in 0..R {
                            acc[r][0] = sdot::<$l>(acc[r][0], w0, x[r]);
                            acc[r][1] = sdot::<$l>(acc[r][1], w1, x[r]);
                        }
                    }};
                }
                quad!(0);
                quad!(1);
                quad!(2);
                quad!(3);
            }
            let s = [vld1q_f32(sw.add(b * NR)), vld1q_f32(sw.add(b * NR + 4))];
            for r in 0..R {
                accumulate(&mut accf[r], acc[r], s, *d.add(r * ldd + b));
            }
        }
        store_tile::<R>(c, ldc, &accf);
    }
}

/// i8mm, 8-bit activations: `smmla` on i8 rows as they are and i8 octet
/// panels `[k/8][8][8]` — one instruction per 32 products.
pub(super) const I8MM8: Kernel =
    Kernel { nr: NR, mr: MR, layout: Layout::I8Octets, acts: ActType::I8, sums: false, tile: i8mm8_tiles };

tiles!(i8mm8_tiles, i8mm8_tile, [4, 3, 2, 1], #[target_feature(enable = "neon,i8mm")]);

/// One `R` × 8 tile over `nb` blocks of `B`: i8 activation rows, panel
/// `[k/8][8][8]` i8; rows and columns in pairs as [`i8mm_tile`].
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn i8mm8_tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let (a, panel) = (a.cast::<i8>(), panel.cast::<i8>());
    let pairs = R.div_ceil(2);
    unsafe {
        let mut accf = load_tile::<R>(c, ldc, first);
        for b in 0..nb {
            let mut acc = [[vdupq_n_s32(0); 4]; 2];
            let wp = panel.add(b * B * NR);
            let ap = a.add(b * B);
            for g in 0..B / 8 {
                let q = wp.add(g * 8 * NR);
                let wv = [0, 1, 2, 3].map(|j| vld1q_s8(q.add(16 * j)));
                for p in 0..pairs {
                    let r0 = ap.add(2 * p * lda + 8 * g);
                    let x1 = if 2 * p + 1 < R { vld1_s8(ap.add((2 * p + 1) * lda + 8 * g)) } else { vdup_n_s8(0) };
                    let x = vcombine_s8(vld1_s8(r0), x1);
                    for j in 0..4 {
                        acc[p][j] = smmla(acc[p][j], x, wv[j]);
                    }
                }
            }
            let s = [vld1q_f32(sw.add(b * NR)), vld1q_f32(sw.add(b * NR + 4))];
            for p in 0..pairs {
                let dot = [0, 1, 2, 3].map(|j| vreinterpretq_s64_s32(acc[p][j]));
                let rows =
                    [[vzip1q_s64(dot[0], dot[1]), vzip1q_s64(dot[2], dot[3])], [vzip2q_s64(dot[0], dot[1]), vzip2q_s64(dot[2], dot[3])]];
                for (h, row) in rows.iter().enumerate() {
                    let r = 2 * p + h;
                    if r < R {
                        let dot = row.map(|v| vreinterpretq_s32_s64(v));
                        accumulate(&mut accf[r], dot, s, *d.add(r * ldd + b));
                    }
                }
            }
        }
        store_tile::<R>(c, ldc, &accf);
    }
}
