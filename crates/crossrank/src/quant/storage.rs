//! Quantized and f16 weight matrices as they live on a device.

use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};

use super::HostQuant;
use crate::kernels;

impl HostQuant {
    /// Upload to `device`.
    pub(crate) fn to_device(&self, device: &Device) -> QuantMatrix {
        let words = self.cols * self.bits as usize / 32;
        let packed: Vec<i32> = self.packed.iter().map(|&w| w as i32).collect();
        let scales: Vec<f32> = self.scales.iter().map(|s| s.to_f32()).collect();
        QuantMatrix {
            packed: Tensor::from_data(TensorData::new(packed, [self.rows, words]), (device, DType::I32)),
            scales: Tensor::from_data(TensorData::new(scales, [self.rows, self.cols / self.block]), device),
            bits: self.bits,
            block: self.block,
            cols: self.cols,
        }
    }
}

/// A quantized `[rows, cols]` matrix on a device.
#[derive(Debug, Clone)]
pub(crate) struct QuantMatrix {
    packed: Tensor<2, Int>,
    scales: Tensor<2>,
    bits: u32,
    block: usize,
    cols: usize,
}

impl QuantMatrix {
    pub(crate) fn rows(&self) -> usize {
        self.packed.dims()[0]
    }

    pub(crate) fn device(&self) -> Device {
        self.packed.device()
    }

    /// The packed words `[rows, cols·bits/32]`, the scales `[rows, cols/block]`,
    /// bits, block and columns (for the integer kernels).
    pub(crate) fn parts(&self) -> (&Tensor<2, Int>, &Tensor<2>, u32, usize, usize) {
        (&self.packed, &self.scales, self.bits, self.block, self.cols)
    }

    /// The rows of `parts` one after another (one layer's q, k and v), or
    /// `None` if they are not quantized alike.
    pub(crate) fn cat_rows(parts: Vec<QuantMatrix>) -> Option<QuantMatrix> {
        let first = parts.first()?.clone();
        if parts.iter().any(|p| (p.bits, p.block, p.cols) != (first.bits, first.block, first.cols)) {
            return None;
        }
        let (packed, scales) = parts.into_iter().map(|p| (p.packed, p.scales)).unzip();
        Some(QuantMatrix { packed: Tensor::cat(packed, 0), scales: Tensor::cat(scales, 0), ..first })
    }

    /// The whole matrix in f32, `[rows, cols]`. On the CPU in one host pass
    /// (see `kernels::dequantize`) instead of the eight tensor ops of `unpack`.
    pub(crate) fn dequantize(&self) -> Tensor<2> {
        kernels::dequantize(self.packed.clone(), self.scales.clone(), self.bits, self.block, self.cols)
    }

    /// Rows `ids` (device indices) in f32, `[ids.len(), cols]`: a gather on
    /// the packed words, then unpacking of those rows only.
    pub(crate) fn select_rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        let packed = self.packed.clone().select(0, ids.clone());
        let scales = self.scales.clone().select(0, ids);
        kernels::unpack_rows(packed, scales, self.bits, self.block, self.cols)
    }
}

/// An f16 `[rows, cols]` matrix on a device: a native f16 tensor where the
/// device has the type (the CPU backend, wgpu / WebGPU with shader-f16),
/// else pairs of f16 bit patterns packed into `i32` words and widened
/// exactly with integer ops — 2 bytes per weight either way.
#[derive(Debug, Clone)]
pub(crate) enum HalfMatrix {
    Native(Tensor<2>),
    Packed { words: Tensor<2, Int>, cols: usize },
}

impl HalfMatrix {
    /// Upload row-major f16 values (`cols` even).
    pub(crate) fn upload(values: Vec<half::f16>, rows: usize, cols: usize, device: &Device) -> Self {
        debug_assert!(cols % 2 == 0 && values.len() == rows * cols);
        if kernels::native_f16(device) {
            return Self::Native(Tensor::from_data(TensorData::new(values, [rows, cols]), (device, DType::F16)));
        }
        Self::packed(values, rows, cols, device)
    }

    /// Upload as packed words whatever the device supports.
    pub(crate) fn packed(values: Vec<half::f16>, rows: usize, cols: usize, device: &Device) -> Self {
        let words: Vec<i32> = values.chunks_exact(2).map(|p| (p[0].to_bits() as u32 | (p[1].to_bits() as u32) << 16) as i32).collect();
        Self::Packed { words: Tensor::from_data(TensorData::new(words, [rows, cols / 2]), (device, DType::I32)), cols }
    }

