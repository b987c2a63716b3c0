//! The model worker: one thread owns the forward passes; requests reach it
//! through a queue as already-tokenized pairs. Passes are planned a window
//! at a time: the oldest waiting requests, whole, up to two passes' worth
//! of tokens, sorted longest first and cut at the token budget — so fifty
//! clients sending one pair each share passes, each pass pads little, and
//! requests finish in arrival order.
//! A request whose client went away (its reply channel closed) is dropped
//! from the queue before its next pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossrank::{EmbedOptions, Embedder, Encoded, Reranker};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// What a scoring request gets back.
pub(crate) struct Scored {
    /// Raw logits, one list per scoring layer, in the request's order.
    pub(crate) layers: Vec<Vec<f32>>,
    /// From enqueueing to the first pass that took one of its pairs.
    pub(crate) queue: Duration,
    /// Time in passes that carried its pairs.
    pub(crate) inference: Duration,
}

pub(crate) enum Job {
    Score { items: Vec<Encoded>, cutoffs: Vec<usize>, reply: oneshot::Sender<Result<Scored, ApiError>> },
    Embed { texts: Vec<String>, opts: EmbedOptions, reply: oneshot::Sender<Result<Vec<Vec<f32>>, ApiError>> },
}

/// The model a server runs.
// Built once and held in an Arc: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Reranker(Reranker),
    Embedder(Embedder),
}

/// Handle to the worker. Dropping every handle ends the worker once the
/// queue is empty (nothing accepted is lost on shutdown).
pub(crate) struct Engine {
    tx: std::sync::Mutex<mpsc::Sender<Job>>,
    pub(crate) depth: Arc<AtomicUsize>,
    pub(crate) alive: Arc<AtomicBool>,
}

impl Engine {
    pub(crate) fn start(model: Arc<Model>, max_batch_tokens: usize, max_batch_pairs: usize, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let (d, a) = (depth.clone(), alive.clone());
        std::thread::Builder::new()
            .name("crossrank-model".into())
            .spawn(move || {
                let worker = Worker { model, rx, depth: d, budget: max_batch_tokens.max(1), max_pairs: max_batch_pairs.max(1), metrics };
                // A panic in a pass must not leave requests waiting forever:
                // their reply channels close and they answer 503.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()));
                if result.is_err() {
                    tracing::error!("the model worker panicked; the server is unhealthy");
                }
                a.store(false, Ordering::SeqCst);
            })
            .expect("spawning the model worker thread");
        Self { tx: std::sync::Mutex::new(tx), depth, alive }
    }

    pub(crate) fn submit(&self, job: Job) -> Result<(), ApiError> {
        self.depth.fetch_add(1, Ordering::SeqCst);
        let sent = self.tx.lock().map_err(|_| ApiError::unhealthy())?.send(job);
        if sent.is_err() {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::unhealthy());
        }
        Ok(())
    }
}

/// A scoring request inside the worker.
struct Pending {
    id: u64,
    items: Vec<Encoded>,
    cutoffs: Vec<usize>,
    layers: Vec<Vec<f32>>,
    left: usize,
    reply: oneshot::Sender<Result<Scored, ApiError>>,
    enqueued: Instant,
    first_pass: Option<Instant>,
    inference: Duration,
}

/// One planned pass: (tokens, request id, item) of each pair, longest first.
type Pass = Vec<(usize, u64, usize)>;

/// How many passes' worth of tokens one window holds (see `plan`).
const WINDOW_PASSES: usize = 2;

struct Worker {
    model: Arc<Model>,
    rx: mpsc::Receiver<Job>,
    depth: Arc<AtomicUsize>,
    budget: usize,
    max_pairs: usize,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(self) {
        // In arrival order.
        let mut pending: Vec<Pending> = Vec::new();
        let mut plan: std::collections::VecDeque<Pass> = Default::default();
        let mut next_id = 0u64;
        loop {
            if pending.is_empty() {
                match self.rx.recv() {
                    Ok(job) => self.accept(job, &mut pending, &mut next_id),
                    Err(_) => return, // every handle dropped and nothing left
                }
            }
            while let Ok(job) = self.rx.try_recv() {
                self.accept(job, &mut pending, &mut next_id);
            }
            // Clients that went away: their work is dropped, not computed
            // (planned passes skip their pairs).
            let before = pending.len();
            pending.retain(|p| !p.reply.is_closed());
            let dropped = before - pending.len();
            if dropped > 0 {
                tracing::debug!(dropped, "clients went away: their queued work is dropped");
                self.metrics.observe_dropped(dropped);
            }
            self.finished(dropped);
            if pending.is_empty() {
                plan.clear();
                continue;
            }
            if plan.is_empty() {
                plan = self.plan(&pending);
            }
            let Some(pass) = plan.pop_front() else { continue };
            self.pass(pass, &mut pending);
            let mut done = Vec::new();
            pending.retain_mut(|p| {
                if p.left > 0 {
                    return true;
                }
                let (tx, _) = oneshot::channel();
                done.push((
                    std::mem::replace(&mut p.reply, tx),
                    Scored {
                        layers: std::mem::take(&mut p.layers),
                        queue: p.first_pass.unwrap_or(p.enqueued).duration_since(p.enqueued),
                        inference: p.inference,
                    },
                ));
                false
            });
            self.finished(done.len());
            for (reply, scored) in done {
                let _ = reply.send(Ok(scored));
            }
        }
    }

