//! Recording what linear layers see, for calibrated quantization
//! (`crossrank quantize --dtype q4`, `quant::gptq`): while a [`Session`] is
//! open, every linear layer whose weight is wanted adds its input's Gram
//! matrix `XᵀX` to that weight's [`Gram`].
//!
//! A process-wide recorder rather than a parameter threaded through every
//! model's forward pass: calibration is one offline step, and the models
//! stay as they run for scoring. Sessions are serialised (one at a time
//! per process); with none open a forward pass pays one atomic load per
//! linear layer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use burn::tensor::Tensor;

use crate::quant::Gram;

static ACTIVE: AtomicBool = AtomicBool::new(false);
static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);
static SESSIONS: Mutex<()> = Mutex::new(());

struct Recorder {
    wanted: HashSet<String>,
    grams: HashMap<String, Gram>,
}

/// An open recording; [`Session::finish`] returns the Gram matrices.
pub(crate) struct Session {
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Session {
    /// Record the inputs of the linear layers whose weights are named in
    /// `wanted` (`PREFIX.weight`).
    pub(crate) fn start(wanted: HashSet<String>) -> Self {
        let guard = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
        *RECORDER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Recorder { wanted, grams: HashMap::new() });
        ACTIVE.store(true, Ordering::SeqCst);
        Self { _one_at_a_time: guard }
    }

    /// The Gram matrix of each wanted weight's inputs (weights never
    /// reached are absent).
    pub(crate) fn finish(self) -> HashMap<String, Gram> {
        ACTIVE.store(false, Ordering::SeqCst);
        RECORDER.lock().unwrap_or_else(|e| e.into_inner()).take().map(|r| r.grams).unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
        RECORDER.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Called by a linear layer with the weights it multiplies (`names`, one
/// per concatenated part) and its input `x` (`[..., d]`); a no-op unless a
/// session wants one of them. Inputs must hold real tokens only: the
/// calibration passes one sequence at a time, so there is no padding.
pub(crate) fn record<const D: usize>(names: &[String], x: &Tensor<D>) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let mut guard = RECORDER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(rec) = guard.as_mut() else { return };
    if !names.iter().any(|n| rec.wanted.contains(n)) {
        return;
    }
    let dims = x.dims();
    let d = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    if rows == 0 {
        return;
    }
    let x2 = x.clone().reshape([rows, d]);
    let xtx = x2.clone().transpose().matmul(x2);
    let Ok(xtx) = xtx.into_data().try_to_vec::<f32>() else { return };
    for n in names.iter().filter(|n| rec.wanted.contains(*n)) {
        rec.grams.entry(n.clone()).or_insert_with(|| Gram::new(d)).add(&xtx, rows);
    }
}
