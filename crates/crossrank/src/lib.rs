//! crossrank: the BAAI bge-reranker family on Burn, on the CPU, native GPUs
//! (wgpu) and WebGPU, with FlagEmbedding 1.4.2's scores.
//!
//! ```no_run
//! use crossrank::{Checkpoint, Reranker, ScoreOptions, device};
//! let dev = device::select(device::DeviceChoice::Auto)?;
//! let r = Reranker::load(&Checkpoint::dir("bge-reranker-base"), &dev.device)?;
//! let scores = r.compute_score(&[("what is panda?", "The giant panda is a bear.")], &ScoreOptions::default())?;
//! # Ok::<(), crossrank::Error>(())
//! ```
//!
//! docs/ARCHITECTURE.md maps the modules: from the bottom, `kernels` (the
//! only device-specific code), `quant`, `checkpoint` → `weights`, `nn`,
//! `tokenize`, `models`, then the `Reranker` / `Embedder` front.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod batching;
mod checkpoint;
pub mod device;
mod embed;
mod error;
pub mod eval;
mod files;
pub mod finetune;
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "hub")]
mod hub;
pub mod jsonl;
mod kernels;
mod models;
mod nn;
mod pretrained;
mod header;
mod quant;
pub mod quantize;
mod rerank;
mod tokenize;
mod weights;

pub use burn::tensor::Device;
pub use checkpoint::Checkpoint;
pub use embed::{EmbedOptions, Embedder, Pooling, QWEN3_QUERY_PROMPT};
pub use error::{Error, Result};
#[cfg(feature = "hub")]
pub use hub::DownloadProgress;
pub use models::{Architecture, Task};
pub use pretrained::Pretrained;
pub use quant::WeightDtype;
pub use rerank::{LongPassages, PassageScore, PassageWindows, Ranked, Reranker, ScoreOptions, Window, rank, sigmoid};
pub use tokenize::Encoded;