    fn finished(&self, n: usize) {
        if n > 0 {
            self.depth.fetch_sub(n, Ordering::SeqCst);
        }
    }

    fn accept(&self, job: Job, pending: &mut Vec<Pending>, next_id: &mut u64) {
        match job {
            Job::Score { items, cutoffs, reply } => {
                let n = items.len();
                let layers = vec![vec![f32::NAN; n]; cutoffs.len().max(1)];
                *next_id += 1;
                pending.push(Pending {
                    id: *next_id,
                    items,
                    cutoffs,
                    layers,
                    left: n,
                    reply,
                    enqueued: Instant::now(),
                    first_pass: None,
                    inference: Duration::ZERO,
                });
            }
            Job::Embed { texts, opts, reply } => {
                // Embeddings run whole, between passes.
                let out = match &*self.model {
                    Model::Embedder(e) => e.embed(&texts, &opts).map_err(ApiError::from_core),
                    Model::Reranker(_) => Err(ApiError::validation("this server runs a reranker: use /rerank")),
                };
                let _ = reply.send(out);
                self.finished(1);
            }
        }
    }

    /// The next window: the oldest waiting requests (those scoring the same
    /// layers as the oldest), whole, until they hold WINDOW_PASSES passes'
    /// worth of tokens; its pairs sorted longest first and cut into passes
    /// of at most `budget` padded tokens and `max_pairs` pairs. A window is
    /// run to its end before the next is planned, so requests finish in
    /// arrival order (no request's short pairs wait behind a stream of
    /// newer long ones) while each pass pads little.
    fn plan(&self, pending: &[Pending]) -> std::collections::VecDeque<Pass> {
        let key = &pending[0].cutoffs;
        let mut units: Pass = Vec::new();
        let mut tokens = 0usize;
        for p in pending.iter().filter(|p| &p.cutoffs == key) {
            if tokens >= self.budget * WINDOW_PASSES {
                break;
            }
            for (i, e) in p.items.iter().enumerate() {
                units.push((e.len(), p.id, i));
                tokens += e.len();
            }
        }
        // The core's batching: longest first (ties in arrival order, the
        // order `units` was filled in), at most `max_pairs` pairs and
        // `budget` padded tokens a pass, a longer pair alone.
        let lens: Vec<usize> = units.iter().map(|u| u.0).collect();
        crossrank::batching::batches(&lens, self.max_pairs, Some(self.budget))
            .into_iter()
            .map(|pass| pass.into_iter().map(|i| units[i]).collect())
            .collect()
    }

    /// Run one planned pass over the pairs whose requests are still waiting.
    fn pass(&self, planned: Pass, pending: &mut [Pending]) {
        let Model::Reranker(model) = &*self.model else {
            for p in pending.iter_mut() {
                p.left = 0;
            }
            return;
        };
        // (position in `pending`, item) of each pair still wanted.
        let chosen: Vec<(usize, usize)> =
            planned.iter().filter_map(|&(_, id, i)| pending.iter().position(|p| p.id == id).map(|r| (r, i))).collect();
        if chosen.is_empty() {
            return;
        }
        let key = pending[chosen[0].0].cutoffs.clone();
        let items: Vec<&Encoded> = chosen.iter().map(|&(r, i)| &pending[r].items[i]).collect();
        let tokens: usize = items.iter().map(|e| e.len()).sum();
        let start = Instant::now();
        let result = model.score_encoded(&items, &key);
        let took = start.elapsed();
        self.metrics.observe_pass(chosen.len(), tokens, took);
        let mut touched: Vec<usize> = chosen.iter().map(|u| u.0).collect();
        touched.sort_unstable();
        touched.dedup();
        for &r in &touched {
            let p = &mut pending[r];
            p.first_pass.get_or_insert(start);
            p.inference += took;
        }
        match result {
            Ok(layers) => {
                for (k, &(r, i)) in chosen.iter().enumerate() {
                    let p = &mut pending[r];
                    for (l, layer) in layers.iter().enumerate() {
                        if let Some(v) = p.layers.get_mut(l) {
                            v[i] = layer[k];
                        }
                    }
                    p.left -= 1;
                }
            }
            Err(e) => {
                // The pass failed: every request in it fails with the error
                // (answered now; `run` retires them as finished).
                let err = ApiError::from_core(e);
                for &r in &touched {
                    let p = &mut pending[r];
                    let (tx, _) = oneshot::channel();
                    let reply = std::mem::replace(&mut p.reply, tx);
                    let _ = reply.send(Err(err.clone()));
                    p.left = 0;
                }
            }
        }
    }
}
