//! `nn.Embedding` over a table stored in row chunks.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::Result;
use crate::weights::{Matrix, Weights};

/// Largest buffer one embedding chunk may take. wgpu's default
/// `max_storage_buffer_binding_size` is 128 MiB (lavapipe refuses a 768 MB
/// buffer; browsers are stricter still), and XLM-R's 250002-row table is
/// 768 MB at hidden 768, so big tables are stored as row chunks.
pub(crate) const MAX_CHUNK_BYTES: usize = 128 << 20;

/// `nn.Embedding`: a row lookup, over a table split into row chunks that
/// each fit one device buffer.
pub(crate) struct Embedding {
    chunks: Vec<Matrix>,
    rows_per_chunk: usize,
}

impl Embedding {
    pub(crate) fn load(w: &Weights, name: &str, rows: usize, dim: usize, device: &Device) -> Result<Self> {
        // Device bytes per row: f32, f16, or packed words plus one f32 scale per block.
        let row_bytes = match w.quant_plan(name) {
            Some((bits, block)) => (dim * bits as usize / 32 + dim / block) * 4,
            None if w.is_half(name) => dim * 2,
            None => dim * 4,
        };
        // A live (trained) table stays whole: a gather from slices would
        // back-propagate one table-sized gradient per chunk.
        let rows_per_chunk = if w.is_live(name) { rows.max(1) } else { (MAX_CHUNK_BYTES / row_bytes.max(1)).clamp(1, rows.max(1)) };
        Self::load_chunked(w, name, rows, dim, rows_per_chunk, device)
    }

    /// `load` with an explicit chunk size. Each chunk is decoded and
    /// uploaded on its own: the host never holds the whole table in f32.
    pub(crate) fn load_chunked(w: &Weights, name: &str, rows: usize, dim: usize, rows_per_chunk: usize, device: &Device) -> Result<Self> {
        let chunks = (0..rows)
            .step_by(rows_per_chunk)
            .map(|start| {
                let n = rows_per_chunk.min(rows - start);
                w.matrix_rows(name, &[rows, dim], start, n, device)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { chunks, rows_per_chunk })
    }

    /// Host ids → `[ids.len(), dim]`.
    pub(crate) fn forward(&self, ids: &[i64], device: &Device) -> Tensor<2> {
        let int = |v: Vec<i64>, n: usize| Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device);
        let gather = |chunk: &Matrix, local: Tensor<1, Int>| match chunk {
            Matrix::Dense(t) => t.clone().select(0, local),
            // Only the rows looked up are unpacked / widened.
            Matrix::Quant(q) => q.select_rows(local),
            Matrix::Half(h) => h.select_rows(local),
        };
        if self.chunks.len() == 1 {
            let n = ids.len();
            return gather(&self.chunks[0], int(ids.to_vec(), n));
        }
        // Gather from each chunk the tokens it holds, then put the rows back
        // in token order with one more gather.
        let mut parts = Vec::new();
        let mut inverse = vec![0i64; ids.len()];
        let mut next = 0i64;
        for (c, chunk) in self.chunks.iter().enumerate() {
            let lo = (c * self.rows_per_chunk) as i64;
            let hi = lo + chunk.rows() as i64;
            let mut local = Vec::new();
            for (pos, &id) in ids.iter().enumerate() {
                if id >= lo && id < hi {
                    local.push(id - lo);
                    inverse[pos] = next;
                    next += 1;
                }
            }
            if !local.is_empty() {
                let n = local.len();
                parts.push(gather(chunk, int(local, n)));
            }
        }
        Tensor::cat(parts, 0).select(0, int(inverse, ids.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_embedding_equals_one_table() {
        let dev = Device::flex();
        let (rows, dim) = (10, 3);
        let v: Vec<f32> = (0..rows * dim).map(|x| x as f32 * 0.5 - 3.0).collect();
        // Stored f16 so the chunked path decodes row ranges, as for real tables.
        let bytes: Vec<u8> = v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![rows, dim], &bytes).unwrap();
        let file = safetensors::serialize(vec![("e".to_string(), view)], None).unwrap();
        let w = Weights::from_shards(vec![("m".into(), file)]).unwrap();
        let ids = [9i64, 0, 4, 4, 7, 1, 3, 9];
        let whole = Embedding::load(&w, "e", rows, dim, &dev).unwrap().forward(&ids, &dev);
        let chunked = Embedding::load_chunked(&w, "e", rows, dim, 3, &dev).unwrap();
        assert_eq!(chunked.chunks.len(), 4);
        let got = chunked.forward(&ids, &dev).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got, whole.into_data().try_to_vec::<f32>().unwrap());
        let want: Vec<f32> = ids.iter().flat_map(|&i| v[i as usize * dim..(i as usize + 1) * dim].to_vec()).collect();
        assert_eq!(got, want);
    }
}
