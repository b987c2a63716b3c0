//! Unpacking quantized and packed-f16 weights to f32 (see `crate::quant`
//! for the storage format).

use burn::tensor::{Int, Tensor, TensorData};

use super::{for_each_chunk, on_host};

/// A whole quantized `[rows, cols]` matrix in f32: on the CPU in one host
/// pass, elsewhere with the tensor ops of [`unpack_rows`]; the values are
/// identical (tested).
pub(crate) fn dequantize(packed: Tensor<2, Int>, scales: Tensor<2>, bits: u32, block: usize, cols: usize) -> Tensor<2> {
    if on_host(&packed.device()) {
        return host_dequantize(packed, scales, bits, block, cols);
    }
    unpack_rows(packed, scales, bits, block, cols)
}

/// A quantized `[rows, cols]` matrix (`bits`-wide fields of 32-bit words,
/// one scale per `block` values) in f32 with tensor ops, on any device:
/// shift every value out of its word, recentre, scale.
pub(crate) fn unpack_rows(packed: Tensor<2, Int>, scales: Tensor<2>, bits: u32, block: usize, cols: usize) -> Tensor<2> {
    let rows = packed.dims()[0];
    let q = split_words(packed, bits, cols).float().sub_scalar((1i32 << (bits - 1)) as f32);
    let groups = cols / block;
    (q.reshape([rows, groups, block]) * scales.reshape([rows, groups, 1])).reshape([rows, cols])
}

/// The unsigned `bits`-wide fields of 32-bit words, low field first:
/// `[rows, words]` → `[rows, cols]` (`cols = words * 32 / bits`).
fn split_words(words: Tensor<2, Int>, bits: u32, cols: usize) -> Tensor<2, Int> {
    let [rows, n] = words.dims();
    let mask = ((1u64 << bits) - 1) as i32;
    let parts: Vec<Tensor<3, Int>> = (0..32 / bits)
        .map(|k| words.clone().bitwise_right_shift_scalar((k * bits) as i32).bitwise_and_scalar(mask).reshape([rows, n, 1]))
        .collect();
    Tensor::cat(parts, 2).reshape([rows, cols])
}

/// f16 bit patterns, two per word (low half first), to f32 — exactly:
/// `sign * (mantissa + 1024·[exp > 0]) * 2^max(exp, 1) * 2^-25` is an
/// 11-bit integer times a power of two. Checkpoint values that are not
/// finite in f16 never get here (see `Weights::rows_f16`).
pub(crate) fn widen_f16(words: Tensor<2, Int>, cols: usize) -> Tensor<2> {
    let h = split_words(words, 16, cols);
    let exp = h.clone().bitwise_right_shift_scalar(10).bitwise_and_scalar(31);
    let mag = h.clone().bitwise_and_scalar(1023) + exp.clone().clamp_max(1).mul_scalar(1024);
    let pow = exp.clone().ones_like().bitwise_left_shift(exp.clamp_min(1));
    let sign = h.bitwise_right_shift_scalar(15).mul_scalar(-2).add_scalar(1);
    (mag.float() * pow.float() * sign.float()).mul_scalar(2f32.powi(-25))
}

/// Unpack a quantized `[rows, cols]` matrix to f32 in one pass: `bits`-wide
/// fields of 32-bit words (low field first), recentred by 2^(bits-1), times
/// one scale per `block` values — the same arithmetic as [`unpack_rows`]'
/// tensor ops, so the values are identical. Those ops (shifts, masks, a
/// concatenation, a cast, a broadcast multiply: each a pass over the
/// matrix) made q8 16% slower than f32 on the CPU.
fn host_dequantize(packed: Tensor<2, Int>, scales: Tensor<2>, bits: u32, block: usize, cols: usize) -> Tensor<2> {
    let device = packed.device();
    let [rows, words] = packed.dims();
    let groups = cols / block;
    let packed = packed.into_data().convert::<i32>();
    let scales = scales.into_data().convert::<f32>();
    let (packed, scales) = (packed.as_slice::<i32>().expect("i32 words"), scales.as_slice::<f32>().expect("f32 scales"));
    let per_word = (32 / bits) as usize;
    let mask = (1u32 << bits) - 1;
    let offset = 1i32 << (bits - 1);
    let mut out = vec![0f32; rows * cols];
    let row = |(r, dst): (usize, &mut [f32])| {
        let (w, sc) = (&packed[r * words..(r + 1) * words], &scales[r * groups..(r + 1) * groups]);
        for (g, (chunk, &scale)) in dst.chunks_exact_mut(block).zip(sc).enumerate() {
            let base = g * block / per_word;
            for (i, x) in chunk.iter_mut().enumerate() {
                let word = w[base + i / per_word] as u32;
                let field = (word >> ((i % per_word) as u32 * bits)) & mask;
                *x = (field as i32 - offset) as f32 * scale;
            }
        }
    };
    for_each_chunk(&mut out, cols, row);
    Tensor::from_data(TensorData::new(out, [rows, cols]), &device)
}
