//! Weight panels in the layout of the kernel this machine runs, built
//! once when a model loads for its q8 layers (per call for q4, whose
//! 4-bit words would double as i8 panels). The panels are i8, one byte
//! per weight like the checkpoint, so they replace the stored words
//! instead of doubling them (the caller keeps only the panels;
//! [`Panels::stored`] gives the words back). The 16-bit kernels widen
//! them to i16 as they load them (`vpmovsxbw`, `i16x8.extend_{low,high}_i8x16_s`,
//! `sxtl`), or read them as they are (aarch64's digit kernels).
//!
//! For `int8` (8-bit activations), each kernel bit for bit the scalar
//! reference on activations quantized to ±[`QMAX8`]:
//! * AVX-512 VNNI: `vpdpbusd` (u8 × s8, four products summed per i32
//!   lane, 64 per instruction — twice `vpdpwssd`'s 32). The activations
//!   are stored biased, `q + 128` (1..255), and each block's accumulator
//!   starts from `−128 · Σ w` of its column (built with the panels), so
//!   the integer dot is exact with no per-row correction.
//! * AVX2 (no VNNI): the 16-bit kernel's `vpmaddwd` on i16 rows holding
//!   8-bit values, i8 panels widened as loaded. `vpmaddubsw` needs an
//!   unsigned operand and its u8 × s8 pair sums saturate i16
//!   (255·127·2 > 32767), so the biased form ONNX Runtime uses cannot equal
//!   the reference; the exact form moves the sign to the weights,
//!   `vpmaddubsw(|x|, sign(w, x))` then `vpmaddwd` by ones, and measured
//!   slower (see `x86::AVX2_8`). So on AVX2 `int8` runs at `q8`'s speed.
//! * aarch64 dot product / i8mm: `sdot` / `smmla` take signed × signed,
//!   so the activations are i8 as they are: one instruction per 16 (sdot)
//!   or 32 (smmla) products, half the 16-bit path's two.
//! * aarch64 NEON without either, wasm SIMD128: the 16-bit kernels'
//!   arithmetic (`smlal`, `i32x4.dot_i16x8_s`) with the panels in i8,
//!   widened as they are loaded: the same instructions on half the panel
//!   bytes.
//!
//! Not here:
//! * wasm relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s`: one side
//!   7-bit (0..127), so `int8` would take activations quantized to ±63
//!   and biased by 64 (the VNNI kernel's correction with 64), and a second
//!   .wasm for the engines that have it. Measured first
//!   (benches/wasm-relaxed, AMD EPYC with AVX2, no VNNI: V8 lowers it to
//!   `pmaddubsw` + `pmaddwd` + `paddd`): its best tile (5 rows) ran 29.9
//!   GMAC/s in Chromium 156 and 29.1 in Node 20, against 30.0 / 28.4 for
//!   the SIMD128 kernel on 16-bit lanes — no gain on such a CPU for half
//!   the activation bits. Only V8 with AVX-VNNI (`vpdpbusd`) or an ARM
//!   `sdot` could gain, and neither was at hand to measure.
//! * AVX-VNNI (`vpdpbusd` on ymm: Alder Lake and later Intel client CPUs):
//!   this host lacks it and QEMU's TCG does not emulate it ("TCG doesn't
//!   support requested feature: CPUID.07H:EAX.avx-vnni", QEMU 10.0), so a
//!   kernel could be neither tested bit for bit nor timed.

use super::acts::{Elem, QMAX8, QMAX16, quantize_rows, to_digits};
use super::driver::{Layout, Shape, Tile, run_panels};
use super::pack::{pack_i8, panel_scales, row_fields};
use super::{Path, QuantWeights, add_bias};

