//! Weight panels: the stored q8/q4 fields of `cols` output columns
//! repacked as each kernel's layout wants them, and their block scales
//! beside them.

use super::QuantWeights;

/// `f(i, chunk)` over `v` in chunks of `size`, in parallel where there
/// are threads (panel packing).
pub(super) fn for_each_panel<T: Send>(v: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        v.par_chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(not(feature = "rayon"))]
    v.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
}

/// Row `n`'s stored unsigned fields as bytes (q8: `q + 128`; q4: `q + 8`).
pub(super) fn row_fields(w: &QuantWeights, n: usize, out: &mut [u8]) {
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

/// Weights repacked for the kernels: panels of `cols` output columns,
/// each `[k/group][cols][group]` (`group` consecutive k of a column
/// together: 2 as `vpmaddwd` pairs them, 4 as `sdot`/`vpdpbusd` sum them, 8
/// as `smmla` takes them), as i8 bytes.
pub(super) fn pack_i8(w: &QuantWeights, cols: usize, group: usize) -> Vec<u8> {
    let (k, panels) = (w.k, w.n.div_ceil(cols));
    let mut packed = vec![0u8; panels * k * cols];
    let offset = 1i16 << (w.bits - 1);
    for_each_panel(&mut packed, k * cols, |p, panel| {
        let mut row = vec![0u8; k];
        for c in 0..cols.min(w.n - p * cols) {
            row_fields(w, p * cols + c, &mut row);
            // Group `g` of k starts at `g·group·cols` (no division per value:
            // q4 layers are repacked per call).
            for (g, us) in row.chunks_exact(group).enumerate() {
                let dst = &mut panel[g * group * cols + c * group..][..group];
                for (d, &u) in dst.iter_mut().zip(us) {
                    *d = (u as i16 - offset) as i8 as u8;
                }
            }
        }
    });
    packed
}

/// Panel scales `[blocks][cols]` (0 for padding columns) for every panel.
pub(super) fn panel_scales(w: &QuantWeights, cols: usize) -> Vec<f32> {
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
