//! Fine-tuning, FlagEmbedding 1.4.2's way (`FlagEmbedding.abc.finetune.reranker`
//! and the encoder-only runner). This part: the training data — the seed's
//! JSON Lines format, FlagEmbedding's group sampling and its pair
//! construction (`data`); the training loop on Burn's autodiff (`train`,
//! feature `train`).

pub mod data;
#[cfg(feature = "train")]
pub mod train;
