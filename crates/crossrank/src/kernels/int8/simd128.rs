//! wasm32 SIMD128 integer kernel: the AVX2 kernel's arrangement in
//! 128-bit vectors — i16 weights in panels of 8 columns `[k/2][8][2]`, i16
//! activations broadcast two at a time, `i32x4.dot_i16x8_s` (the wasm
//! `pmaddwd`) into i32 lanes, then per block `acc + (dot · s) · d`.

use std::arch::wasm32::*;

use super::{Acts, OutPtr, Weights, grid, pack_i16, panel_scales, quantize_acts};

const NR: usize = 8;
const MR: usize = 4;
const MC: usize = 48;
const KC: usize = 512;

pub(super) fn linear(x: &[f32], m: usize, w: &Weights) -> Vec<f32> {
    let a = quantize_acts(x, m, w.k, w.block);
    let panels = w.n.div_ceil(NR);
    let packed = pack_i16(w, NR);
    let scales = panel_scales(w, NR);
    let mut out = super::uninit_output(m * w.n);
    let o = OutPtr(out.as_mut_ptr());
    let (packed, scales, a) = (&packed, &scales, &a);
    grid(m, panels, MC, |m0, m1, p0, p1| {
        let o = o;
        // SAFETY: tasks write disjoint tiles of `out`.
        unsafe {
            match w.block {
                16 => task::<16>(a, packed, scales, w, m0, m1, p0, p1, o.0),
                _ => task::<32>(a, packed, scales, w, m0, m1, p0, p1, o.0),
            }
        }
    });
    out
}

#[allow(clippy::too_many_arguments)]
unsafe fn task<const B: usize>(
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
        let mut scratch = [0f32; MR * NR];
        for b0 in (0..blocks).step_by(kcb) {
            let nb = kcb.min(blocks - b0);
            for p in p0..p1 {
                let cols = NR.min(n - p * NR);
                let panel = packed.as_ptr().add(p * k * NR + b0 * B * NR);
                let sw = scales.as_ptr().add((p * blocks + b0) * NR);
                for r0 in (m0..m1).step_by(MR) {
                    let rows = MR.min(m1 - r0);
                    let ap = a.q.as_ptr().add(r0 * k + b0 * B);
                    let dp = a.d.as_ptr().add(r0 * blocks + b0);
                    let cp = out.add(r0 * n + p * NR);
                    // The first pass over k writes the output, later ones add to it.
                    let first = b0 == 0;
                    let (c, ldc) = if cols == NR {
                        (cp, n)
                    } else {
                        scratch.fill(0.0);
                        for r in (0..rows).filter(|_| !first) {
                            for j in 0..cols {
                                scratch[r * NR + j] = *cp.add(r * n + j);
                            }
                        }
                        (scratch.as_mut_ptr(), NR)
                    };
                    match rows {
                        4 => tile::<4, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        3 => tile::<3, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        2 => tile::<2, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                        _ => tile::<1, B>(ap, k, dp, blocks, panel, sw, nb, c, ldc, first),
                    }
                    if cols != NR {
                        for r in 0..rows {
                            for j in 0..cols {
                                *cp.add(r * n + j) = scratch[r * NR + j];
                            }
                        }
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<const R: usize, const B: usize>(
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
        let mut accf = [[f32x4_splat(0.0); 2]; R];
        for (r, acc) in accf.iter_mut().enumerate().filter(|_| !first) {
            acc[0] = (c.add(r * ldc) as *const v128).read_unaligned();
            acc[1] = (c.add(r * ldc + 4) as *const v128).read_unaligned();
        }
        for b in 0..nb {
            let mut acc = [[i32x4_splat(0); 2]; R];
            let wp = panel.add(b * B * NR);
            let ap = a.add(b * B);
            for kp in 0..B / 2 {
                let w0 = (wp.add(kp * 2 * NR) as *const v128).read_unaligned();
                let w1 = (wp.add(kp * 2 * NR + 8) as *const v128).read_unaligned();
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = i32x4_splat((ap.add(r * lda + 2 * kp) as *const i32).read_unaligned());
                    acc[0] = i32x4_add(acc[0], i32x4_dot_i16x8(w0, x));
                    acc[1] = i32x4_add(acc[1], i32x4_dot_i16x8(w1, x));
                }
            }
            let s0 = (sw.add(b * NR) as *const v128).read_unaligned();
            let s1 = (sw.add(b * NR + 4) as *const v128).read_unaligned();
            for r in 0..R {
                let dv = f32x4_splat(*d.add(r * ldd + b));
                accf[r][0] = f32x4_add(accf[r][0], f32x4_mul(f32x4_mul(f32x4_convert_i32x4(acc[r][0]), s0), dv));
                accf[r][1] = f32x4_add(accf[r][1], f32x4_mul(f32x4_mul(f32x4_convert_i32x4(acc[r][1]), s1), dv));
            }
        }
        for (r, acc) in accf.iter().enumerate() {
            (c.add(r * ldc) as *mut v128).write_unaligned(acc[0]);
            (c.add(r * ldc + 4) as *mut v128).write_unaligned(acc[1]);
        }
    }
}
