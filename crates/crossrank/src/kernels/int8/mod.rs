//! Integer GEMM for quantized linear layers on the CPU backend (native and
//! wasm): `y = x Wᵀ + b` with `W` in the checkpoint's q8/q4 block format
//! (one f16 scale per block of 16 or 32 weights along a row) and `x`
//! quantized on the fly per row and block — llama.cpp's Q8_0 × Q8_0
//! arrangement: integer dot products inside a block, one scale multiply per
//! block — but to **16-bit** activations, not 8:
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
//!   `d = amax / 32767`, `q = round_half_even(x · (32767 / amax))` (0 where
//!   `amax` is 0 or not finite), so `|q| ≤ 32767`;
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
//! unmeasurable without such a CPU); wasm relaxed SIMD
//! (`i32x4.relaxed_dot_i8x16_i7x16_add_s` multiplies by 7-bit unsigned
//! values only, so a 16-bit activation takes three
//! digits, and V8 lowers it on x86-64 without VNNI to `pmaddubsw` +
//! `pmaddwd` + `paddd`: 9 instructions per 16 products where
//! `i32x4.dot_i16x8_s` + `i32x4.add` take 4 — slower on the hosts most
//! visitors have; with AVX-VNNI it would be one `vpdpbusd` per digit, 3
//! per 16, a gain only there, which a page cannot detect).

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod scalar;
#[cfg(target_arch = "wasm32")]
mod simd128;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

pub(crate) use scalar::reference;

/// Which integer kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Not used: quantized layers dequantize to f32 and run the f32 GEMM.
    Off,
    Scalar,
    Avx2,
    Avx512Vnni,
    Neon,
    Dotprod,
    I8mm,
    Simd128,
}

