//! Fine-tuning, FlagEmbedding 1.4.2's way (`FlagEmbedding.abc.finetune.reranker`
//! and the encoder-only runner). This part: the training data — the seed's
//! JSON Lines format, FlagEmbedding's group sampling and its pair
//! construction (`data`); training files mined from a judged dataset
//! (`mine`); the training loop on Burn's autodiff (`train`,
//! feature `train`).

pub mod data;
pub mod mine;
#[cfg(feature = "train")]
pub mod train;
