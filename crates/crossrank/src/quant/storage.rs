//! Quantized and f16 weight matrices as they live on a device.

use burn::tensor::quantization::{QuantScheme, QuantStore, QuantValue, ScaleDtype};
use std::sync::Arc;

use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};

use super::HostQuant;
use crate::kernels;

impl HostQuant {
    /// Upload to `device` as packed words and scales (the layout gathers
    /// and the CPU's integer kernels read).
    pub(crate) fn to_device(&self, device: &Device) -> QuantMatrix {
        let words = self.cols * self.bits as usize / 32;
        let packed: Vec<i32> = self.packed.iter().map(|&w| w as i32).collect();
        let scales: Vec<f32> = self.scales.iter().map(|s| s.to_f32()).collect();
        QuantMatrix {
            store: Store::Packed {
                packed: Tensor::from_data(TensorData::new(packed, [self.rows, words]), (device, DType::I32)),
                scales: Tensor::from_data(TensorData::new(scales, [self.rows, self.cols / self.block]), device),
            },
            rows: self.rows,
            bits: self.bits,
            block: self.block,
            cols: self.cols,
            act8: false,
        }
    }

    /// Upload a matrix that is only multiplied (a linear layer's weight),
    /// its products to take 8-bit activations if `act8` (the `int8` dtype):
    /// a q8 one as the panels of the host's integer kernel where the
    /// kernels say it has one (`kernels::host_panels`: built once here, in
    /// place of the words); as a Burn block-quantized tensor where the
    /// kernels say the device multiplies those in place
    /// (`kernels::fused_quant_matmul`: `int8` then runs as `q8` does); else
    /// as [`HostQuant::to_device`] (q4: the host kernels pack per call).
    ///
    /// q8 only: Burn 0.22's quantized matmul views q4 (eight values per
    /// u32) through vectors of at least eight floats, and wgpu's are four
    /// wide (cubecl-std `quant_vector_size_q` asserts); storing q4 as Q8S
    /// would double its memory, the reason q4 is picked. So q4 stays packed
    /// and is dequantized per pass on GPUs.
    pub(crate) fn to_device_for_matmul(&self, device: &Device, act8: bool) -> QuantMatrix {
        let act8 = act8 && self.bits == 8;
        if self.bits == 8 {
            let scales: Vec<f32> = self.scales.iter().map(|s| s.to_f32()).collect();
            if let Some(p) = kernels::host_panels(&self.packed, &scales, self.rows, self.cols, self.block, act8, device) {
                let (rows, bits, block, cols) = (self.rows, self.bits, self.block, self.cols);
                return QuantMatrix { store: Store::Panels(Arc::new(p)), rows, bits, block, cols, act8 };
            }
        }
        if !kernels::fused_quant_matmul(device) || self.bits != 8 || !matches!(self.block, 16 | 32) {
            return QuantMatrix { act8, ..self.to_device(device) };
        }
        let values: Vec<i8> = self.signed().collect();
        let value = QuantValue::Q8S;
        // One scale per block along a row, f32 (exact: the scales are f16
        // values; f16 scale storage would need `shader-f16`, which
        // lavapipe and SwiftShader lack).
        let scheme = QuantScheme::default()
            .with_value(value)
            .with_store(QuantStore::PackedU32(0))
            .per_block([1u8, self.block as u8], ScaleDtype::F32);
        let scales: Vec<f32> = self.scales.iter().map(|s| s.to_f32()).collect();
        let data = TensorData::quantized(values, [self.rows, self.cols], scheme, &scales, None);
        QuantMatrix {
            store: Store::Fused(Tensor::from_data(data, device)),
            rows: self.rows,
            bits: self.bits,
            block: self.block,
            cols: self.cols,
            act8,
        }
    }

    /// The same values as 8 bits (exact: the scales are kept).
    pub(crate) fn widened(self) -> HostQuant {
        if self.bits == 8 {
            return self;
        }
        let levels: Vec<i8> = self.signed().collect();
        HostQuant::from_signed(&levels, self.scales, self.rows, self.cols, 8, self.block)
    }

    /// The signed values, row-major (q8: −127..127, q4: −8..7).
    fn signed(&self) -> impl Iterator<Item = i8> + '_ {
        let per_word = 32 / self.bits as usize;
        let (mask, offset) = ((1u32 << self.bits) - 1, 1i32 << (self.bits - 1));
        (0..self.rows * self.cols)
            .map(move |i| (((self.packed[i / per_word] >> ((i % per_word) as u32 * self.bits)) & mask) as i32 - offset) as i8)
    }
}

