//! The reference every integer path is tested against (and the path of
//! `CROSSRANK_INT8=scalar`): plain loops over the stored format.

use super::{Acts, QuantWeights};

/// `[m, n]` outputs without bias: for each `(m, n)`, blocks in order,
/// `acc += (dot as f32 · s) · d` (see the module docs).
pub(crate) fn reference(a: &Acts, w: &QuantWeights) -> Vec<f32> {
    let (m, n, k, block) = (a.m, w.n, w.k, w.block);
    let blocks = w.blocks();
    let mut out = vec![0f32; m * n];
    // QuantWeights unpacked once: row-major signed values.
    let wq: Vec<i16> = (0..n * k).map(|i| w.q(i / k, i % k) as i16).collect();
    for (r, orow) in out.chunks_exact_mut(n).enumerate() {
        let xr = &a.q[r * k..(r + 1) * k];
        for (c, o) in orow.iter_mut().enumerate() {
            let wr = &wq[c * k..(c + 1) * k];
            let mut acc = 0f32;
            for b in 0..blocks {
                let span = b * block..(b + 1) * block;
                let dot: i32 = xr[span.clone()].iter().zip(&wr[span]).map(|(&x, &w)| x as i32 * w as i32).sum();
                acc += dot as f32 * w.scales[c * blocks + b] * a.d[r * blocks + b];
            }
            *o = acc;
        }
    }
    out
}
