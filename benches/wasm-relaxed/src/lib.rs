//! See Cargo.toml. `run(kernel, rows)` times one single-threaded pass of
//! tiles over the whole weight (best of 8) and returns GMAC/s: kernel 0 is
//! the shipped SIMD128 tile (4 rows × 8 columns, i8 panels, one load and
//! two extends per k-pair), 1 the relaxed one with `rows` rows (4, 5 or
//! 6), 2 the SIMD128 tile on i16 panels (as it was before the panels
//! became i8), 3 on i8 panels with two `i16x8.load8x8_s` (as shipped until
//! 2026-12-07); 4–6 the shipped tile called as crossrank's driver calls
//! it (rows in chunks of 48, k in chunks of 256 accumulated through the
//! output; 5: k not chunked; 6: through one function into which every
//! (rows, block) instantiation is inlined, as `tiles!` makes it) — to tell
//! the tile's speed from what the driver around it costs. All compute the
//! same tile arithmetic (per block: integer
//! dot, then `acc + (dot · s) · d`), so the difference is the inner loop's
//! instructions as the engine lowers them.
#![no_std]
use core::arch::wasm32::*;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

unsafe extern "C" {
    /// `performance.now()` (ms).
    fn now() -> f64;
}

const NR: usize = 8;
const B: usize = 32;
const M: usize = 256;
const N: usize = 2304;
const K: usize = 768;
const NB: usize = K / B;

static mut PANEL: [u8; N * K] = [0; N * K];
static mut PANEL16: [i16; N * K] = [0; N * K];
static mut SW: [f32; N * NB] = [0.0; N * NB];
static mut SUMS: [i32; N * NB] = [0; N * NB];
static mut A16: [i16; M * K] = [0; M * K];
static mut A7: [u8; M * K] = [0; M * K];
static mut D: [f32; M * NB] = [0.0; M * NB];
static mut OUT: [f32; M * N] = [0.0; M * N];

/// The SIMD128 kernel's tile (simd128.rs), `R` rows × 8 columns, `nb`
/// blocks of `BB`: pair panels `[k/2][8][2]` of `P` (i8 or i16), i16
/// activations, `i32x4.dot_i16x8_s`, accumulated into the output unless
/// `first` (as crossrank's driver calls it: kernels/int8/driver.rs);
/// `load(wp, kp)` gives k-pair `kp`'s two i16x8 weight vectors (columns
/// 0..4 and 4..8) from the block's panel `wp` — the one thing the
/// kernel variants differ in.
#[inline(always)]
unsafe fn tile16<P, const R: usize, const BB: usize>(
    a: *const i16,
    d: *const f32,
    panel: *const P,
    sw: *const f32,
    nb: usize,
    c: *mut f32,
    first: bool,
    load: impl Fn(*const P, usize) -> (v128, v128),
) {
    unsafe {
        let mut accf = [[f32x4_splat(0.0); 2]; R];
        for (r, acc) in accf.iter_mut().enumerate().filter(|_| !first) {
            acc[0] = (c.add(r * N) as *const v128).read_unaligned();
            acc[1] = (c.add(r * N + 4) as *const v128).read_unaligned();
        }
        for b in 0..nb {
            let mut acc = [[i32x4_splat(0); 2]; R];
            let (wp, ap) = (panel.add(b * BB * NR), a.add(b * BB));
            for kp in 0..BB / 2 {
                let (w0, w1) = load(wp, kp);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = i32x4_splat((ap.add(r * K + 2 * kp) as *const i32).read_unaligned());
                    acc[0] = i32x4_add(acc[0], i32x4_dot_i16x8(w0, x));
                    acc[1] = i32x4_add(acc[1], i32x4_dot_i16x8(w1, x));
                }
            }
            finish_block::<R>(&mut accf, &acc, d, sw, b);
        }
        store(&accf, c);
    }
}

/// A whole-k tile from zero (kernels 0, 2, 3), 4 rows, blocks of 32.
#[inline(never)]
unsafe fn tile16_whole<P>(
    a: *const i16,
    d: *const f32,
    panel: *const P,
    sw: *const f32,
    c: *mut f32,
    load: impl Fn(*const P, usize) -> (v128, v128),
) {
    unsafe { tile16::<P, 4, B>(a, d, panel, sw, NB, c, true, load) }
}

/// The shipped tile (i8 panels, one load and two extends) as the driver
/// calls it: `nb` blocks per call (kernels 4 and 5).
#[inline(never)]
unsafe fn tile16_driven(a: *const i16, d: *const f32, panel: *const u8, sw: *const f32, nb: usize, c: *mut f32, first: bool) {
    unsafe { tile16::<u8, 4, B>(a, d, panel, sw, nb, c, first, |wp, kp| extend_halves(wp, kp)) }
}

