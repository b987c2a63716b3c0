//! The search engine, on its own thread so typing never waits for a model:
//! loading (local directory or Hub repo id, with download progress),
//! indexing a folder (`corpus`'s passages, BM25, optional dense embeddings) and
//! searching (first stages, then the reranker). Only crossrank's public API
//! is used: `Checkpoint`, `Reranker`, `Embedder`, `device`, `eval`'s BM25.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Instant;

use crossrank::eval::bm25::Bm25Index;
use crossrank::eval::dense;
use crossrank::eval::data::Corpus;
use crate::corpus::{self, Folder, Passage};
use crossrank::{Checkpoint, Device, EmbedOptions, Embedder, LongPassages, Reranker, ScoreOptions, WeightDtype};

/// Where the models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceMode {
    /// The window's own wgpu device (one device for UI and models).
    Shared,
    /// The window's device when it is a hardware GPU (and passes the
    /// self-check), else crossrank's `auto` (a hardware GPU, else the CPU:
    /// a software adapter is slower than the CPU backend).
    Auto,
    Cpu,
    /// A second wgpu device, opened by crossrank (software adapters too).
    Wgpu,
}

impl DeviceMode {
    pub const ALL: [DeviceMode; 4] = [DeviceMode::Shared, DeviceMode::Auto, DeviceMode::Cpu, DeviceMode::Wgpu];

    pub fn label(self) -> &'static str {
        match self {
            DeviceMode::Shared => "GPU shared with the window",
            DeviceMode::Auto => "auto (shared hardware GPU, else CPU)",
            DeviceMode::Cpu => "CPU",
            DeviceMode::Wgpu => "GPU (own device)",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "shared" => Ok(Self::Shared),
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(format!("unknown device {other:?}: shared, auto, cpu or wgpu")),
        }
    }
}

/// What to load.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// A checkpoint directory or a Hub repo id (`owner/name[@revision]`).
    pub reranker: String,
    /// An embedding checkpoint for dense retrieval; BM25 only without one.
    pub embedder: Option<String>,
    pub dtype: WeightDtype,
    pub device: DeviceMode,
    /// The window's wgpu device as a crossrank device, for [`DeviceMode::Shared`].
    pub shared: Option<(Device, String)>,
}

pub enum Command {
    Load(ModelSpec),
    Index(PathBuf),
    Search { query: String, generation: u64 },
}

#[derive(Debug, Clone)]
pub struct Hit {
    /// The file, relative to the indexed folder.
    pub file: PathBuf,
    /// The passage's position in its file (0-based).
    pub passage: usize,
    pub text: String,
    pub score: f32,
    /// The window that scored, as byte offsets into `text`.
    pub span: Option<(usize, usize)>,
    /// Windows the passage was scored in (1: it fitted whole).
    pub windows: usize,
}

#[derive(Debug, Clone)]
pub struct Results {
    pub generation: u64,
    pub query: String,
    pub hits: Vec<Hit>,
    /// Passages the first stages handed to the reranker.
    pub candidates: usize,
    pub millis: f64,
}

