//! The few layers the encoders are built from, as plain structs of tensors
//! with a `load` from checkpoint weights and a `forward`.

use burn::tensor::{Bool, Device, Int, Tensor, activation, module};

use crate::config::Activation;
use crate::error::Result;
use crate::load::Weights;

/// `nn.Linear`: `y = x W + b`, W stored `[in, out]`.
pub struct Linear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl Linear {
    /// Load `{prefix}.weight` (`[out, in]` in PyTorch) and `{prefix}.bias`.
    pub fn load(w: &Weights, prefix: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Self> {
        let weight = w.linear_weight(&format!("{prefix}.weight"), d_in, d_out, device)?;
        let bias_name = format!("{prefix}.bias");
        let bias = if w.contains(&bias_name) {
            Some(w.tensor1(&bias_name, d_out, device)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        module::linear(x, self.weight.clone(), self.bias.clone())
    }
}

/// `nn.LayerNorm` over the last dimension.
pub struct LayerNorm {
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    /// Load `{prefix}.weight`/`.bias`, or the `gamma`/`beta` names of old
    /// TF-converted BERT checkpoints (transformers renames those too).
    pub fn load(w: &Weights, prefix: &str, dim: usize, eps: f64, device: &Device) -> Result<Self> {
        let (g, b) = if w.contains(&format!("{prefix}.gamma")) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Self {
            gamma: w.tensor1(&format!("{prefix}.{g}"), dim, device)?,
            beta: w.tensor1(&format!("{prefix}.{b}"), dim, device)?,
            eps,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        module::layer_norm(x, self.gamma.clone(), Some(self.beta.clone()), self.eps)
    }
}

/// `nn.Embedding`: a row lookup.
pub struct Embedding {
    weight: Tensor<2>,
}

impl Embedding {
    pub fn load(w: &Weights, name: &str, rows: usize, dim: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            weight: w.tensor2(name, rows, dim, device)?,
        })
    }

    /// `[batch, seq]` ids → `[batch, seq, dim]`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        module::embedding(self.weight.clone(), ids)
    }
}

/// Apply a feed-forward activation.
pub fn activate<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match act {
        Activation::Gelu => activation::gelu(x),
        Activation::GeluTanh => activation::gelu_approximate(x),
        Activation::Relu => activation::relu(x),
        Activation::Silu => activation::silu(x),
    }
}

/// Multi-head self-attention over `[batch, seq, hidden]` with separate
/// q/k/v projections, masking padded keys (`key_padding`: true = padding).
pub fn self_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    key_padding: Option<&Tensor<4, Bool>>,
) -> Tensor<3> {
    let [b, t, h] = q.dims();
    let split = |x: Tensor<3>| x.reshape([b, t, heads, h / heads]).swap_dims(1, 2);
    let mask = key_padding.map(|m| m.clone().expand([b, heads, t, t]));
    let ctx = module::attention(split(q), split(k), split(v), mask, None, Default::default());
    ctx.swap_dims(1, 2).reshape([b, t, h])
}
