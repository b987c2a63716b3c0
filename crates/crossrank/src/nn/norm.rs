//! LayerNorm (encoders) and RMSNorm (decoders).

use burn::tensor::{Device, Tensor, TensorData, module};

use crate::error::Result;
use crate::weights::Weights;

/// `nn.LayerNorm` over the last dimension.
pub(crate) struct LayerNorm {
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    eps: f64,
}

impl LayerNorm {
    /// Load `{prefix}.weight`/`.bias`, or the `gamma`/`beta` names of old
    /// TF-converted BERT checkpoints (transformers renames those too).
    pub(crate) fn load(w: &Weights, prefix: &str, dim: usize, eps: f64, device: &Device) -> Result<Self> {
        let (g, b) = if w.contains(&format!("{prefix}.gamma")) { ("gamma", "beta") } else { ("weight", "bias") };
        Ok(Self {
            gamma: w.tensor1(&format!("{prefix}.{g}"), dim, device)?,
            beta: Some(w.tensor1(&format!("{prefix}.{b}"), dim, device)?),
            eps,
        })
    }

    /// `nn.LayerNorm(bias=bias)`: `{prefix}.weight`, and `{prefix}.bias`
    /// only when `bias` (ModernBERT's `norm_bias`).
    pub(crate) fn load_with_bias(w: &Weights, prefix: &str, dim: usize, eps: f64, bias: bool, device: &Device) -> Result<Self> {
        let beta = if bias { Some(w.tensor1(&format!("{prefix}.bias"), dim, device)?) } else { None };
        Ok(Self { gamma: w.tensor1(&format!("{prefix}.weight"), dim, device)?, beta, eps })
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        module::layer_norm(x, self.gamma.clone(), self.beta.clone(), self.eps)
    }
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * w`.
/// Gemma's `(1 + w)` is folded into `w` at load time.
pub(crate) struct RmsNorm {
    weight: Tensor<1>,
    eps: f64,
}

impl RmsNorm {
    /// Load `{name}`; `offset` is added to every weight (1.0 for Gemma).
    pub(crate) fn load(w: &Weights, name: &str, dim: usize, eps: f64, offset: f32, device: &Device) -> Result<Self> {
        let mut v = w.f32(name, &[dim])?;
        v.iter_mut().for_each(|x| *x += offset);
        Ok(Self { weight: Tensor::from_data(TensorData::new(v, [dim]), device), eps })
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let var = x.clone().square().mean_dim(D - 1);
        x * var.add_scalar(self.eps).sqrt().recip() * self.weight.clone().unsqueeze()
    }
}
