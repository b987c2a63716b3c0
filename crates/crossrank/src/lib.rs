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

pub mod config;
pub mod device;
mod embed;
pub mod error;
mod host;
#[cfg(feature = "hub")]
pub mod hub;
pub mod load;
pub mod models;
pub mod nn;
pub mod quant;
mod rerank;
pub mod tokenize;

pub use burn::tensor::Device;
pub use config::{Architecture, EncoderConfig};
pub use embed::{EmbedOptions, Embedder, Pooling};
pub use error::{Error, Result};
pub use load::{Checkpoint, Weights};
pub use quant::WeightDtype;
pub use rerank::{Ranked, Reranker, ScoreOptions};
pub use tokenize::{Batch, Encoded, PairTokenizer};

/// Read a finished tensor back to the host as f32 values. Asynchronous:
/// WebGPU can only read back that way.
pub(crate) async fn read_f32<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| Error::Device(format!("reading results back failed: {e:?}")))?;
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Device(format!("reading results back failed: {e:?}")))
}

/// Run one of the async entry points to completion. Natively this blocks;
/// in wasm it succeeds when nothing had to wait (the CPU backend) and is a
/// typed error otherwise (WebGPU: use the `_async` API).
pub(crate) fn block<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    burn::tensor::try_read_sync(f).unwrap_or_else(|| {
        Err(Error::Device("this device only reads results asynchronously; use the *_async methods".into()))
    })
}

/// Indices of `lens` sorted by length, longest first (stable), as
/// FlagEmbedding sorts inputs to pad less.
pub(crate) fn longest_first(lens: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    order
}
