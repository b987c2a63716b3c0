//! One file per architecture. The encoders share BERT's layers; each file
//! adds what differs (position ids, heads).

pub mod bert;
pub mod gemma;
pub mod minicpm;
pub mod xlm_roberta;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::tokenize::Batch;

/// A padded batch on the device, as the encoder layers consume it.
pub struct EncoderInput {
    /// `[batch, seq]` token ids.
    pub ids: Tensor<2, Int>,
    /// `[batch, seq]` segment ids.
    pub token_types: Tensor<2, Int>,
    /// `[batch, seq]` position ids.
    pub positions: Tensor<2, Int>,
    /// `[batch, 1, 1, seq]`, true where the key is padding.
    pub key_padding: Tensor<4, Bool>,
}

impl EncoderInput {
    /// Upload a host batch with the given position ids (`rows * cols`).
    pub fn new(batch: &Batch, positions: Vec<i64>, device: &Device) -> Self {
        let (b, t) = (batch.rows, batch.cols);
        let ints = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, t]), device);
        let pad: Vec<bool> = batch.attention_mask.iter().map(|&m| m == 0).collect();
        Self {
            ids: ints(batch.ids.iter().map(|&x| x as i64).collect()),
            token_types: ints(batch.type_ids.iter().map(|&x| x as i64).collect()),
            positions: ints(positions),
            key_padding: Tensor::<4, Bool>::from_data(TensorData::new(pad, [b, 1, 1, t]), device),
        }
    }
}