/// A quantized `[rows, cols]` matrix on a device.
#[derive(Debug, Clone)]
pub(crate) struct QuantMatrix {
    store: Store,
    rows: usize,
    bits: u32,
    block: usize,
    cols: usize,
    /// 8-bit activations (`int8`) where the kernels have integer GEMMs.
    act8: bool,
}

#[derive(Debug, Clone)]
enum Store {
    /// Packed words `[rows, cols·bits/32]` and f32 scales `[rows, cols/block]`.
    Packed { packed: Tensor<2, Int>, scales: Tensor<2> },
    /// A Burn block-quantized tensor `[rows, cols]` (see
    /// [`HostQuant::to_device_for_matmul`]).
    Fused(Tensor<2>),
    /// The host integer kernel's panels (q8 on the CPU).
    Panels(Arc<kernels::Panels>),
}

impl QuantMatrix {
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn device(&self) -> Device {
        match &self.store {
            Store::Packed { packed, .. } => packed.device(),
            Store::Fused(t) => t.device(),
            Store::Panels(_) => kernels::panels_device(),
        }
    }

    /// Whether products take 8-bit activations (`int8`).
    pub(crate) fn act8(&self) -> bool {
        self.act8
    }

    /// The panels, where the matrix is stored as them.
    pub(crate) fn panels(&self) -> Option<&kernels::Panels> {
        match &self.store {
            Store::Panels(p) => Some(p),
            _ => None,
        }
    }

    /// Panels back as the stored words and scales (load-time paths only:
    /// concatenation, and dequantizing where a layer skips the kernels).
    fn from_panels(p: &kernels::Panels) -> HostQuant {
        let (packed, scales) = p.stored();
        let scales = scales.into_iter().map(half::f16::from_f32).collect();
        HostQuant { rows: p.n(), cols: p.k(), bits: 8, block: p.block(), packed, scales }
    }

    /// The packed words `[rows, cols·bits/32]`, the scales `[rows, cols/block]`,
    /// bits, block and columns (for the integer kernels), where the matrix
    /// is stored packed.
    pub(crate) fn parts(&self) -> Option<(&Tensor<2, Int>, &Tensor<2>, u32, usize, usize)> {
        match &self.store {
            Store::Packed { packed, scales } => Some((packed, scales, self.bits, self.block, self.cols)),
            Store::Fused(_) | Store::Panels(_) => None,
        }
    }

    /// The block-quantized tensor `[rows, cols]` Burn's matmul reads in
    /// place, where the matrix is stored so.
    pub(crate) fn fused(&self) -> Option<&Tensor<2>> {
        match &self.store {
            Store::Fused(t) => Some(t),
            Store::Packed { .. } | Store::Panels(_) => None,
        }
    }