    pub(crate) fn rows(&self) -> usize {
        match self {
            Self::Native(t) => t.dims()[0],
            Self::Packed { words, .. } => words.dims()[0],
        }
    }

    pub(crate) fn device(&self) -> Device {
        match self {
            Self::Native(t) => t.device(),
            Self::Packed { words, .. } => words.device(),
        }
    }

    /// The rows of `parts` one after another, or `None` if they are not
    /// stored alike.
    pub(crate) fn cat_rows(parts: Vec<HalfMatrix>) -> Option<HalfMatrix> {
        match parts.first()? {
            Self::Native(_) => {
                let t: Option<Vec<Tensor<2>>> = parts.into_iter().map(|p| p.native().cloned()).collect();
                Some(Self::Native(Tensor::cat(t?, 0)))
            }
            &Self::Packed { cols, .. } => {
                let w: Option<Vec<Tensor<2, Int>>> = parts
                    .into_iter()
                    .map(|p| match p {
                        Self::Packed { words, cols: c } if c == cols => Some(words),
                        _ => None,
                    })
                    .collect();
                Some(Self::Packed { words: Tensor::cat(w?, 0), cols })
            }
        }
    }

    /// The f16 tensor, where the device holds one.
    pub(crate) fn native(&self) -> Option<&Tensor<2>> {
        match self {
            Self::Native(t) => Some(t),
            Self::Packed { .. } => None,
        }
    }

    /// The whole matrix widened to f32.
    pub(crate) fn to_f32(&self) -> Tensor<2> {
        match self {
            Self::Native(t) => t.clone().cast(FloatDType::F32),
            Self::Packed { words, cols } => kernels::widen_f16(words.clone(), *cols),
        }
    }

    /// Rows `ids` widened to f32, `[ids.len(), cols]`.
    pub(crate) fn select_rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        match self {
            Self::Native(t) => t.clone().select(0, ids).cast(FloatDType::F32),
            Self::Packed { words, cols } => kernels::widen_f16(words.clone().select(0, ids), *cols),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QUANT_BLOCK;
    use crate::quant::tests::sample;

    #[test]
    fn device_unpacking_matches_the_host() {
        let dev = Device::flex();
        let (rows, cols) = (5, 96);
        let v = sample(rows * cols);
        for bits in [8, 4] {
            let q = HostQuant::quantize(&v, rows, cols, bits, QUANT_BLOCK);
            let want = q.dequantize();
            let m = q.to_device(&dev);
            let got: Vec<f32> = m.dequantize().into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            assert_eq!(got, want, "bits {bits}");
            // The tensor-op unpacking other devices run gives the same values.
            let ops = kernels::unpack_rows(m.packed.clone(), m.scales.clone(), m.bits, m.block, m.cols);
            assert_eq!(ops.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(), want, "bits {bits} tensor ops");
            let ids = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 0, 3], [3]), &dev);
            let rows_got: Vec<f32> = m.select_rows(ids).into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            let mut rows_want = want[3 * cols..4 * cols].to_vec();
            rows_want.extend_from_slice(&want[..cols]);
            rows_want.extend_from_slice(&want[3 * cols..4 * cols]);
            assert_eq!(rows_got, rows_want, "bits {bits} gather");
        }
    }

    #[test]
    fn packed_f16_widens_every_finite_value_exactly() {
        let dev = Device::flex();
        let values: Vec<half::f16> = (0..=u16::MAX).map(half::f16::from_bits).filter(|h| h.is_finite()).collect();
        let n = values.len() / 2 * 2;
        let values = values[..n].to_vec();
        let want: Vec<f32> = values.iter().map(|h| h.to_f32()).collect();
        let m = HalfMatrix::packed(values.clone(), n / 64, 64, &dev);
        assert!(m.native().is_none());
        let got = m.to_f32().into_data().try_to_vec::<f32>().unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "widened bit patterns");
        let ids = Tensor::<1, Int>::from_data(TensorData::new(vec![5i64, 0], [2]), &dev);
        let rows = m.select_rows(ids.clone()).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(rows[..64], want[5 * 64..6 * 64]);
        assert_eq!(rows[64..], want[..64]);
        // The native f16 tensor gives the same values.
        let native = HalfMatrix::upload(values, n / 64, 64, &dev);
        assert!(native.native().is_some());
        assert_eq!(bits(&native.to_f32().into_data().try_to_vec::<f32>().unwrap()), bits(&want));
        assert_eq!(native.select_rows(ids).into_data().try_to_vec::<f32>().unwrap(), rows);
    }
}