/// What a kernel reads the activations as.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(dead_code)] // each target uses some
pub(super) enum ActType {
    /// Signed, as quantized.
    I8,
    /// `q + 128`, for u8 × s8 products.
    U8,
    /// Widened to i16 (for the i16 multiply-adds).
    I16,
    /// 16-bit values as two 8-bit digits per block (`acts::to_digits`),
    /// for 8-bit dot products.
    Digits,
}

/// A kernel: its tile of `mr` × `nr`, the panel layout and activation
/// type it reads, and whether it needs the `−128 · Σ w` block sums.
#[derive(Clone, Copy)]
#[allow(dead_code)] // no kernel on some targets
pub(super) struct Kernel {
    pub(super) nr: usize,
    pub(super) mr: usize,
    pub(super) layout: Layout,
    pub(super) acts: ActType,
    pub(super) sums: bool,
    pub(super) tile: Tile,
}

/// The kernel of `path` for activations quantized to `±qmax`, if it has one.
fn kernel(path: Path, qmax: i32) -> Option<Kernel> {
    let act8 = qmax == QMAX8;
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => Some(if act8 { super::x86::VNNI8 } else { super::x86::VNNI16 }),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => Some(super::x86::AVX2),
        #[cfg(target_arch = "aarch64")]
        Path::Neon => Some(super::aarch64::NEON),
        #[cfg(target_arch = "aarch64")]
        Path::Dotprod => Some(if act8 { super::aarch64::DOTPROD8 } else { super::aarch64::DOTPROD16 }),
        #[cfg(target_arch = "aarch64")]
        Path::I8mm => Some(if act8 { super::aarch64::I8MM8 } else { super::aarch64::I8MM16 }),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Path::Simd128 => Some(super::simd128::KERNEL),
        _ => {
            let _ = act8;
            None
        }
    }
}

/// A q8/q4 matrix `[n, k]` as one kernel's panels, for activations
/// quantized to `±qmax`.
pub(crate) struct Panels {
    path: Path,
    /// The kernel the panels are laid out for.
    kern: Kernel,
    qmax: i32,
    bits: u32,
    n: usize,
    k: usize,
    block: usize,
    /// `[n/nr][k/group][nr][group]` i8.
    bytes: Vec<u8>,
    /// `[n/nr][k/block][nr]`.
    scales: Vec<f32>,
    /// `−128 · Σ w` per block and column, laid out as `scales`; empty
    /// unless the kernel takes biased activations.
    sums: Vec<i32>,
}

impl std::fmt::Debug for Panels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Panels({} × {}, block {}, {})", self.n, self.k, self.block, self.path.name())
    }
}

impl Panels {
    /// `w`'s panels for `path`'s kernel for activations quantized to
    /// `±qmax` ([`QMAX16`] or [`QMAX8`]), or `None` where it has none (the
    /// scalar path, `off`, a path this CPU lacks), for blocks other than 16
    /// or 32, and for 8-bit activations on weights that are not q8.
    pub(crate) fn new(path: Path, w: &QuantWeights, qmax: i32) -> Option<Self> {
        let shape_ok = matches!(w.block, 16 | 32) && w.k % w.block == 0 && w.n > 0 && matches!(w.bits, 4 | 8);
        if !shape_ok || (qmax == QMAX8 && w.bits != 8) || !matches!(qmax, QMAX8 | QMAX16) || !path.available() {
            return None;
        }
        let kern = kernel(path, qmax)?;
        let (bytes, scales) = (pack_i8(w, kern.nr, kern.layout.group()), panel_scales(w, kern.nr));
        let sums = if kern.sums { block_sums(w, kern.nr) } else { Vec::new() };
        Some(Self { path, kern, qmax, bits: w.bits, n: w.n, k: w.k, block: w.block, bytes, scales, sums })
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn block(&self) -> usize {
        self.block
    }

    /// The bytes held (panels, scales, sums).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn memory(&self) -> usize {
        self.bytes.len() + 4 * (self.scales.len() + self.sums.len())
    }

