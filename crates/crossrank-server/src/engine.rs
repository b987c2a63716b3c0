//! The model worker: one thread owns the forward passes; requests reach it
//! through a queue as already-tokenized pairs, and each pass is filled from
//! whatever is waiting — pairs of every request, longest first, up to the
//! token budget — so fifty clients sending one pair each share passes.
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
    items: Vec<Encoded>,
    cutoffs: Vec<usize>,
    layers: Vec<Vec<f32>>,
    done: Vec<bool>,
    left: usize,
    reply: oneshot::Sender<Result<Scored, ApiError>>,
    enqueued: Instant,
    first_pass: Option<Instant>,
    inference: Duration,
}

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
        let mut pending: Vec<Pending> = Vec::new();
        loop {
            if pending.is_empty() {
                match self.rx.recv() {
                    Ok(job) => self.accept(job, &mut pending),
                    Err(_) => return, // every handle dropped and nothing left
                }
            }
            while let Ok(job) = self.rx.try_recv() {
                self.accept(job, &mut pending);
            }
            // Clients that went away: their work is dropped, not computed.
            let before = pending.len();
            pending.retain(|p| !p.reply.is_closed());
            let dropped = before - pending.len();
            if dropped > 0 {
                tracing::debug!(dropped, "clients went away: their queued work is dropped");
                self.metrics.observe_dropped(dropped);
            }
            self.finished(dropped);
            if pending.is_empty() {
                continue;
            }
            self.pass(&mut pending);
            let mut i = 0;
            while i < pending.len() {
                if pending[i].left == 0 {
                    let p = pending.swap_remove(i);
                    let scored = Scored {
                        layers: p.layers,
                        queue: p.first_pass.unwrap_or(p.enqueued).duration_since(p.enqueued),
                        inference: p.inference,
                    };
                    let _ = p.reply.send(Ok(scored));
                    self.finished(1);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn finished(&self, n: usize) {
        if n > 0 {
            self.depth.fetch_sub(n, Ordering::SeqCst);
        }
    }

    fn accept(&self, job: Job, pending: &mut Vec<Pending>) {
        match job {
            Job::Score { items, cutoffs, reply } => {
                let n = items.len();
                let layers = vec![vec![f32::NAN; n]; cutoffs.len().max(1)];
                pending.push(Pending {
                    items,
                    cutoffs,
                    layers,
                    done: vec![false; n],
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

    /// One pass: the longest waiting pairs (of the oldest request's
    /// scoring layers) that fit the token budget.
    fn pass(&self, pending: &mut [Pending]) {
        let Model::Reranker(model) = &*self.model else {
            for p in pending.iter_mut() {
                p.left = 0;
            }
            return;
        };
        let key = pending[0].cutoffs.clone();
        let mut units: Vec<(usize, usize, usize)> = Vec::new(); // (len, request, item)
        for (r, p) in pending.iter().enumerate().filter(|(_, p)| p.cutoffs == key) {
            units.extend(p.done.iter().enumerate().filter(|(_, d)| !**d).map(|(i, _)| (p.items[i].len(), r, i)));
        }
        // Longest first; ties in arrival order.
        units.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let longest = units.first().map_or(1, |u| u.0.max(1));
        let take = (self.budget / longest).clamp(1, self.max_pairs).min(units.len());
        let chosen = &units[..take];
        let items: Vec<&Encoded> = chosen.iter().map(|&(_, r, i)| &pending[r].items[i]).collect();
        let tokens: usize = chosen.iter().map(|u| u.0).sum();
        let start = Instant::now();
        let result = model.score_encoded(&items, &key);
        let took = start.elapsed();
        self.metrics.observe_pass(take, tokens, took);
        let mut touched: Vec<usize> = chosen.iter().map(|u| u.1).collect();
        touched.sort_unstable();
        touched.dedup();
        for &r in &touched {
            let p = &mut pending[r];
            p.first_pass.get_or_insert(start);
            p.inference += took;
        }
        match result {
            Ok(layers) => {
                for (k, &(_, r, i)) in chosen.iter().enumerate() {
                    let p = &mut pending[r];
                    for (l, layer) in layers.iter().enumerate() {
                        if let Some(v) = p.layers.get_mut(l) {
                            v[i] = layer[k];
                        }
                    }
                    p.done[i] = true;
                    p.left -= 1;
                }
            }
            Err(e) => {
                // The pass failed: every request in it fails with the error.
                let err = ApiError::from_core(e);
                for &r in &touched {
                    let p = &mut pending[r];
                    let (tx, _) = oneshot::channel();
                    let reply = std::mem::replace(&mut p.reply, tx);
                    let _ = reply.send(Err(err.clone()));
                    p.left = 0;
                    p.done.iter_mut().for_each(|d| *d = true);
                }
            }
        }
    }
}
