//! `nn.Linear` over f32, quantized or f16 weights.

use burn::tensor::{Device, FloatDType, Tensor, module};

use crate::error::Result;
use crate::kernels;
use crate::quant::{HalfMatrix, QuantMatrix};
use crate::weights::{Matrix, Weights};

/// Row slabs a linear layer's input is cut into (see `Linear::forward`):
/// two per hardware thread (measured on 2 cores: 4 slabs 2.28 pairs/s,
/// 8 slabs 1.95, one per sequence 1.94, one flat GEMM 1.34 before AVX-512),
/// or 0 = as given where there is a single thread (wasm: one flat GEMM
/// measured no faster than one per sequence, 0.790 vs 0.857 pairs/s).
fn linear_slabs(rows: usize) -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 1 {
        return 0;
    }
    // The largest divisor of `rows` up to 2 per thread, at least 4 (the
    // backend only runs batch entries in parallel from 4 on).
    (4..=(2 * threads).max(4)).rev().find(|s| rows % s == 0).unwrap_or(0)
}

/// `nn.Linear`: `y = x W + b`.
pub(crate) struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor<1>>,
    /// Multiply in f16 (f16 weights on a GPU that has the type).
    half_compute: bool,
    /// Quantized weights: whether the input may be quantized to int8 too
    /// (`quant::int8_activations`), where the kernels have integer GEMMs.
    int8: bool,
    /// The weights multiplied (`PREFIX.weight`; one per concatenated
    /// part), for calibration (`nn::calibration`).
    names: Vec<String>,
}

enum LinearWeight {
    /// f32, transposed to `[in, out]` at load.
    Dense(Tensor<2>),
    /// Quantized `[out, in]` (PyTorch layout, blocks along `in`): integer
    /// GEMMs on the CPU, a fused dequantizing matmul where stored for one,
    /// else dequantized for each forward pass.
    Quant(QuantMatrix),
    /// Quantized parts stored for the fused matmul, which cannot be
    /// concatenated exactly (see `QuantMatrix::cat_rows`): one product
    /// each, outputs side by side.
    QuantParts(Vec<QuantMatrix>),
    /// f16 `[out, in]`: multiplied in f16 on a GPU, widened to f32 for
    /// each forward pass elsewhere.
    Half(HalfMatrix),
}

impl LinearWeight {
    fn device(&self) -> Device {
        match self {
            LinearWeight::Dense(t) => t.device(),
            LinearWeight::Quant(q) => q.device(),
            LinearWeight::QuantParts(q) => q[0].device(),
            LinearWeight::Half(h) => h.device(),
        }
    }

    fn quant(&self) -> Option<&QuantMatrix> {
        if let Self::Quant(q) = self { Some(q) } else { None }
    }

    fn half(&self) -> Option<&HalfMatrix> {
        if let Self::Half(h) = self { Some(h) } else { None }
    }
}

