//! Packed tokens (TEI's "unpadded" batches): a batch's sequences one after
//! another as `[tokens, hidden]`, no padding. Linear layers, norms and GELU —
//! nearly all of an encoder's work — then skip padding entirely; attention
//! runs per sequence (`kernels::packed_attention`). Built straight from the
//! sequence lengths (cumulative offsets), never from a padded batch. With
//! batches sorted by length, padding was ~20% of the tokens of the speed
//! benchmark's batches.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::kernels::AttentionPlan;

/// Packed rows are padded to a multiple of this with filler rows, so the
/// CPU's linear layers can always cut them into equal slabs (see
/// `linear_slabs`; filler rows cost under 1% at batch 32).
const PACK_MULTIPLE: usize = 8;

/// Where each sequence of a batch lies in the packed rows.
pub(crate) struct Packing {
    /// `(first packed row, length)` of every sequence, in batch order.
    seqs: Vec<(usize, usize)>,
    /// Packed rows: the tokens, then fillers up to a multiple of `PACK_MULTIPLE`.
    rows: usize,
}

impl Packing {
    /// From each sequence's token count.
    pub(crate) fn new(lens: &[usize]) -> Self {
        let mut seqs = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &len in lens {
            seqs.push((start, len));
            start += len;
        }
        let rows = start.max(1).div_ceil(PACK_MULTIPLE) * PACK_MULTIPLE;
        Self { seqs, rows }
    }

    /// Packed rows (tokens plus fillers).
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Real tokens (the packed rows before the fillers).
    pub(crate) fn tokens(&self) -> usize {
        self.seqs.last().map_or(0, |&(s, l)| s + l)
    }

    /// Per-token host values (the sequences' values one after another) with
    /// the filler rows appended: copies of the first token's value, so a
    /// filler is a valid id or position that attention never reads.
    pub(crate) fn fill<T: Copy + Default>(&self, mut tokens: Vec<T>) -> Vec<T> {
        debug_assert_eq!(tokens.len(), self.tokens());
        let filler = tokens.first().copied().unwrap_or_default();
        tokens.resize(self.rows, filler);
        tokens
    }

    /// The packed row of each sequence's first token (`<s>` / `[CLS]`).
    pub(crate) fn first_tokens(&self, device: &Device) -> Tensor<1, Int> {
        let v: Vec<i64> = self.seqs.iter().map(|&(s, _)| s.min(self.rows - 1) as i64).collect();
        Tensor::from_data(TensorData::new(v, [self.seqs.len()]), device)
    }

    /// The packed row of each sequence's last token.
    pub(crate) fn last_tokens(&self, device: &Device) -> Tensor<1, Int> {
        let v: Vec<i64> = self.seqs.iter().map(|&(s, l)| (s + l.max(1) - 1).min(self.rows - 1) as i64).collect();
        Tensor::from_data(TensorData::new(v, [self.seqs.len()]), device)
    }

    /// How attention runs for this batch with `heads` heads (once per
    /// batch, for every layer's `packed_attention`).
    /// `window`: each token sees only the tokens at most that far away
    /// (ModernBERT's local layers).
    pub(crate) fn attention(&self, heads: usize, window: Option<usize>, device: &Device) -> AttentionPlan {
        AttentionPlan::new(&self.seqs, self.rows, heads, window, device)
    }

    /// `[rows, hidden]` → `[sequences, hidden]`: the mean of each sequence's
    /// tokens (sentence-transformers' mean pooling; an empty sequence gives
    /// zeros).
    pub(crate) fn mean(&self, x: Tensor<2>) -> Tensor<2> {
        let device = x.device();
        let b = self.seqs.len();
        let mut sum = vec![0f32; b * self.rows];
        for (r, &(start, len)) in self.seqs.iter().enumerate() {
            sum[r * self.rows + start..r * self.rows + start + len].fill(1.0);
        }
        let counts: Vec<f32> = self.seqs.iter().map(|&(_, len)| (len as f32).max(1e-9)).collect();
        let sum = Tensor::<2>::from_data(TensorData::new(sum, [b, self.rows]), &device);
        let counts = Tensor::<2>::from_data(TensorData::new(counts, [b, 1]), &device);
        sum.matmul(x) / counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::packed_attention;

    /// Packing lays sequences out by their lengths, picks first tokens and
    /// means, and attention on packed tokens is the same on the host path
    /// and through the padded layout — with padding, and for a single row
    /// whose fillers must not join its sequence.
    #[test]
    fn packed_attention_paths_agree() {
        let dev = Device::flex();
        let (heads, d) = (3usize, 4usize);
        for lens in [vec![6usize], vec![5, 2, 4]] {
            let p = Packing::new(&lens);
            let tokens: usize = lens.iter().sum();
            assert_eq!((p.tokens(), p.len()), (tokens, tokens.div_ceil(PACK_MULTIPLE) * PACK_MULTIPLE));
            let ids = p.fill((10..10 + tokens as i64).collect());
            assert_eq!(ids.len(), p.len());
            assert!(ids[tokens..].iter().all(|&f| f == 10), "fillers copy the first token");
            let starts: Vec<i64> = lens
                .iter()
                .scan(0i64, |s, &l| {
                    let at = *s;
                    *s += l as i64;
                    Some(at)
                })
                .collect();
            assert_eq!(p.first_tokens(&dev).into_data().convert::<i64>().try_to_vec::<i64>().unwrap(), starts);
            // Mean pooling: each sequence's mean of its own rows.
            let x = Tensor::<1, Int>::from_data(TensorData::new(ids.clone(), [p.len()]), &dev).float().reshape([p.len(), 1]);
            let means = p.mean(x).into_data().try_to_vec::<f32>().unwrap();
            for ((&s, &l), m) in starts.iter().zip(&lens).zip(&means) {
                let want = (0..l).map(|c| (10 + s as usize + c) as f32).sum::<f32>() / l as f32;
                assert!((m - want).abs() < 1e-5, "mean {m} vs {want}");
            }
            let n = p.len();
            let vals: Vec<f32> = (0..n * 3 * heads * d).map(|i| ((i * 7919) % 113) as f32 / 40.0 - 1.4).collect();
            let qkv = Tensor::<2>::from_data(TensorData::new(vals, [n, 3 * heads * d]), &dev);
            for window in [None, Some(1), Some(3)] {
                let host = packed_attention(qkv.clone(), &p.attention(heads, window, &dev)).into_data().try_to_vec::<f32>().unwrap();
                let gathered = packed_attention(qkv.clone(), &AttentionPlan::gathered(&p.seqs, p.rows, heads, window, &dev))
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let err = host[..tokens * heads * d]
                    .iter()
                    .zip(&gathered[..tokens * heads * d])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < 1e-5, "lens {lens:?} window {window:?}: host vs gathered attention differ by {err}");
            }
        }
    }
}
