//! wasm32 SIMD128 integer kernel: the AVX2 kernel's arrangement in
//! 128-bit vectors — i8 weights in panels of 8 columns `[k/2][8][2]`
//! widened to i16 as loaded (one `v128.load` and
//! `i16x8.extend_{low,high}_i8x16_s` per k-pair), i16
//! activations broadcast two at a time, `i32x4.dot_i16x8_s` (the wasm
//! `pmaddwd`) into i32 lanes, then per block `acc + (dot · s) · d`.
//!
//! 4 rows × 8 columns with LLVM's two-way unroll of the k loop is what V8
//! keeps in registers (V8 11.3's x64 code, read with `--print-wasm-code`):
//! 8 accumulators, 2 weight vectors, the broadcasts; per two k-pairs 16
//! `vpmaddwd`, 16 `vpaddd`, 8 `vbroadcastss`, 4 loads and no spills. 5 or
//! 6 rows spill in V8's register allocator (8–11 spills/fills per loop
//! iteration), and a fully unrolled k loop lets V8 hoist every load (273
//! per block of 32; LLVM's `-pre-RA-sched=source` does not prevent it).

use std::arch::wasm32::*;

use super::panels::{ActType, Kernel};
use super::{Layout, TileArgs, tiles};

const NR: usize = 8;
const MR: usize = 4;

/// 16- and 8-bit activations: `i32x4.dot_i16x8_s` on i16 rows, the i8
/// pair panels `[k/2][8][2]` widened as they are loaded (half the bytes
/// of i16 panels; in Chromium 156 on AMD EPYC (AVX2) 30.0 GMAC/s against
/// 31.2 on i16 panels and 21.5 with `i16x8.load8x8_s`: benches/wasm-relaxed).
pub(super) const KERNEL: Kernel = Kernel { nr: NR, mr: MR, layout: Layout::I8Pairs, acts: ActType::I16, sums: false, tile: tiles };

tiles!(tiles, tile, [4, 3, 2, 1]);

#[inline(always)]
unsafe fn tile<const R: usize, const B: usize>(t: TileArgs) {
    let TileArgs { a, lda, d, ldd, panel, sw, nb, c, ldc, first, .. } = t;
    let a = a.cast::<i16>();
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
                // One 16-byte load, halves widened: Chromium 156's V8 ran
                // this 1.40x as fast as two `i16x8.load8x8_s`
                // (benches/wasm-relaxed; Node 20's V8: the same speed).
                let w = (wp.add(kp * 2 * NR) as *const v128).read_unaligned();
                let (w0, w1) = (i16x8_extend_low_i8x16(w), i16x8_extend_high_i8x16(w));
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