/// What simd128.rs's `tiles!` makes of its tile: every (rows, block)
/// instantiation inlined into one dispatching function (kernel 6).
#[inline(never)]
unsafe fn tiles_dispatch(
    rows: usize,
    block: usize,
    a: *const i16,
    d: *const f32,
    panel: *const u8,
    sw: *const f32,
    nb: usize,
    c: *mut f32,
    first: bool,
) {
    let load = |wp, kp| unsafe { extend_halves(wp, kp) };
    unsafe {
        match (rows, block) {
            (4, 16) => tile16::<u8, 4, 16>(a, d, panel, sw, nb, c, first, load),
            (4, _) => tile16::<u8, 4, 32>(a, d, panel, sw, nb, c, first, load),
            (3, 16) => tile16::<u8, 3, 16>(a, d, panel, sw, nb, c, first, load),
            (3, _) => tile16::<u8, 3, 32>(a, d, panel, sw, nb, c, first, load),
            (2, 16) => tile16::<u8, 2, 16>(a, d, panel, sw, nb, c, first, load),
            (2, _) => tile16::<u8, 2, 32>(a, d, panel, sw, nb, c, first, load),
            (1, 16) => tile16::<u8, 1, 16>(a, d, panel, sw, nb, c, first, load),
            _ => tile16::<u8, 1, 32>(a, d, panel, sw, nb, c, first, load),
        }
    }
}

/// i8 panels, one 16-byte load per k-pair, the halves widened by
/// `i16x8.extend_{low,high}_i8x16_s` (what simd128.rs ships).
#[inline(always)]
unsafe fn extend_halves(wp: *const u8, kp: usize) -> (v128, v128) {
    let w = unsafe { (wp.add(kp * 2 * NR) as *const v128).read_unaligned() };
    (i16x8_extend_low_i8x16(w), i16x8_extend_high_i8x16(w))
}

/// i8 panels, two `i16x8.load8x8_s` per k-pair (shipped until 2026-12-07).
#[inline(always)]
unsafe fn load8x8(wp: *const u8, kp: usize) -> (v128, v128) {
    unsafe { (i16x8_load_extend_i8x8(wp.add(kp * 2 * NR).cast()), i16x8_load_extend_i8x8(wp.add(kp * 2 * NR + 8).cast())) }
}

/// i16 panels (before the panels became i8: twice the bytes), two loads.
#[inline(always)]
unsafe fn load_i16(wp: *const i16, kp: usize) -> (v128, v128) {
    unsafe { ((wp.add(kp * 2 * NR) as *const v128).read_unaligned(), (wp.add(kp * 2 * NR + 8) as *const v128).read_unaligned()) }
}

/// The relaxed tile, `R` rows: i8 quad panels `[k/4][8][4]` as they are,
/// activations quantized to ±63 and stored `q + 64` (0..127: the 7-bit
/// operand), each block's accumulator starting from `−64 · Σ w`.
#[inline(never)]
#[target_feature(enable = "relaxed-simd")]
unsafe fn tile7<const R: usize>(a: *const u8, d: *const f32, panel: *const u8, sw: *const f32, sums: *const i32, c: *mut f32) {
    unsafe {
        let mut accf = [[f32x4_splat(0.0); 2]; R];
        for b in 0..NB {
            let c0 = (sums.add(b * NR) as *const v128).read_unaligned();
            let c1 = (sums.add(b * NR + 4) as *const v128).read_unaligned();
            let mut acc = [[c0, c1]; R];
            let (wp, ap) = (panel.add(b * B * NR), a.add(b * B));
            for kq in 0..B / 4 {
                let w0 = (wp.add(kq * 4 * NR) as *const v128).read_unaligned();
                let w1 = (wp.add(kq * 4 * NR + 16) as *const v128).read_unaligned();
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = i32x4_splat((ap.add(r * K + 4 * kq) as *const i32).read_unaligned());
                    acc[0] = i32x4_relaxed_dot_i8x16_i7x16_add(w0, x, acc[0]);
                    acc[1] = i32x4_relaxed_dot_i8x16_i7x16_add(w1, x, acc[1]);
                }
            }
            finish_block(&mut accf, &acc, d, sw, b);
        }
        store(&accf, c);
    }
}

#[inline(always)]
unsafe fn finish_block<const R: usize>(accf: &mut [[v128; 2]; R], acc: &[[v128; 2]; R], d: *const f32, sw: *const f32, b: usize) {
    unsafe {
        let s0 = (sw.add(b * NR) as *const v128).read_unaligned();
        let s1 = (sw.add(b * NR + 4) as *const v128).read_unaligned();
        for r in 0..R {
            let dv = f32x4_splat(*d.add(r * NB + b));
            accf[r][0] = f32x4_add(accf[r][0], f32x4_mul(f32x4_mul(f32x4_convert_i32x4(acc[r][0]), s0), dv));
            accf[r][1] = f32x4_add(accf[r][1], f32x4_mul(f32x4_mul(f32x4_convert_i32x4(acc[r][1]), s1), dv));
        }
    }
}

