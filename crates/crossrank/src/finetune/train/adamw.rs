//! The optimizer: torch's AdamW as transformers 4.57 runs it for
//! FlagEmbedding 1.4.2 — decoupled weight decay applied first, only on the
//! parameters transformers decays, gradients clipped to a global norm.

use burn::tensor::Tensor;

use super::args::TrainArgs;

/// A trained tensor: its value and Adam's moments (on the device, without
/// autodiff), its gradient summed over the micro-batches of a step.
pub(super) struct Param {
    pub(super) name: String,
    pub(super) shape: Vec<usize>,
    pub(super) value: Tensor<1>,
    pub(super) moments: Option<(Tensor<1>, Tensor<1>)>,
    pub(super) grad: Option<Tensor<1>>,
    pub(super) decay: bool,
}

impl Param {
    /// A fresh parameter (no moments, no gradient) under its checkpoint name.
    pub(super) fn new(name: String, shape: Vec<usize>, value: Tensor<1>) -> Self {
        Param { decay: decays(&name), name, shape, value, moments: None, grad: None }
    }

    pub(super) fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Whether transformers applies weight decay to a parameter:
/// `Trainer.get_decay_parameter_names` — not biases, not LayerNorm /
/// RMSNorm weights (by module type, which for these models is by name).
pub fn decays(name: &str) -> bool {
    let n = name.to_lowercase();
    let norm = n.split('.').any(|part| part == "norm" || part.ends_with("_norm"));
    !(n.contains("bias") || n.contains("layernorm") || n.contains("rmsnorm") || norm)
}

/// One AdamW update of every parameter that has a gradient, as optimizer
/// step `step` (0-based) at learning rate `lr`; the gradients are consumed.
/// Returns the gradients' global norm before clipping
/// (`torch.nn.utils.clip_grad_norm_`).
pub(super) fn step(params: &mut [Param], args: &TrainArgs, lr: f64, step: usize) -> f64 {
    let sq: f64 = params.iter().filter_map(|p| p.grad.as_ref()).map(|g| f64::from(g.clone().square().sum().into_scalar::<f32>())).sum();
    let grad_norm = sq.sqrt();
    let clip = if args.max_grad_norm > 0.0 { (args.max_grad_norm / (grad_norm + 1e-6)).min(1.0) } else { 1.0 };
    let t = (step + 1) as i32;
    let (b1, b2, eps) = (args.adam_beta1, args.adam_beta2, args.adam_epsilon);
    let bc1 = 1.0 - b1.powi(t);
    let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
    let wd = args.weight_decay;
    for p in params {
        let Some(mut g) = p.grad.take() else { continue };
        if clip < 1.0 {
            g = g.mul_scalar(clip as f32);
        }
        let (m, v) = match p.moments.take() {
            Some(mv) => mv,
            None => (g.zeros_like(), g.zeros_like()),
        };
        let mut value = p.value.clone();
        if p.decay && wd > 0.0 {
            value = value.mul_scalar((1.0 - lr * wd) as f32);
        }
        // torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        let m = m.clone() + (g.clone() - m).mul_scalar((1.0 - b1) as f32);
        let v = v.mul_scalar(b2 as f32) + g.clone().square().mul_scalar((1.0 - b2) as f32);
        let denom = v.clone().sqrt().div_scalar(bc2_sqrt as f32).add_scalar(eps as f32);
        p.value = value - (m.clone() / denom).mul_scalar((lr / bc1) as f32);
        p.moments = Some((m, v));
    }
    grad_norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_names_match_transformers() {
        for n in ["bert.encoder.layer.0.attention.self.query.weight", "classifier.weight", "model.layers.0.mlp.up_proj.weight"] {
            assert!(decays(n), "{n}");
        }
        for n in [
            "bert.encoder.layer.0.attention.self.query.bias",
            "bert.embeddings.LayerNorm.weight",
            "model.layers.0.input_layernorm.weight",
            "model.norm.weight",
            "model.layers.1.post_attention_layernorm.weight",
        ] {
            assert!(!decays(n), "{n}");
        }
    }
}