pub enum Event {
    Status(String),
    Download { file: String, bytes: u64, total: Option<u64> },
    Loaded { device: String, seconds: f64 },
    Indexing { done: usize, total: usize, what: &'static str },
    Indexed { files: usize, passages: usize, skipped: usize, seconds: f64 },
    Results(Results),
    Error(String),
}

/// Reranked results shown.
pub const TOP_K: usize = 20;
/// Candidates from each first stage.
const FIRST_STAGE_K: usize = 50;
/// Tokens per scored window (query included): short windows make the
/// highlight say where in a section the answer is, and score twice as fast
/// as 512 on a CPU.
pub const WINDOW_TOKENS: usize = 256;
/// The options every score uses: `maxp` windows of [`WINDOW_TOKENS`], so
/// long passages are read whole and the best window is what the UI
/// highlights (the CLI gives the same ranking with `--long-passages maxp
/// --max-length 256`).
///
/// Passes are capped at 4096 tokens (16 windows): Mesa's lavapipe failed
/// to allocate a pass of 32 windows of MiniLM (a 192 MiB buffer) after a
/// few searches, and interactive queries gain nothing from bigger passes.
pub fn score_options() -> ScoreOptions {
    ScoreOptions { long_passages: LongPassages::Maxp, max_length: Some(WINDOW_TOKENS), max_batch_tokens: Some(4096), ..ScoreOptions::default() }
}

struct Models {
    reranker: Reranker,
    embedder: Option<Embedder>,
}

struct Index {
    files: Vec<PathBuf>,
    passages: Vec<Passage>,
    bm25: Bm25Index,
    /// Unit-length embeddings of the passages (with an embedder).
    dense: Option<Vec<Vec<f32>>>,
}

/// Start the engine thread; `wake` asks the UI to repaint when an event is
/// waiting.
pub fn spawn(wake: impl Fn() + Send + 'static) -> (Sender<Command>, Receiver<Event>) {
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<Command>();
    let (ev_tx, ev_rx) = std::sync::mpsc::channel::<Event>();
    std::thread::Builder::new()
        .name("crossrank-engine".into())
        .spawn(move || {
            let send = |e: Event| {
                let _ = ev_tx.send(e);
                wake();
            };
            let mut engine = Engine { models: None, index: None };
            while let Ok(first) = cmd_rx.recv() {
                // Take everything queued; of several searches only the
                // newest runs (the user typed on meanwhile).
                let mut batch = vec![first];
                loop {
                    match cmd_rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => break,
                    }
                }
                let last_search = batch.iter().rposition(|c| matches!(c, Command::Search { .. }));
                for (i, cmd) in batch.into_iter().enumerate() {
                    let result = match cmd {
                        Command::Load(spec) => engine.load(&spec, &send),
                        Command::Index(dir) => engine.index(&dir, &send),
                        Command::Search { query, generation } if Some(i) == last_search => {
                            engine.search(&query, generation).map(|r| send(Event::Results(r)))
                        }
                        Command::Search { .. } => Ok(()),
                    };
                    if let Err(e) = result {
                        send(Event::Error(e));
                    }
                }
            }
        })
        .expect("spawning the engine thread");
    (cmd_tx, ev_rx)
}

struct Engine {
    models: Option<Models>,
    index: Option<Index>,
}

impl Engine {
    fn load(&mut self, spec: &ModelSpec, send: &dyn Fn(Event)) -> Result<(), String> {
        let started = Instant::now();
        let (device, reason) = match (spec.device, &spec.shared) {
            (DeviceMode::Shared | DeviceMode::Auto, Some((d, why))) => (d.clone(), why.clone()),
            (mode, _) => {
                let choice = match mode {
                    DeviceMode::Cpu => crossrank::device::DeviceChoice::Cpu,
                    DeviceMode::Wgpu => crossrank::device::DeviceChoice::Wgpu,
                    _ => crossrank::device::DeviceChoice::Auto,
                };
                let d = crossrank::device::select(choice).map_err(|e| e.to_string())?;
                let why = if mode == DeviceMode::Shared {
                    format!("the window does not render with wgpu, so no device to share; {}", d.reason)
                } else {
                    d.reason
                };
                (d.device, why)
            }
        };
        let reranker_ck = self.resolve(&spec.reranker, send)?;
        send(Event::Status(format!("loading the reranker on {reason}")));
        let reranker = Reranker::load_with_dtype(&reranker_ck, &device, spec.dtype).map_err(|e| format!("{}: {e}", spec.reranker))?;
        let embedder = match &spec.embedder {
            Some(e) if !e.trim().is_empty() => {
                let ck = self.resolve(e, send)?;
                send(Event::Status("loading the embedder".into()));
                Some(Embedder::load_with_dtype(&ck, &device, spec.dtype).map_err(|err| format!("{e}: {err}"))?)
            }
            _ => None,
        };
        self.models = Some(Models { reranker, embedder });
        // Passages are embedded by the embedder now loaded (or not at all).
        if let (Some(ix), Some(m)) = (&mut self.index, &self.models) {
            ix.dense = match &m.embedder {
                Some(e) => Some(embed_all(e, &ix.passages, send)?),
                None => None,
            };
        }
        send(Event::Loaded { device: reason, seconds: started.elapsed().as_secs_f64() });
        Ok(())
    }