impl Path {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Off => "off (dequantize + f32 GEMM)",
            Path::Scalar => "scalar",
            Path::Avx2 => "AVX2 (vpmaddwd)",
            Path::Avx512Vnni => "AVX-512 VNNI (vpdpwssd)",
            Path::Neon => "aarch64 NEON (smlal)",
            Path::Dotprod => "aarch64 dot product (sdot/udot)",
            Path::I8mm => "aarch64 i8mm (smmla/usmmla)",
            Path::Simd128 => "wasm SIMD128 (i32x4.dot_i16x8_s)",
        }
    }

    /// Whether this machine can run the path.
    pub(crate) fn available(self) -> bool {
        match self {
            Path::Off | Path::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512Vnni => x86::has_avx512_vnni(),
            #[cfg(target_arch = "aarch64")]
            Path::Neon => aarch64::has_neon(),
            #[cfg(target_arch = "aarch64")]
            Path::Dotprod => aarch64::has_dotprod(),
            #[cfg(target_arch = "aarch64")]
            Path::I8mm => aarch64::has_i8mm(),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Path::Simd128 => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest path this machine has (the scalar code is slower than
    /// dequantize + f32 SIMD GEMM, so without a SIMD path the answer is
    /// `Off`).
    ///
    /// On wasm32 that is SIMD128. For one session (stop 30) it was not:
    /// in Chromium a q8 model ran slower through the integer kernel than
    /// through dequantize + gemm's f32 kernel (q8/f32 0.71-0.97x vs
    /// 1.01-1.06x). The cause was the build, not the kernel: the npm
    /// .wasm builds were optimised for size (opt-level s), at which LLVM
    /// does not unroll the tile's loops over rows and columns, so its
    /// accumulators lived in memory (a 4x8 f32 tile in V8: 3.9 GMAC/s at
    /// s, 11-15 at 3). With this crate at opt-level 3 (Cargo.toml's wasm
    /// profiles), the same model in Node, q8, 8 pairs, two interleaved
    /// runs: integer kernel 0.707 and 0.765 pairs/s, dequantizing 0.528
    /// and 0.459 (1.45-1.67x).
    fn best() -> Path {
        [Path::Avx512Vnni, Path::Avx2, Path::I8mm, Path::Dotprod, Path::Neon, Path::Simd128]
            .into_iter()
            .find(|p| p.available())
            .unwrap_or(Path::Off)
    }

    /// The path a `CROSSRANK_INT8` value names (case-insensitive), if any.
    pub(crate) fn from_name(name: &str) -> Option<Path> {
        Some(match name.to_ascii_lowercase().as_str() {
            "off" | "0" | "f32" => Path::Off,
            "scalar" => Path::Scalar,
            "avx2" => Path::Avx2,
            "avx512" | "vnni" | "avx512vnni" => Path::Avx512Vnni,
            "neon" | "smlal" => Path::Neon,
            "dotprod" | "sdot" => Path::Dotprod,
            "i8mm" | "smmla" => Path::I8mm,
            "simd128" => Path::Simd128,
            _ => return None,
        })
    }
}

/// The integer path quantized linear layers use on this machine:
/// `CROSSRANK_INT8` if set to an available path, else the best one.
pub(crate) fn path() -> Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    *PATH.get_or_init(|| {
        let wanted = std::env::var("CROSSRANK_INT8").ok().map(|v| {
            let p = Path::from_name(&v);
            if p.is_none() {
                tracing::warn!("CROSSRANK_INT8={v:?} is not one of off, scalar, avx2, avx512, neon, dotprod, i8mm, simd128; ignored");
            }
            p
        });
        match wanted.flatten() {
            Some(p) if p.available() => p,
            Some(p) => {
                tracing::warn!(
                    "CROSSRANK_INT8={:?}: {} is not available here; using {}",
                    std::env::var("CROSSRANK_INT8").unwrap_or_default(),
                    p.name(),
                    Path::best().name()
                );
                Path::best()
            }
            None => Path::best(),
        }
    })
}

/// A quantized weight matrix `[n, k]` as stored: `bits`-wide unsigned
/// fields of 32-bit words (low field first) and one scale per block.
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a> {
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) bits: u32,
    pub(crate) block: usize,
    /// `[n, k * bits / 32]`.
    pub(crate) words: &'a [u32],
    /// `[n, k / block]`.
    pub(crate) scales: &'a [f32],
}

impl Weights<'_> {
    /// The signed value at `(row, col)`.
    #[inline(always)]
    pub(crate) fn q(&self, row: usize, col: usize) -> i32 {
        let per_word = 32 / self.bits as usize;
        let idx = row * self.k + col;
        let field = (self.words[idx / per_word] >> ((idx % per_word) as u32 * self.bits)) & ((1u32 << self.bits) - 1);
        field as i32 - (1i32 << (self.bits - 1))
    }

    fn blocks(&self) -> usize {
        self.k / self.block
    }
}

/// Activations quantized per row and block: i16 values (within ±32767)
/// and block scales `d`.
pub(crate) struct Acts {
    pub(crate) m: usize,
    pub(crate) q: Vec<i16>,
    pub(crate) d: Vec<f32>,
}

/// The activations' largest magnitude.
const QMAX: f32 = 32767.0;