impl Linear {
    /// Load `{prefix}.weight` (`[out, in]` in PyTorch) and `{prefix}.bias`.
    pub(crate) fn load(w: &Weights, prefix: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Self> {
        Self::load_widened(w, prefix, d_in, d_out, 0, device)
    }

    /// Layers `prefixes` (each `[d_out, d_in]`) as one, outputs side by
    /// side ([`Linear::concat`]). Quantized parts of different widths (a
    /// calibrated q4 checkpoint's 4-bit query and key beside its 8-bit
    /// value) are all stored as 8 bits, widened on the host before upload:
    /// exact, and the rows then concatenate on any device without reading
    /// a device buffer back (which WebGPU cannot do synchronously).
    pub(crate) fn load_concat(w: &Weights, prefixes: &[String], d_in: usize, d_out: usize, device: &Device) -> Result<Self> {
        // The widest part's bits (parts already that wide are stored as they are).
        let min_bits = prefixes.iter().filter_map(|p| w.quant_plan(&format!("{p}.weight")).map(|(bits, _)| bits)).max().unwrap_or(0);
        let parts = prefixes.iter().map(|p| Self::load_widened(w, p, d_in, d_out, min_bits, device)).collect::<Result<_>>()?;
        Ok(Self::concat(parts))
    }

    /// [`Linear::load`], a quantized weight stored with at least `min_bits`.
    fn load_widened(w: &Weights, prefix: &str, d_in: usize, d_out: usize, min_bits: u32, device: &Device) -> Result<Self> {
        let name = format!("{prefix}.weight");
        let weight = if w.quant_plan(&name).is_some() || w.is_half(&name) {
            match w.matrix(&name, d_out, d_in, min_bits, device)? {
                Matrix::Quant(q) => LinearWeight::Quant(q),
                Matrix::Half(h) => LinearWeight::Half(h),
                Matrix::Dense(t) => LinearWeight::Dense(t.transpose()),
            }
        } else {
            LinearWeight::Dense(w.linear_weight(&name, d_in, d_out, device)?)
        };
        // f16 products where the device has the f16 type and the kernels
        // say f16 products pay there (see `kernels::half_products`).
        let half_compute = matches!(&weight, LinearWeight::Half(h) if h.native().is_some()) && kernels::half_products(device);
        let bias_name = format!("{prefix}.bias");
        let bias = if w.contains(&bias_name) { Some(w.tensor1(&bias_name, d_out, device)?) } else { None };
        Ok(Self { weight, bias, half_compute, int8: crate::quant::int8_activations(prefix), names: vec![name] })
    }

    /// [`Linear::load`] for a layer built with `nn.Linear(bias=bias)`: a
    /// missing bias is an error, a bias the layer does not have is ignored
    /// (transformers drops it as an unexpected key).
    pub(crate) fn load_with_bias(w: &Weights, prefix: &str, d_in: usize, d_out: usize, bias: bool, device: &Device) -> Result<Self> {
        if bias && !w.contains(&format!("{prefix}.bias")) {
            return Err(crate::error::Error::config("config.json", format!("the config gives {prefix} a bias but the weights have no {prefix}.bias")));
        }
        let mut l = Self::load(w, prefix, d_in, d_out, device)?;
        if !bias {
            l.bias = None;
        }
        Ok(l)
    }

    /// One layer computing `parts` side by side (outputs concatenated), e.g.
    /// q, k and v as one GEMM: one pass over the input instead of three,
    /// and a wider product. Parts stored alike stay so (quantized and f16
    /// rows concatenate); parts stored differently (an f16 checkpoint keeps
    /// a matrix with out-of-range values in f32) all become f32.
    pub(crate) fn concat(parts: Vec<Linear>) -> Linear {
        let outs: Vec<usize> = parts.iter().map(Linear::d_out).collect();
        let device = parts[0].weight.device();
        let bias = parts.iter().any(|p| p.bias.is_some()).then(|| {
            let b = parts.iter().zip(&outs).map(|(p, &o)| p.bias.clone().unwrap_or_else(|| Tensor::zeros([o], &device)));
            Tensor::cat(b.collect(), 0)
        });
        // `Some` only when every part is quantized / every part is f16.
        let quant: Option<Vec<QuantMatrix>> = parts.iter().map(|p| p.weight.quant().cloned()).collect();
        let half: Option<Vec<HalfMatrix>> = parts.iter().map(|p| p.weight.half().cloned()).collect();
        let fused = quant.as_ref().is_some_and(|q| q.iter().all(|m| m.fused().is_some()));
        let dense = || LinearWeight::Dense(Tensor::cat(parts.iter().map(|p| p.weight_f32()).collect(), 1));
        let weight = match (quant, half.and_then(HalfMatrix::cat_rows)) {
            (Some(q), _) if fused => LinearWeight::QuantParts(q),
            (Some(q), _) => QuantMatrix::cat_rows(q).map_or_else(dense, LinearWeight::Quant),
            (_, Some(h)) => LinearWeight::Half(h),
            _ => dense(),
        };
        let half_compute = matches!(weight, LinearWeight::Half(_)) && parts.iter().all(|p| p.half_compute);
        let int8 = parts.iter().all(|p| p.int8);
        let names = parts.into_iter().flat_map(|p| p.names).collect();
        Linear { weight, bias, half_compute, int8, names }
    }

    fn d_out(&self) -> usize {
        match &self.weight {
            LinearWeight::Dense(t) => t.dims()[1],
            LinearWeight::Quant(q) => q.rows(),
            LinearWeight::QuantParts(q) => q.iter().map(QuantMatrix::rows).sum(),
            LinearWeight::Half(h) => h.rows(),
        }
    }

    /// The weight in f32, `[in, out]`.
    fn weight_f32(&self) -> Tensor<2> {
        match &self.weight {
            LinearWeight::Dense(w) => w.clone(),
            LinearWeight::Quant(q) => q.dequantize().transpose(),
            LinearWeight::QuantParts(q) => Tensor::cat(q.iter().map(|m| m.dequantize()).collect(), 0).transpose(),
            LinearWeight::Half(h) => h.to_f32().transpose(),
        }
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        crate::nn::calibration::record(&self.names, &x);
        // Integer GEMM where the kernels have one (the CPU backend).
        let x = match &self.weight {
            LinearWeight::Quant(q) if self.int8 && q.panels().is_some() => {
                return kernels::panel_linear(x, q.panels().expect("checked"), self.bias.as_ref());
            }
            LinearWeight::Quant(q) if self.int8 && q.parts().is_some() => {
                match kernels::quant_linear(x, q.parts().expect("checked"), self.bias.as_ref(), q.act8()) {
                    Ok(y) => return y,
                    Err(x) => x,
                }
            }
            _ => x,
        };
        // Burn's quantized matmul, reading the blocks in place (a GPU).
        let fused: Vec<&Tensor<2>> = match &self.weight {
            LinearWeight::Quant(q) => q.fused().into_iter().collect(),
            LinearWeight::QuantParts(q) => q.iter().filter_map(QuantMatrix::fused).collect(),
            _ => vec![],
        };
        if !fused.is_empty() {
            return self.fused_product(x, &fused);
        }
        let weight = match &self.weight {
            LinearWeight::Half(h) if self.half_compute => match h.native() {
                Some(w) => w.clone().transpose(),
                None => h.to_f32().transpose(),
            },
            _ => self.weight_f32(),
        };
        // GEMM shape: the CPU backend runs a batched product as one
        // single-threaded GEMM per batch entry, in parallel. Per sequence
        // (the natural batch) each GEMM re-packs the whole weight for a few
        // hundred rows; one flat GEMM leaves threading to gemm, which
        // measured slower still. A few equal slabs of all tokens keep every
        // core busy and the weight reused.
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = match linear_slabs(rows) {
            0 => return self.product(x, weight),
            s => self.product(x.reshape([s, rows / s, d_in]), weight),
        };
        dims[D - 1] = y.dims()[2];
        y.reshape(dims)
    }

    /// `x Wᵀ + b` for block-quantized `[out, in]` parts (outputs side by
    /// side), as one rank-2 product per part: the rank the quantized
    /// matmul is tested at (`quant::storage` tests).
    fn fused_product<const D: usize>(&self, x: Tensor<D>, parts: &[&Tensor<2>]) -> Tensor<D> {
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let x2 = x.reshape([rows, d_in]);
        let ys: Vec<Tensor<2>> = parts.iter().map(|w| x2.clone().matmul((*w).clone().transpose())).collect();
        let y = if ys.len() == 1 { ys.into_iter().next().expect("one") } else { Tensor::cat(ys, 1) };
        let y = match &self.bias {
            Some(b) => y + b.clone().unsqueeze(),
            None => y,
        };
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
    }

    /// `x W + b`; in f16 with an f32 result (bias added in f32) when the
    /// layer computes in half precision.
    fn product<const K: usize>(&self, x: Tensor<K>, weight: Tensor<2>) -> Tensor<K> {
        if !self.half_compute {
            return module::linear(x, weight, self.bias.clone());
        }
        let y = module::linear(x.cast(FloatDType::F16), weight, None).cast(FloatDType::F32);
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze(),
            None => y,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// A fused projection gives the parts' outputs side by side, for every
    /// storage (and a mix of storages, which falls back to f32).
    #[test]
    fn concatenated_linears_equal_their_parts() {
        use crate::quant::HostQuant;
        let dev = Device::flex();
        let (d_in, d_out, n) = (64, 16, 5);
        let vals =
            |len: usize, seed: usize| -> Vec<f32> { (0..len).map(|i| (((i * 37 + seed * 101) % 97) as f32 - 48.0) / 64.0).collect() };
        // `[out, in]` row-major, as checkpoints store it.
        let make = |kind: usize, seed: usize| -> Linear {
            let w = vals(d_out * d_in, seed);
            let weight = match kind {
                0 => LinearWeight::Dense(Tensor::<2>::from_data(TensorData::new(w, [d_out, d_in]), &dev).transpose()),
                1 => LinearWeight::Quant(HostQuant::quantize(&w, d_out, d_in, 8, 32).to_device(&dev)),
                2 => LinearWeight::Half(HalfMatrix::upload(w.iter().map(|&x| half::f16::from_f32(x)).collect(), d_out, d_in, &dev)),
                _ => LinearWeight::Half(HalfMatrix::packed(w.iter().map(|&x| half::f16::from_f32(x)).collect(), d_out, d_in, &dev)),
            };
            let bias = (seed != 2).then(|| Tensor::<1>::from_data(TensorData::new(vals(d_out, seed + 7), [d_out]), &dev));
            Linear { weight, bias, half_compute: false, int8: true, names: vec![] }
        };
        let x = Tensor::<2>::from_data(TensorData::new(vals(n * d_in, 9), [n, d_in]), &dev);
        for kinds in [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3], [0, 1, 2], [2, 3, 2]] {
            let parts: Vec<Linear> = kinds.iter().enumerate().map(|(s, &k)| make(k, s + 1)).collect();
            let want: Vec<Tensor<2>> = parts.iter().map(|p| p.forward(x.clone())).collect();
            let want = Tensor::cat(want, 1).into_data().try_to_vec::<f32>().unwrap();
            let fused = Linear::concat(parts);
            assert_eq!(fused.d_out(), 3 * d_out);
            let same_kind = kinds.iter().all(|&k| k == kinds[0]);
            assert_eq!(matches!(fused.weight, LinearWeight::Dense(_)), !same_kind || kinds[0] == 0, "{kinds:?}");
            let got = fused.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // A mix with a quantized part fuses into f32: that part's
            // outputs lose the CPU integer kernels' 16-bit activation
            // rounding (measured 4.2e-5 here); alike parts fuse exactly.
            let tol = if !same_kind && kinds.contains(&1) { 1e-4 } else { 1e-5 };
            assert!(err < tol, "{kinds:?}: {err}");
        }
    }
}
