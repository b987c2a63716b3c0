//! One file per architecture. The encoders share BERT's layers; each file
//! adds what differs (position ids, heads).

pub mod bert;
pub mod gemma;
pub mod minicpm;
pub mod xlm_roberta;

use crate::nn::Packing;
use crate::tokenize::Batch;

/// A batch as the encoder layers consume it: packed tokens (no padding, see
/// [`Packing`]), their ids on the host (the embedding tables may be chunked).
pub struct EncoderInput {
    /// Token ids, packed.
    pub ids: Vec<i64>,
    /// Segment ids, packed.
    pub token_types: Vec<i64>,
    /// Position ids, packed.
    pub positions: Vec<i64>,
    pub packing: Packing,
}

impl EncoderInput {
    /// From a host batch with the given position ids (`rows * cols`).
    pub fn new(batch: &Batch, positions: Vec<i64>) -> Self {
        let packing = Packing::new(&batch.attention_mask, batch.rows, batch.cols);
        let widen = |v: &[u32]| packing.pack(v).into_iter().map(i64::from).collect();
        Self {
            ids: widen(&batch.ids),
            token_types: widen(&batch.type_ids),
            positions: packing.pack(&positions),
            packing,
        }
    }
}