#[inline(always)]
unsafe fn store<const R: usize>(accf: &[[v128; 2]; R], c: *mut f32) {
    unsafe {
        for (r, acc) in accf.iter().enumerate() {
            (c.add(r * N) as *mut v128).write_unaligned(acc[0]);
            (c.add(r * N + 4) as *mut v128).write_unaligned(acc[1]);
        }
    }
}

/// Fill the operands (a fixed LCG; the values do not change the speed).
#[unsafe(no_mangle)]
pub extern "C" fn init() {
    let mut s: u64 = 1;
    let mut rnd = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    // SAFETY: single-threaded; nothing else touches the statics.
    unsafe {
        let (panel, a16, a7, sw, d) =
            (&mut *(&raw mut PANEL), &mut *(&raw mut A16), &mut *(&raw mut A7), &mut *(&raw mut SW), &mut *(&raw mut D));
        panel.iter_mut().for_each(|v| *v = ((rnd() % 255) as i32 - 127) as i8 as u8);
        let panel16 = &mut *(&raw mut PANEL16);
        panel16.iter_mut().zip(panel.iter()).for_each(|(w, &v)| *w = v as i8 as i16);
        a16.iter_mut().for_each(|v| *v = (rnd() % 255) as i16 - 127);
        a7.iter_mut().for_each(|v| *v = (rnd() % 128) as u8);
        sw.iter_mut().for_each(|v| *v = 1e-3);
        d.iter_mut().for_each(|v| *v = 1e-2);
    }
}

/// GMAC/s of kernel 0 (shipped), 1 (relaxed, `rows` 4..6), 2 (i16
/// panels) or 3 (two `load8x8_s`), best of 8 passes over
/// `[256, 768] × [2304, 768]ᵀ`.
#[unsafe(no_mangle)]
pub extern "C" fn run(kernel: u32, rows: u32) -> f64 {
    let rows = if kernel != 1 { 4 } else { rows as usize };
    let mut best = f64::MAX;
    // SAFETY: every offset stays inside the statics (M is a multiple of
    // the rows run, N of NR); single-threaded.
    unsafe {
        let (panel, sw, sums) = ((&raw const PANEL).cast::<u8>(), (&raw const SW).cast::<f32>(), (&raw const SUMS).cast::<i32>());
        let panel16 = (&raw const PANEL16).cast::<i16>();
        let (a16, a7, d, out) =
            ((&raw const A16).cast::<i16>(), (&raw const A7).cast::<u8>(), (&raw const D).cast::<f32>(), (&raw mut OUT).cast::<f32>());
        for _ in 0..8 {
            let t = now();
            if kernel >= 4 {
                // As driver.rs: row chunks of 48, k in chunks of `kc`
                // (256: the driver's KC; or all of K), panels, tiles of 4.
                let kc = if kernel == 5 { K } else { 256 };
                for m0 in (0..M).step_by(48) {
                    for k0 in (0..K).step_by(kc) {
                        let b0 = k0 / B;
                        for p in 0..N / NR {
                            let (pp, swp) = (panel.add(p * K * NR + k0 * NR), sw.add((p * NB + b0) * NR));
                            for r0 in (m0..(m0 + 48).min(M)).step_by(4) {
                                let (ap, dp, cp) = (a16.add(r0 * K + k0), d.add(r0 * NB + b0), out.add(r0 * N + p * NR));
                                if kernel == 6 {
                                    tiles_dispatch(4, B, ap, dp, pp, swp, kc / B, cp, k0 == 0);
                                } else {
                                    tile16_driven(ap, dp, pp, swp, kc / B, cp, k0 == 0);
                                }
                            }
                        }
                    }
                }
                let ms = now() - t;
                best = if ms < best { ms } else { best };
                continue;
            }
            for p in 0..N / NR {
                let (pp, swp, sp) = (panel.add(p * K * NR), sw.add(p * NB * NR), sums.add(p * NB * NR));
                for r0 in (0..M - M % rows).step_by(rows) {
                    let (dp, cp) = (d.add(r0 * NB), out.add(r0 * N + p * NR));
                    match (kernel, rows) {
                        (0, _) => tile16_whole(a16.add(r0 * K), dp, pp, swp, cp, |wp, kp| extend_halves(wp, kp)),
                        (2, _) => tile16_whole(a16.add(r0 * K), dp, panel16.add(p * K * NR), swp, cp, |wp, kp| load_i16(wp, kp)),
                        (3, _) => tile16_whole(a16.add(r0 * K), dp, pp, swp, cp, |wp, kp| load8x8(wp, kp)),
                        (_, 4) => tile7::<4>(a7.add(r0 * K), dp, pp, swp, sp, cp),
                        (_, 5) => tile7::<5>(a7.add(r0 * K), dp, pp, swp, sp, cp),
                        _ => tile7::<6>(a7.add(r0 * K), dp, pp, swp, sp, cp),
                    }
                }
            }
            let ms = now() - t;
            best = if ms < best { ms } else { best };
        }
    }
    ((M - M % rows) * N * K) as f64 / (best * 1e-3) / 1e9
}
