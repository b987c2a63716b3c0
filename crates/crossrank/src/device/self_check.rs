//! The GPU self-check: before `auto` trusts a GPU whose driver we have never
//! seen, a small deterministic encoder layer runs on it and on the CPU.

use burn::tensor::Device;

use super::read_f32;
use crate::error::{Error, Result};
use crate::nn::{Packing, packed_attention};

/// Check that `device` computes what the CPU backend computes, on a small
/// fixture that exercises the kernels a reranker uses (embedding gather,
/// matmul with bias, layer norm, GELU, packed masked attention, tanh,
/// reductions). Returns the largest absolute difference; an error when it
/// exceeds `tolerance` or the device fails.
pub(crate) async fn self_check(device: &Device, tolerance: f32) -> Result<f32> {
    let cpu = fixture_forward(&Device::flex());
    let gpu = fixture_forward(device);
    let (cpu, gpu) = (read_f32(cpu).await?, read_f32(gpu).await?);
    let diff = cpu.iter().zip(&gpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) });
    if !(diff <= tolerance) || cpu.len() != gpu.len() {
        return Err(Error::Device(format!("the GPU self-check disagrees with the CPU (max abs difference {diff:e} > {tolerance:e})")));
    }
    Ok(diff)
}

/// A two-sequence, one-layer encoder with deterministic weights.
fn fixture_forward(device: &Device) -> burn::tensor::Tensor<2> {
    use burn::tensor::{Int, Tensor, TensorData, module};
    let (t, h, heads, vocab) = (12usize, 32usize, 4usize, 50usize);
    // A fixed pseudo-random sequence (no RNG: identical on every platform).
    let vals = |n: usize, seed: u32| -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    };
    let t2 = |r: usize, c: usize, seed: u32| Tensor::<2>::from_data(TensorData::new(vals(r * c, seed), [r, c]), device);
    let t1 = |n: usize, seed: u32| Tensor::<1>::from_data(TensorData::new(vals(n, seed), [n]), device);
    // The second sequence is 4 tokens shorter; the layer runs on packed
    // tokens as the encoders do.
    let packing = Packing::new(&[t, t - 4]);
    let ids: Vec<i64> = (0..2 * t - 4).map(|i| ((i * 7 + 3) % vocab) as i64).collect();
    let ids = Tensor::<1, Int>::from_data(TensorData::new(packing.fill(ids), [packing.len()]), device);
    let x = t2(vocab, h, 1).select(0, ids);
    let x = module::layer_norm(x, t1(h, 2).add_scalar(1.0), Some(t1(h, 3)), 1e-5);
    let proj = |x: Tensor<2>, seed: u32| module::linear(x, t2(h, h, seed).mul_scalar(0.2), Some(t1(h, seed + 100)));
    let qkv = Tensor::cat(vec![proj(x.clone(), 4), proj(x.clone(), 5), proj(x.clone(), 6)], 1);
    let ctx = packed_attention(qkv, &packing.attention(heads, None, device));
    let x = x + proj(ctx, 7);
    let ff = burn::tensor::activation::gelu(proj(x.clone(), 8));
    let x = module::layer_norm(x + proj(ff, 9), t1(h, 10).add_scalar(1.0), Some(t1(h, 11)), 1e-5);
    let pooled = x.select(0, packing.first_tokens(device));
    let logits = module::linear(pooled, t2(h, 3, 12), Some(t1(3, 13))).tanh();
    let summary = burn::tensor::activation::softmax(logits.clone(), 1);
    Tensor::cat(vec![logits, summary], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU agrees with itself exactly; the fixture is deterministic.
    #[test]
    fn the_cpu_passes_its_own_check() {
        let diff = burn::tensor::try_read_sync(self_check(&Device::flex(), 0.0)).unwrap().unwrap();
        assert_eq!(diff, 0.0);
        let v = burn::tensor::try_read_sync(read_f32(fixture_forward(&Device::flex()))).unwrap().unwrap();
        assert_eq!(v.len(), 12);
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
