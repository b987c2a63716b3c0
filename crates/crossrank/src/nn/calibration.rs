//! Recording what linear layers see, for calibrated quantization
//! (`crossrank quantize --dtype q4`, `quant::gptq`): while a [`Session`] is
//! open, every linear layer whose weight is wanted adds its input's Gram
//! matrix `XᵀX` to that weight's [`Gram`].
//!
//! A recorder per thread rather than a parameter threaded through every
//! model's forward pass: calibration is one offline step, and the models
//! stay as they run for scoring. The calibration passes run on the thread
//! that opened the session (a forward pass runs its layers on the calling
//! thread), so other threads' passes — a server scoring meanwhile, other
//! tests — are never recorded. With no session open anywhere a forward
//! pass pays one atomic load per linear layer.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::Tensor;

use crate::quant::Gram;

/// Sessions open in the process (the fast path's test).
static OPEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

struct Recorder {
    wanted: HashSet<String>,
    grams: HashMap<String, Gram>,
}

/// An open recording on this thread; [`Session::finish`] returns the Gram
/// matrices. Not `Send`: it ends on the thread it began on.
pub(crate) struct Session {
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Session {
    /// Record, on this thread, the inputs of the linear layers whose
    /// weights are named in `wanted` (`PREFIX.weight`). A session already
    /// open on this thread is replaced.
    pub(crate) fn start(wanted: HashSet<String>) -> Self {
        let previous = RECORDER.with(|r| r.borrow_mut().replace(Recorder { wanted, grams: HashMap::new() }));
        if previous.is_none() {
            OPEN.fetch_add(1, Ordering::SeqCst);
        }
        Self { _this_thread: std::marker::PhantomData }
    }

    /// The Gram matrix of each wanted weight's inputs (weights never
    /// reached are absent).
    pub(crate) fn finish(self) -> HashMap<String, Gram> {
        Self::close().map(|r| r.grams).unwrap_or_default()
    }

    fn close() -> Option<Recorder> {
        let rec = RECORDER.with(|r| r.borrow_mut().take());
        if rec.is_some() {
            OPEN.fetch_sub(1, Ordering::SeqCst);
        }
        rec
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        Self::close();
    }
}

/// Called by a linear layer with the weights it multiplies (`names`, one
/// per concatenated part) and its input `x` (`[..., d]`); a no-op unless a
/// session wants one of them. Inputs must hold real tokens only: the
/// calibration passes one sequence at a time, so there is no padding.
pub(crate) fn record<const D: usize>(names: &[String], x: &Tensor<D>) {
    if OPEN.load(Ordering::Relaxed) == 0 {
        return;
    }
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            rec.record(names, x);
        }
    });
}

impl Recorder {
    fn record<const D: usize>(&mut self, names: &[String], x: &Tensor<D>) {
        if !names.iter().any(|n| self.wanted.contains(n)) {
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
        for n in names.iter().filter(|n| self.wanted.contains(*n)) {
            self.grams.entry(n.clone()).or_insert_with(|| Gram::new(d)).add(&xtx, rows);
        }
    }
}
