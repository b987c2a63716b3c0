//! Loading in one expression: `Reranker::from_pretrained(spec)` and
//! `Embedder::from_pretrained(spec)` — a checkpoint directory or a Hub repo
//! id (`owner/name[@revision]`), a device (by choice or given), a weight
//! dtype and a download progress callback, each optional:
//!
//! ```no_run
//! use crossrank::{Reranker, WeightDtype};
//! let r = Reranker::from_pretrained("BAAI/bge-reranker-base").dtype(WeightDtype::Q8).load()?;
//! # Ok::<(), crossrank::Error>(())
//! ```

use burn::tensor::Device;

use crate::checkpoint::Checkpoint;
use crate::device::{DeviceChoice, select};
use crate::embed::Embedder;
use crate::error::Result;
use crate::quant::WeightDtype;
use crate::rerank::Reranker;

/// Where the model goes: a device the caller has, or the device policy's
/// choice (`auto` by default).
enum Target {
    Choice(DeviceChoice),
    Device(Device),
}

/// What a model load needs; `load()` resolves the checkpoint (downloading a
/// repo id), chooses the device and loads. Built by
/// [`Reranker::from_pretrained`] / [`Embedder::from_pretrained`].
#[must_use = "nothing is loaded until `load()`"]
pub struct Pretrained<M> {
    spec: String,
    target: Target,
    dtype: WeightDtype,
    #[cfg(feature = "hub")]
    progress: Option<Box<dyn Fn(&crate::hub::DownloadProgress) + Send + Sync>>,
    load: fn(&Checkpoint, &Device, WeightDtype) -> Result<M>,
}

impl<M> Pretrained<M> {
    fn new(spec: &str, load: fn(&Checkpoint, &Device, WeightDtype) -> Result<M>) -> Self {
        Pretrained {
            spec: spec.to_string(),
            target: Target::Choice(DeviceChoice::Auto),
            dtype: WeightDtype::F32,
            #[cfg(feature = "hub")]
            progress: None,
            load,
        }
    }

    /// Choose the device by the device policy (`Auto`: a hardware GPU that
    /// passes the self-check, else the CPU; the default).
    pub fn device_choice(mut self, choice: DeviceChoice) -> Self {
        self.target = Target::Choice(choice);
        self
    }

    /// Load onto this device.
    pub fn device(mut self, device: &Device) -> Self {
        self.target = Target::Device(device.clone());
        self
    }

    /// Store the weights as `dtype` (default f32; a quantized checkpoint
    /// stays quantized).
    pub fn dtype(mut self, dtype: WeightDtype) -> Self {
        self.dtype = dtype;
        self
    }

    /// Report a download (file, bytes so far, size) to `f` instead of
    /// downloading silently.
    #[cfg(feature = "hub")]
    pub fn progress(mut self, f: impl Fn(&crate::hub::DownloadProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Resolve the checkpoint, choose the device, load.
    pub fn load(self) -> Result<M> {
        #[cfg(feature = "hub")]
        let ck = match self.progress {
            Some(f) => Checkpoint::resolve_with_progress(&self.spec, f)?,
            None => Checkpoint::resolve(&self.spec, false)?,
        };
        #[cfg(not(feature = "hub"))]
        let ck = Checkpoint::resolve(&self.spec, false)?;
        let device = match self.target {
            Target::Device(d) => d,
            Target::Choice(c) => select(c)?.device,
        };
        (self.load)(&ck, &device, self.dtype)
    }
}

impl Reranker {
    /// A reranker from a checkpoint directory or a Hub repo id, loaded by
    /// [`Pretrained::load`] after the options are set.
    pub fn from_pretrained(spec: &str) -> Pretrained<Reranker> {
        Pretrained::new(spec, Reranker::load_with_dtype)
    }
}

impl Embedder {
    /// An embedder from a checkpoint directory or a Hub repo id, loaded by
    /// [`Pretrained::load`] after the options are set.
    pub fn from_pretrained(spec: &str) -> Pretrained<Embedder> {
        Pretrained::new(spec, Embedder::load_with_dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_expression_loads_a_directory_as_load_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bert-tiny");
        let pairs = [("what is a panda?", "The giant panda is a bear."), ("what is a panda?", "Paris is in France.")];
        let opts = crate::rerank::ScoreOptions::default();
        let a = Reranker::from_pretrained(dir.to_str().unwrap()).device_choice(DeviceChoice::Cpu).load().unwrap();
        let b = Reranker::load(&Checkpoint::dir(&dir), &Device::flex()).unwrap();
        assert_eq!(a.compute_score(&pairs, &opts).unwrap(), b.compute_score(&pairs, &opts).unwrap());
        let q8 = Reranker::from_pretrained(dir.to_str().unwrap()).device(&Device::flex()).dtype(WeightDtype::Q8).load().unwrap();
        assert_eq!(q8.compute_score(&pairs, &opts).unwrap().len(), 2);
        let e = Embedder::from_pretrained(dir.to_str().unwrap()).device(&Device::flex()).load().unwrap();
        assert!(!e.embed(&["hello"], &Default::default()).unwrap()[0].is_empty());
        assert!(Reranker::from_pretrained("no/such-dir-or-repo/x").load().is_err());
    }
}