/// Round half to even for |v| < 2^22 with two f32 additions (the FPU's
/// default rounding): the same on every target, and vectorizable without
/// SSE4.1's `roundps`.
#[inline(always)]
fn round_even(v: f32) -> f32 {
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
fn quantize_block(xb: &[f32], qb: &mut [i16]) -> f32 {
    let amax = absmax(xb);
    let (scale, inv) = if amax > 0.0 && amax.is_finite() { (amax / QMAX, QMAX / amax) } else { (0.0, 0.0) };
    for (xc, qc) in xb.chunks_exact(8).zip(qb.chunks_exact_mut(8)) {
        for (v, o) in xc.iter().zip(qc.iter_mut()) {
            // |x·inv| ≤ QMAX up to rounding: clamped; NaN (x NaN, or ±inf
            // times a 0 scale) is 0.
            let y = v * inv;
            let y = if y > QMAX {
                QMAX
            } else if y < -QMAX {
                -QMAX
            } else {
                y
            };
            let y = if y.is_nan() { 0.0 } else { round_even(y) };
            // SAFETY: y is an integer within ±QMAX (not NaN, not infinite).
            *o = unsafe { y.to_int_unchecked::<i32>() } as i16;
        }
    }
    scale
}

/// Quantize `[m, k]` row-major f32 activations per row and `block`.
pub(crate) fn quantize_acts(x: &[f32], m: usize, k: usize, block: usize) -> Acts {
    let blocks = k / block;
    let mut q = vec![0i16; m * k];
    let mut d = vec![0f32; m * blocks];
    let row = |((xr, qr), dr): ((&[f32], &mut [i16]), &mut [f32])| {
        for (b, (xb, qb)) in xr.chunks_exact(block).zip(qr.chunks_exact_mut(block)).enumerate() {
            dr[b] = quantize_block(xb, qb);
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (x.par_chunks_exact(k).zip(q.par_chunks_exact_mut(k))).zip(d.par_chunks_exact_mut(blocks)).with_min_len(16).for_each(row);
    }
    #[cfg(not(feature = "rayon"))]
    (x.chunks_exact(k).zip(q.chunks_exact_mut(k))).zip(d.chunks_exact_mut(blocks)).for_each(row);
    Acts { m, q, d }
}

/// `out[m, n] = Σ_b dot_b · s · d (+ bias[n])` for `x` `[m, k]` on `path`,
/// or `None` when the path does not take this shape (block not 16 or 32,
/// or `Off`), for the caller's f32 fallback.
pub(crate) fn linear(path: Path, x: &[f32], m: usize, w: &Weights, bias: Option<&[f32]>) -> Option<Vec<f32>> {
    if !matches!(w.block, 16 | 32) || w.k % w.block != 0 || x.len() != m * w.k {
        return None;
    }
    if m == 0 || w.n == 0 {
        return (path != Path::Off).then(|| vec![0f32; m * w.n]);
    }
    let mut out = match path {
        Path::Off => return None,
        Path::Scalar => reference(&quantize_acts(x, m, w.k, w.block), w),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => x86::avx2_linear(x, m, w),
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => x86::vnni_linear(x, m, w),
        #[cfg(target_arch = "aarch64")]
        Path::Neon => aarch64::neon_linear(x, m, w),
        #[cfg(target_arch = "aarch64")]
        Path::Dotprod => aarch64::dotprod_linear(x, m, w),
        #[cfg(target_arch = "aarch64")]
        Path::I8mm => aarch64::i8mm_linear(x, m, w),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Path::Simd128 => simd128::linear(x, m, w),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(w.n) {
            row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
        }
    }
    Some(out)
}

/// An output buffer of `len` values the kernels write before they read
/// (the first pass over k starts from zero), so it is not zeroed first:
/// for reranker batches that is tens of MB per layer, zeroed for nothing.
fn uninit_output(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: f32 has no invalid bit patterns, and every value is written
    // by a kernel (tiles cover the whole output) before anything reads it.
    unsafe { v.set_len(len) };
    v
}

/// Rows of activations a task covers (a multiple of every kernel's rows).
const MC: usize = 48;
/// Values of k per pass over a panel: a panel chunk (8–16 KB) stays in L1
/// while a task's rows stream through it.
const KC: usize = 256;

/// What a SIMD micro-kernel computes: one tile of up to its `mr` rows ×
/// its `nr` columns over `nb` blocks, from activation rows `a` (stride
/// `lda` i16 values; see [`Layout`] for what they hold) with block scales
/// `d` (stride `ldd`), a panel chunk (bytes, laid out as the kernel's
/// [`Layout`] says) and its scales `sw` (`[nb][nr]`), accumulated into `c`
/// (stride `ldc`) — from zero on the `first` pass over k, when `c` holds
/// nothing yet.
#[derive(Clone, Copy)]
pub(super) struct TileArgs {
    pub(super) a: *const i16,
    pub(super) lda: usize,
    pub(super) d: *const f32,
    pub(super) ldd: usize,
    pub(super) panel: *const u8,
    pub(super) sw: *const f32,
    pub(super) nb: usize,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) first: bool,
}

/// How a micro-kernel wants its operands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(dead_code)] // some targets use one layout only
pub(super) enum Layout {
    /// Weights as i16 panels `[k/2][nr][2]` ([`pack_i16`]), activations as
    /// i16 rows: for `vpmaddwd`, `vpdpwssd`, `i32x4.dot_i16x8_s`, `smlal`.
    I16Pairs,
    /// Weights as i8 panels `[k/4][nr][4]` ([`pack_i8`]); each block of
    /// `B` activations re-encoded in place as two 8-bit digits
    /// ([`to_digits`]): `B` signed high bytes then `B` unsigned low bytes,
    /// `q = 256·hi + lo` — for 8-bit dot products (`sdot`/`udot`).
    I8Quads,
    /// Weights as i8 panels `[k/8][nr][8]` (eight consecutive k of a
    /// column together, two columns per 16-byte register, as `smmla`
    /// takes its second operand); activations as two digits per block, as
    /// for [`Layout::I8Quads`] — for the 2 × 8 × 2 matrix products (i8mm).
    I8Octets,
}

impl Layout {
    /// Consecutive k of one column stored together in a panel.
    #[allow(dead_code)] // as `run_tiles`: no SIMD kernel on some targets
    fn group(self) -> usize {
        match self {
            Layout::I16Pairs => 2,
            Layout::I8Quads => 4,
            Layout::I8Octets => 8,
        }
    }
}

/// A micro-kernel for `rows` rows and blocks of `block`.
#[allow(dead_code)] // no SIMD kernel on some targets
pub(super) type Tile = unsafe fn(rows: usize, block: usize, t: TileArgs);

/// `[m, n]` outputs (no bias) with the micro-kernel `tile` of `mr` × `nr`:
/// activations quantized, weights repacked into panels, then tiles over a
/// grid of row chunks × panel groups (in parallel where there are
/// threads), k in chunks of [`KC`] accumulated through the output.
///
/// # Safety
/// `tile` must run on this CPU (its target features checked).
#[allow(dead_code)] // no SIMD kernel on some targets
pub(super) unsafe fn run_tiles(x: &[f32], m: usize, w: &Weights, nr: usize, mr: usize, layout: Layout, tile: Tile) -> Vec<f32> {
    let mut a = quantize_acts(x, m, w.k, w.block);
    let panels = w.n.div_ceil(nr);
    let scales = panel_scales(w, nr);
    // The panels as bytes, and the bytes per weight.
    let (packed16, packed8);
    let (packed, elem): (&[u8], usize) = match layout {
        Layout::I16Pairs => {
            packed16 = pack_i16(w, nr);
            // SAFETY: i16 as its bytes (u8 has no alignment or validity needs).
            (unsafe { std::slice::from_raw_parts(packed16.as_ptr().cast(), packed16.len() * 2) }, 2)
        }
        Layout::I8Quads | Layout::I8Octets => {
            to_digits(&mut a.q, w.block);
            packed8 = pack_i8(w, nr, layout.group());
            (&packed8[..], 1)
        }
    };
    let mut out = uninit_output(m * w.n);
    let o = OutPtr(out.as_mut_ptr());
    let (k, n, block, blocks) = (w.k, w.n, w.block, w.blocks());
    let kcb = KC / block;
    grid(m, panels, MC, |m0, m1, p0, p1| {
        let o = o;
        // An edge tile (fewer than `nr` columns) goes through `scratch`.
        let mut scratch = vec![0f32; mr * nr];
        for b0 in (0..blocks).step_by(kcb) {
            let (nb, first) = (kcb.min(blocks - b0), b0 == 0);
            for p in p0..p1 {
                let cols = nr.min(n - p * nr);
                // SAFETY: every offset is inside `a`, `packed`, `scales` and
                // the output (tiles cover rows m0..m1 and columns of panel
                // p, which no other task writes); `tile` runs on this CPU.
                unsafe {
                    let panel = packed.as_ptr().add((p * k * nr + b0 * block * nr) * elem);
                    let sw = scales.as_ptr().add((p * blocks + b0) * nr);
                    for r0 in (m0..m1).step_by(mr) {
                        let rows = mr.min(m1 - r0);
                        let ap = a.q.as_ptr().add(r0 * k + b0 * block);
                        let dp = a.d.as_ptr().add(r0 * blocks + b0);
                        let cp = o.0.add(r0 * n + p * nr);
                        let t = TileArgs { a: ap, lda: k, d: dp, ldd: blocks, panel, sw, nb, c: cp, ldc: n, first };
                        if cols == nr {
                            tile(rows, block, t);
                            continue;
                        }
                        scratch.fill(0.0);
                        for r in (0..rows).filter(|_| !first) {
                            for j in 0..cols {
                                scratch[r * nr + j] = *cp.add(r * n + j);
                            }
                        }
                        tile(rows, block, TileArgs { c: scratch.as_mut_ptr(), ldc: nr, ..t });
                        for r in 0..rows {
                            for j in 0..cols {
                                *cp.add(r * n + j) = scratch[r * nr + j];
                            }
                        }
                    }
                }
            }
        }
    });
    out
}

/// A [`Tile`] from a micro-kernel generic over rows and block:
/// `tiles!(name, kernel, [4, 3, 2, 1], #[target_feature(...)])` defines
/// `unsafe fn name(rows, block, t)` calling `kernel::<rows, block>(t)`
/// (block 16 or 32) with the kernel's target features.
#[allow(unused_macros)]
macro_rules! tiles {
    ($name:ident, $f:ident, [$($r:literal),*] $(, #[$attr:meta])?) => {
        $(#[$attr])?
        unsafe fn $name(rows: usize, block: usize, t: super::TileArgs) {
            // SAFETY: the caller's (`Tile`).
            unsafe {
                match (rows, block) {
                    $(($r, 16) => $f::<$r, 16>(t), ($r, _) => $f::<$r, 32>(t),)*
                    _ => unreachable!("rows beyond the kernel's tile"),
                }
            }
        }
    };
}
#[allow(unused_imports)]
pub(super) use tiles;

/// A raw output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Run `task(m0, m1, p0, p1)` over a grid that covers rows `0..m` and
/// column panels `0..panels`, in parallel where there are threads: row
/// chunks of `mc` (a multiple of the kernel's rows), and panel groups when
/// there are too few row chunks to keep every thread busy.
fn grid(m: usize, panels: usize, mc: usize, task: impl Fn(usize, usize, usize, usize) + Send + Sync) {
    let m_chunks = m.div_ceil(mc);
    #[cfg(feature = "rayon")]
    let threads = rayon::current_num_threads();
    #[cfg(not(feature = "rayon"))]
    let threads = 1;
    let want = 4 * threads;
    let p_groups = if m_chunks >= want { 1 } else { want.div_ceil(m_chunks).min(panels).max(1) };
    let per_group = panels.div_ceil(p_groups);
    let p_groups = panels.div_ceil(per_group);
    let run = |t: usize| {
        let (mi, pi) = (t / p_groups, t % p_groups);
        let (m0, p0) = (mi * mc, pi * per_group);
        task(m0, (m0 + mc).min(m), p0, (p0 + per_group).min(panels));
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..m_chunks * p_groups).into_par_iter().for_each(run);
    }
    #[cfg(not(feature = "rayon"))]
    (0..m_chunks * p_groups).for_each(run);
}

/// `f(i, chunk)` over `v` in chunks of `size`, in parallel where there
/// are threads (panel packing).
fn for_each_panel<T: Send>(v: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        v.par_chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(not(feature = "rayon"))]
    v.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
}

/// Row `n`'s stored unsigned fields as bytes (q8: `q + 128`; q4: `q + 8`).
fn row_fields(w: &Weights, n: usize, out: &mut [u8]) {
    let words = w.k * w.bits as usize / 32;
    let src = &w.words[n * words..(n + 1) * words];
    if w.bits == 8 {
        for (o, word) in out.chunks_exact_mut(4).zip(src) {
            o.copy_from_slice(&word.to_le_bytes());
        }
    } else {
        for (o, &word) in out.chunks_exact_mut(8).zip(src) {
            for (i, v) in o.iter_mut().enumerate() {
                *v = ((word >> (4 * i)) & 15) as u8;
            }
        }
    }
}

/// Weights repacked for the i16 kernels: panels of `cols` output columns,
/// each `[k/2][cols][2]` (a k-pair of every column side by side, as
/// `vpmaddwd` / `i32x4.dot_i16x8_s` / `vpdpwssd` / `smlal` pair them).
fn pack_i16(w: &Weights, cols: usize) -> Vec<i16> {
    pack(w, cols, 2, |v| v)
}

/// Weights repacked for 8-bit dot products: panels of `cols` output
/// columns, each `[k/group][cols][group]` (`group` consecutive k of a
/// column together: 4 as `sdot` sums them, 8 as `smmla` takes them), as
/// i8 bytes.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))] // the aarch64 kernels'
fn pack_i8(w: &Weights, cols: usize, group: usize) -> Vec<u8> {
    pack(w, cols, group, |v| v as i8 as u8)
}

/// Panels of `cols` output columns, each `[k/group][cols][group]`, of the
/// signed weights (q8: −127..127, q4: −7..7) through `to`; padding
/// columns 0.
fn pack<T: Copy + Default + Send>(w: &Weights, cols: usize, group: usize, to: impl Fn(i16) -> T + Send + Sync) -> Vec<T> {
    let (k, panels) = (w.k, w.n.div_ceil(cols));
    let mut packed = vec![T::default(); panels * k * cols];
    let offset = 1i16 << (w.bits - 1);
    for_each_panel(&mut packed, k * cols, |p, panel| {
        let mut row = vec![0u8; k];
        for c in 0..cols.min(w.n - p * cols) {
            row_fields(w, p * cols + c, &mut row);
            // Group `g` of k starts at `g·group·cols` (no division per value:
            // the per-call repack is on every quantized layer's path).
            for (g, us) in row.chunks_exact(group).enumerate() {
                let dst = &mut panel[g * group * cols + c * group..][..group];
                for (d, &u) in dst.iter_mut().zip(us) {
                    *d = to(u as i16 - offset);
                }
            }
        }
    });
    packed
}

/// Re-encode quantized activations in place, per block of `block` values,
/// as their 8-bit digits: `block` high bytes (`q >> 8`, signed −128..127)
/// then `block` low bytes (`q & 255`, unsigned), so that `q = 256·hi + lo`
/// exactly for every i16.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
fn to_digits(q: &mut [i16], block: usize) {
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

/// Panel scales `[blocks][cols]` (0 for padding columns) for every panel.
fn panel_scales(w: &Weights, cols: usize) -> Vec<f32> {
    let (blocks, panels) = (w.blocks(), w.n.div_ceil(cols));
    let mut s = vec![0f32; panels * blocks * cols];
    for n in 0..w.n {
        let (p, c) = (n / cols, n % cols);
        for b in 0..blocks {
            s[(p * blocks + b) * cols + c] = w.scales[n * blocks + b];
        }
    }
    s
}

#[cfg(test)]
mod tests;