    /// The rows of `parts` one after another (one layer's q, k and v), or
    /// `None` if they are not quantized alike or not stored packed or as
    /// panels (Burn concatenates quantized tensors by re-quantizing them:
    /// not exact). Parts of different widths are widened before upload
    /// (`Linear::load_concat`): nothing here reads a device buffer back.
    pub(crate) fn cat_rows(parts: Vec<QuantMatrix>) -> Option<QuantMatrix> {
        let first = parts.first()?.clone();
        if parts.iter().any(|p| (p.bits, p.block, p.cols) != (first.bits, first.block, first.cols)) {
            return None;
        }
        // Panels (q8 on the CPU): back to words on the host, rows
        // concatenated, panels built again (load time).
        if matches!(first.store, Store::Panels(_)) {
            let act8 = parts.iter().any(|p| p.act8);
            let hosts: Vec<HostQuant> = parts.iter().map(|p| p.panels().map(Self::from_panels)).collect::<Option<_>>()?;
            let h = HostQuant {
                rows: hosts.iter().map(|h| h.rows).sum(),
                packed: hosts.iter().flat_map(|h| h.packed.iter().copied()).collect(),
                scales: hosts.iter().flat_map(|h| h.scales.iter().copied()).collect(),
                ..hosts[0].clone()
            };
            return Some(h.to_device_for_matmul(&first.device(), act8));
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        let (packed, scales): (Vec<_>, Vec<_>) = parts
            .into_iter()
            .map(|p| match p.store {
                Store::Packed { packed, scales } => Some((packed, scales)),
                Store::Fused(_) | Store::Panels(_) => None,
            })
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .unzip();
        Some(QuantMatrix { store: Store::Packed { packed: Tensor::cat(packed, 0), scales: Tensor::cat(scales, 0) }, rows, ..first })
    }

    /// The whole matrix in f32, `[rows, cols]`. On the CPU in one host pass
    /// (see `kernels::dequantize`) instead of the eight tensor ops of `unpack`.
    pub(crate) fn dequantize(&self) -> Tensor<2> {
        match &self.store {
            Store::Packed { packed, scales } => kernels::dequantize(packed.clone(), scales.clone(), self.bits, self.block, self.cols),
            Store::Fused(t) => t.clone().dequantize(),
            Store::Panels(p) => {
                let h = Self::from_panels(p);
                Tensor::from_data(TensorData::new(h.dequantize(), [h.rows, h.cols]), &kernels::panels_device())
            }
        }
    }

    /// Rows `ids` (device indices) in f32, `[ids.len(), cols]`: a gather on
    /// the packed words, then unpacking of those rows only.
    pub(crate) fn select_rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        match &self.store {
            Store::Packed { packed, scales } => {
                let packed = packed.clone().select(0, ids.clone());
                let scales = scales.clone().select(0, ids);
                kernels::unpack_rows(packed, scales, self.bits, self.block, self.cols)
            }
            // Not a gather table's layout (embeddings upload packed); correct, not fast.
            Store::Fused(_) | Store::Panels(_) => self.dequantize().select(0, ids),
        }
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
            let (packed, scales, ..) = m.parts().unwrap();
            let ops = kernels::unpack_rows(packed.clone(), scales.clone(), m.bits, m.block, m.cols);
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

    /// The fused store on a GPU (lavapipe here): Burn's block-quantized
    /// tensor holds exactly the checkpoint's values, and its matmul (the
    /// blocks read inside the kernel) equals the f32 product of the
    /// dequantized weight — q8, blocks of 16 and 32, rows that are not a
    /// tile multiple; q4 stays packed (see `to_device_for_matmul`).
    #[cfg(feature = "wgpu")]
    #[test]
    fn fused_matmul_on_wgpu_equals_the_dequantized_product() {
        let dev = match crate::device::select(crate::device::DeviceChoice::Wgpu) {
            Ok(d) => d.device,
            Err(e) if std::env::var("CROSSRANK_REQUIRE_WGPU").is_ok_and(|v| v == "1") => panic!("no wgpu: {e}"),
            Err(e) => return eprintln!("SKIPPED: no wgpu adapter ({e})"),
        };
        if !kernels::fused_quant_matmul(&dev) {
            return eprintln!("SKIPPED: CROSSRANK_GPU_QUANT=dequant");
        }
        let (m, n, k) = (37, 40, 96);
        let x = sample(m * k);
        let q4 = HostQuant::quantize(&sample(n * k), n, k, 4, 32).to_device_for_matmul(&dev, false);
        assert!(q4.fused().is_none() && q4.parts().is_some(), "q4 stays packed");
        for (bits, block) in [(8, 32), (8, 16)] {
            let q = HostQuant::quantize(&sample(n * k + 7)[7..], n, k, bits, block);
            let w = q.dequantize();
            let fm = q.to_device_for_matmul(&dev, false);
            assert!(fm.fused().is_some() && fm.parts().is_none());
            let deq: Vec<f32> = fm.dequantize().into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            assert_eq!(deq, w, "q{bits}/{block}: stored values");
            let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [m, k]), &dev);
            let got: Vec<f32> =
                xt.matmul(fm.fused().unwrap().clone().transpose()).into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            let mut err = 0f32;
            for r in 0..m {
                for c in 0..n {
                    let want: f32 = (0..k).map(|j| x[r * k + j] * w[c * k + j]).sum();
                    err = err.max((got[r * n + c] - want).abs());
                }
            }
            eprintln!("q{bits}/{block}: fused matmul vs dequantized f32 product: max abs diff {err:.2e}");
            assert!(err < 1e-4, "q{bits}/{block}: {err}");
        }
    }
}