    /// `x Wᵀ (+ bias)` for `x` `[m, k]`: activations quantized per row and
    /// block, then the kernel's tiles over the panels.
    pub(crate) fn linear(&self, x: &[f32], m: usize, bias: Option<&[f32]>) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k, "activations of {m} rows × {}", self.k);
        let mut out = match (self.kern.acts, self.qmax == QMAX8) {
            _ if m == 0 => Vec::new(),
            (ActType::I8, _) => self.product::<i8, QMAX8>(x, m, |_| {}),
            (ActType::U8, _) => self.product::<u8, QMAX8>(x, m, |_| {}),
            (ActType::I16, true) => self.product::<i16, QMAX8>(x, m, |_| {}),
            (ActType::I16, false) => self.product::<i16, QMAX16>(x, m, |_| {}),
            (ActType::Digits, _) => self.product::<i16, QMAX16>(x, m, |q| to_digits(q, self.block)),
        };
        add_bias(&mut out, self.n, bias);
        out
    }

    /// The tiles over `x` quantized to `±QMAX` as `T`, then re-encoded by
    /// `encode` as the kernel reads them (digits, or as they are).
    fn product<T: Elem, const QMAX: i32>(&self, x: &[f32], m: usize, encode: impl FnOnce(&mut [T])) -> Vec<f32> {
        let (k, block, kern) = (self.k, self.block, self.kern);
        let (mut q, d) = quantize_rows::<T, QMAX>(x, m, k, block);
        encode(&mut q);
        let shape = Shape { m, n: self.n, k, block, nr: kern.nr, mr: kern.mr };
        // SAFETY: the panels were built for this kernel (`new`), whose path
        // is available on this CPU.
        unsafe { run_panels(&q, &d, shape, &self.bytes, 1, &self.scales, &self.sums, kern.tile) }
    }

    /// The matrix as a checkpoint stores it: words `[n, k·bits/32]` (each
    /// field `q + 2^(bits−1)`, low first) and scales `[n, k/block]`.
    pub(crate) fn stored(&self) -> (Vec<u32>, Vec<f32>) {
        let (nr, group, k, blocks) = (self.kern.nr, self.kern.layout.group(), self.k, self.k / self.block);
        let (bits, per_word) = (self.bits, 32 / self.bits as usize);
        let offset = 1i32 << (bits - 1);
        let row_words = k / per_word;
        let mut words = vec![0u32; self.n * row_words];
        let mut scales = vec![0f32; self.n * blocks];
        for n in 0..self.n {
            let (p, c) = (n / nr, n % nr);
            let panel = &self.bytes[p * k * nr..(p + 1) * k * nr];
            for (j, word) in words[n * row_words..(n + 1) * row_words].iter_mut().enumerate() {
                let mut v = 0u32;
                for i in 0..per_word {
                    let kk = per_word * j + i;
                    let q = panel[(kk / group) * group * nr + c * group + kk % group] as i8 as i32;
                    v |= ((q + offset) as u32) << (bits as usize * i);
                }
                *word = v;
            }
            for b in 0..blocks {
                scales[n * blocks + b] = self.scales[(p * blocks + b) * nr + c];
            }
        }
        (words, scales)
    }
}

/// `−128 · Σ w` over each block of each column, laid out as
/// [`panel_scales`] (padding columns 0).
fn block_sums(w: &QuantWeights, nr: usize) -> Vec<i32> {
    let (blocks, panels) = (w.blocks(), w.n.div_ceil(nr));
    let mut sums = vec![0i32; panels * blocks * nr];
    let mut row = vec![0u8; w.k];
    for n in 0..w.n {
        row_fields(w, n, &mut row);
        let (p, c) = (n / nr, n % nr);
        for (b, fields) in row.chunks_exact(w.block).enumerate() {
            let s: i32 = fields.iter().map(|&u| u as i32 - 128).sum();
            sums[(p * blocks + b) * nr + c] = -128 * s;
        }
    }
    sums
}
