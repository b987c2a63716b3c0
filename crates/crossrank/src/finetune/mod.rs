//! Fine-tuning, FlagEmbedding 1.4.2's way (`FlagEmbedding.abc.finetune.reranker`
//! and the encoder-only runner). This part: the training data — the seed's
//! JSON Lines format, FlagEmbedding's group sampling and its pair
//! construction. The training loop builds on it.

pub mod data;
