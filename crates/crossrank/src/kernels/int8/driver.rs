//! The tile driver every SIMD kernel shares: micro-kernel tiles over
//! quantized activations and prepared weight panels ([`super::Panels`]), on
//! a grid of row chunks × panel groups (in parallel where there are
//! threads), k in chunks accumulated through the output.


/// An output buffer of `len` values the kernels write before they read
/// (the first pass over k starts from zero), so it is not zeroed first:
/// for reranker batches that is tens of MB per layer, zeroed for nothing.
pub(super) fn uninit_output(len: usize) -> Vec<f32> {
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
/// `lda` values of the kernel's activation type — i16, i8 or biased u8 —
/// from the tile's first row and block; see [`Layout`]) with block scales
/// `d` (stride `ldd`), a panel chunk (bytes, laid out as the kernel's
/// [`Layout`] says) and its scales `sw` (`[nb][nr]`), accumulated into `c`
/// (stride `ldc`) — from zero on the `first` pass over k, when `c` holds
/// nothing yet. `sums` (`[nb][nr]`, null unless the panels have them):
/// `128 · Σ w` per block and column, the correction of a u8 × s8 product
/// whose activations are biased by 128.
#[derive(Clone, Copy)]
pub(super) struct TileArgs {
    pub(super) a: *const u8,
    pub(super) lda: usize,
    pub(super) d: *const f32,
    pub(super) ldd: usize,
    pub(super) panel: *const u8,
    pub(super) sw: *const f32,
    #[allow(dead_code)] // read by the biased-u8 kernels only (x86-64)
    pub(super) sums: *const i32,
    pub(super) nb: usize,
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) first: bool,
}

/// How a micro-kernel wants its operands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(dead_code)] // some targets use one layout only
pub(super) enum Layout {
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
    /// Weights as i8 panels `[k/2][nr][2]` (a k-pair of every column side
    /// by side), widened to i16 as they are loaded; activations as i16
    /// rows: for `vpmaddwd`, `vpdpwssd`, `i32x4.dot_i16x8_s`, `smlal`.
    I8Pairs,
}

impl Layout {
    /// Consecutive k of one column stored together in a panel.
    #[allow(dead_code)] // as `run_tiles`: no SIMD kernel on some targets
    pub(super) fn group(self) -> usize {
        match self {
            Layout::I8Pairs => 2,
            Layout::I8Quads => 4,
            Layout::I8Octets => 8,
        }
    }
}

/// A micro-kernel for `rows` rows and blocks of `block`.
#[allow(dead_code)] // no SIMD kernel on some targets
pub(super) type Tile = unsafe fn(rows: usize, block: usize, t: TileArgs);

/// The sizes a tile grid covers: `[m, k] × [n, k]ᵀ` in blocks of `block`,
/// a micro-kernel of `mr` × `nr`.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) block: usize,
    pub(super) nr: usize,
    pub(super) mr: usize,
}

/// `[m, n]` outputs (no bias) from quantized activations `a` (`[m, k]`
/// values of the kernel's type) with scales `d` (`[m, k / block]`) and
/// prepared panels (`elem` bytes per weight, their scales and, for
/// biased-u8 kernels, their sums): tiles over a grid of row chunks × panel
/// groups (in parallel where there are threads), k in chunks of [`KC`]
/// accumulated through the output.
///
/// # Safety
/// `tile` must run on this CPU (its target features checked), and the
/// panels must be laid out for it with `shape.nr` columns.
#[allow(dead_code)] // no SIMD kernel on some targets
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run_panels<T: Sync>(
    a: &[T],
    d: &[f32],
    s: Shape,
    packed: &[u8],
    elem: usize,
    scales: &[f32],
    sums: &[i32],
    tile: Tile,
) -> Vec<f32> {
    let Shape { m, n, k, block, nr, mr } = s;
    let blocks = k / block;
    let panels = n.div_ceil(nr);
    debug_assert!(a.len() == m * k && d.len() == m * blocks && packed.len() == panels * k * nr * elem);
    debug_assert!(scales.len() == panels * blocks * nr && (sums.is_empty() || sums.len() == scales.len()));
    let asz = std::mem::size_of::<T>();
    // SAFETY: the values as bytes (the kernels read them as T again).
    let abytes = unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), std::mem::size_of_val(a)) };
    let mut out = uninit_output(m * n);
    let o = OutPtr(out.as_mut_ptr());
    let kcb = KC / block;
    grid(m, panels, MC, |m0, m1, p0, p1| {
        let o = o;
        // An edge tile (fewer than `nr` columns) goes through `scratch`.
        let mut scratch = vec![0f32; mr * nr];
        for b0 in (0..blocks).step_by(kcb) {
            let (nb, first) = (kcb.min(blocks - b0), b0 == 0);
            for p in p0..p1 {
                let cols = nr.min(n - p * nr);
                // SAFETY: every offset is inside `a`, `packed`, `scales`,
                // `sums` and the output (tiles cover rows m0..m1 and
                // columns of panel p, which no other task writes); `tile`
                // runs on this CPU.
                unsafe {
                    let panel = packed.as_ptr().add((p * k * nr + b0 * block * nr) * elem);
                    let sw = scales.as_ptr().add((p * blocks + b0) * nr);
                    let sums = if sums.is_empty() { std::ptr::null() } else { sums.as_ptr().add((p * blocks + b0) * nr) };
                    for r0 in (m0..m1).step_by(mr) {
                        let rows = mr.min(m1 - r0);
                        let ap = abytes.as_ptr().add((r0 * k + b0 * block) * asz);
                        let dp = d.as_ptr().add(r0 * blocks + b0);
                        let cp = o.0.add(r0 * n + p * nr);
                        let t = TileArgs { a: ap, lda: k, d: dp, ldd: blocks, panel, sw, sums, nb, c: cp, ldc: n, first };
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
