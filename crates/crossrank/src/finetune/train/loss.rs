//! The loss: FlagEmbedding's group cross-entropy (the positive is each
//! group's first passage), summed over the scored layers
//! (`CrossDecoderModel.forward`), with distillation from teacher scores or,
//! for a layer-wise model without them, from its last layer.

use burn::tensor::{Device, Tensor, TensorData, activation};

use super::super::data::Group;
use crate::error::{Error, Result};

/// The loss of one micro-batch from its scores `grouped` (one `[groups,
/// group size]` tensor per scored layer, the model's own last), as a
/// one-element tensor on `device` (the autodiff device).
pub(super) fn group_loss(grouped: &[Tensor<2>], groups: &[Group], knowledge_distillation: bool, device: &Device) -> Result<Tensor<1>> {
    let [b, g] = grouped[0].dims();
    let log_probs: Vec<Tensor<2>> = grouped.iter().map(|l| activation::log_softmax(l.clone(), 1)).collect();
    // Cross-entropy with the positive (index 0) as the target, mean over
    // groups; summed over the scored layers.
    let mut loss = log_probs[0].clone().slice([0..b, 0..1]).mean().neg();
    for lp in &log_probs[1..] {
        loss = loss - lp.clone().slice([0..b, 0..1]).mean();
    }
    let distill = |loss: Tensor<1>, lp: &Tensor<2>, teacher: &Tensor<2>| loss - (lp.clone() * teacher.clone()).sum_dim(1).mean();
    if !knowledge_distillation && log_probs.len() > 1 {
        // No teacher scores: the last layer teaches the earlier ones.
        let teacher = activation::softmax(grouped[grouped.len() - 1].clone().detach(), 1);
        for lp in &log_probs[..log_probs.len() - 1] {
            loss = distill(loss, lp, &teacher);
        }
    }
    if knowledge_distillation {
        let mut teacher = Vec::with_capacity(b * g);
        for group in groups {
            let t = group
                .teacher_scores
                .as_ref()
                .ok_or_else(|| Error::InvalidInput("knowledge distillation needs teacher scores in every group".into()))?;
            // softmax of the teacher's scores, in f64.
            let max = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = t.iter().map(|x| (x - max).exp()).collect();
            let s: f64 = e.iter().sum();
            teacher.extend(e.iter().map(|x| (x / s) as f32));
        }
        let teacher = Tensor::<2>::from_data(TensorData::new(teacher, [b, g]), device);
        for lp in &log_probs {
            loss = distill(loss, lp, &teacher);
        }
    }
    Ok(loss)
}
