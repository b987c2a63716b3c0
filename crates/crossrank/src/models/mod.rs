//! One file per architecture. The encoders share BERT's layers; each file
//! adds what differs (position ids, heads).

pub mod bert;
pub mod gemma;
pub mod minicpm;
pub mod xlm_roberta;

use burn::tensor::{Bool, Device, Tensor, TensorData};

use crate::tokenize::Batch;

/// A padded batch as the encoder layers consume it: ids on the host (the
/// embedding tables may be chunked), the padding mask on the device.
pub struct EncoderInput {
    pub rows: usize,
    pub cols: usize,
    /// Token ids, row-major.
    pub ids: Vec<i64>,
    /// Segment ids, row-major.
    pub token_types: Vec<i64>,
    /// Position ids, row-major.
    pub positions: Vec<i64>,
    /// `[batch, 1, 1, seq]`, true where the key is padding.
    pub key_padding: Tensor<4, Bool>,
}

impl EncoderInput {
    /// From a host batch with the given position ids (`rows * cols`).
    pub fn new(batch: &Batch, positions: Vec<i64>, device: &Device) -> Self {
        let (b, t) = (batch.rows, batch.cols);
        let pad: Vec<bool> = batch.attention_mask.iter().map(|&m| m == 0).collect();
        Self {
            rows: b,
            cols: t,
            ids: batch.ids.iter().map(|&x| x as i64).collect(),
            token_types: batch.type_ids.iter().map(|&x| x as i64).collect(),
            positions,
            key_padding: Tensor::<4, Bool>::from_data(TensorData::new(pad, [b, 1, 1, t]), device),
        }
    }
}