    /// A directory as it is; a Hub repo id downloaded with progress events.
    fn resolve(&self, spec: &str, send: &dyn Fn(Event)) -> Result<Checkpoint, String> {
        send(Event::Status(format!("opening {spec}")));
        // The callback must be 'static + Send: it forwards through a
        // channel of its own, drained here while the download runs.
        let (tx, rx) = std::sync::mpsc::channel::<crossrank::DownloadProgress>();
        let spec_owned = spec.to_string();
        let handle = std::thread::spawn(move || {
            Checkpoint::resolve_with_progress(&spec_owned, move |p| {
                let _ = tx.send(p.clone());
            })
        });
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(p) => send(Event::Download { file: p.file, bytes: p.bytes, total: p.total }),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !handle.is_finished() => {}
                Err(_) => break,
            }
        }
        handle.join().map_err(|_| format!("{spec}: the download thread panicked"))?.map_err(|e| format!("{spec}: {e}"))
    }

    fn index(&mut self, dir: &Path, send: &dyn Fn(Event)) -> Result<(), String> {
        let started = Instant::now();
        if !dir.is_dir() {
            return Err(format!("{} is not a folder", dir.display()));
        }
        send(Event::Status(format!("reading {}", dir.display())));
        let Folder { files: kept, passages, skipped } = corpus::read_folder(dir)?;
        let mut corpus = Corpus::default();
        for (i, p) in passages.iter().enumerate() {
            corpus.push(i.to_string(), p.text.clone())?;
        }
        let total = passages.len();
        let bm25 = Bm25Index::build(&corpus, "english", &mut |done, total| send(Event::Indexing { done, total, what: "BM25" }))
            .map_err(|e| e.to_string())?;
        let dense = match self.models.as_ref().and_then(|m| m.embedder.as_ref()) {
            Some(e) => Some(embed_all(e, &passages, send)?),
            None => None,
        };
        self.index = Some(Index { files: kept, passages, bm25, dense });
        let files = self.index.as_ref().map_or(0, |i| i.files.len());
        send(Event::Indexed { files, passages: total, skipped, seconds: started.elapsed().as_secs_f64() });
        Ok(())
    }

    fn search(&self, query: &str, generation: u64) -> Result<Results, String> {
        let started = Instant::now();
        let query = query.trim();
        let empty = |candidates| Results { generation, query: query.to_string(), hits: vec![], candidates, millis: 0.0 };
        let (Some(models), Some(ix)) = (&self.models, &self.index) else {
            return Ok(empty(0));
        };
        if query.is_empty() {
            return Ok(empty(0));
        }
        // First stages: BM25, and dense cosine with an embedder; their union.
        let mut candidates: Vec<usize> =
            ix.bm25.search(query, FIRST_STAGE_K).map_err(|e| e.to_string())?.into_iter().map(|(i, _)| i).collect();
        if let (Some(e), Some(vectors)) = (&models.embedder, &ix.dense) {
            // The model's query prompt when it has one (Qwen3-Embedding's).
            let q = e.embed(&[query], &e.with_prompt_named(&EmbedOptions::default(), "query")).map_err(|e| e.to_string())?.remove(0);
            candidates.extend(dense::nearest(&q, vectors, FIRST_STAGE_K).into_iter().map(|(i, _)| i));
        }
        candidates.sort_unstable();
        candidates.dedup();
        if candidates.is_empty() {
            return Ok(empty(0));
        }
        let texts: Vec<&str> = candidates.iter().map(|&i| ix.passages[i].text.as_str()).collect();
        let ranked = models.reranker.rerank_passages(query, &texts, Some(TOP_K), &score_options()).map_err(|e| e.to_string())?;
        let hits = ranked
            .into_iter()
            .map(|(r, s)| {
                let p = &ix.passages[candidates[r.index]];
                Hit {
                    file: ix.files[p.file].clone(),
                    passage: p.index,
                    text: p.text.clone(),
                    score: r.score,
                    span: s.span,
                    windows: s.windows,
                }
            })
            .collect();
        Ok(Results {
            generation,
            query: query.to_string(),
            hits,
            candidates: candidates.len(),
            millis: started.elapsed().as_secs_f64() * 1e3,
        })
    }
}

fn embed_all(e: &Embedder, passages: &[Passage], send: &dyn Fn(Event)) -> Result<Vec<Vec<f32>>, String> {
    let mut out = Vec::with_capacity(passages.len());
    for chunk in passages.chunks(64) {
        let texts: Vec<&str> = chunk.iter().map(|p| p.text.as_str()).collect();
        let v = e.embed(&texts, &e.with_prompt_named(&EmbedOptions::default(), "document")).map_err(|e| e.to_string())?;
        out.extend(v.into_iter().map(dense::normalized));
        send(Event::Indexing { done: out.len(), total: passages.len(), what: "embeddings" });
    }
    Ok(out)
}

/// This process's resident memory now and at its peak, in MiB (Linux).
pub fn memory_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kb| kb / 1024.0);
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
