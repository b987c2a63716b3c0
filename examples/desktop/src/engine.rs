//! The search engine, on its own thread so typing never waits for a model:
//! loading (local directory or Hub repo id, with download progress),
//! indexing a folder (passages, BM25, optional dense embeddings) and
//! searching (first stages, then the reranker). Only crossrank's public API
//! is used: `Checkpoint`, `Reranker`, `Embedder`, `device`, `eval`'s BM25.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Instant;

use crossrank::eval::bm25::Bm25Index;
use crossrank::eval::data::Corpus;
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
/// Files larger than this are not indexed (logs, dumps).
const MAX_FILE_BYTES: u64 = 4 << 20;
/// A passage grows paragraph by paragraph up to about this many bytes (a
/// section of a note); longer ones are scored window by window (maxp), so
/// nothing is cut off.
const PASSAGE_BYTES: usize = 2000;
/// Tokens per scored window (query included): short windows make the
/// highlight say where in a section the answer is, and score twice as fast
/// as 512 on a CPU.
pub const WINDOW_TOKENS: usize = 256;
const EXTENSIONS: &[&str] = &["md", "markdown", "txt", "text", "rst", "org", "adoc", "asciidoc", "tex"];

/// The options every score uses: `maxp` windows of [`WINDOW_TOKENS`], so
/// long passages are read whole and the best window is what the UI
/// highlights (the CLI gives the same ranking with `--long-passages maxp
/// --max-length 256`).
///
/// Passes are capped at 4096 tokens (16 windows): Mesa's lavapipe failed
/// to allocate a pass of 32 windows of MiniLM (a 192 MiB buffer) after a
/// few searches, and interactive queries gain nothing from bigger passes.
pub fn score_options() -> ScoreOptions {
    ScoreOptions { long_passages: LongPassages::Maxp, max_length: WINDOW_TOKENS, max_batch_tokens: Some(4096), ..ScoreOptions::default() }
}

struct Passage {
    file: usize,
    index: usize,
    text: String,
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
        let mut files = Vec::new();
        let mut skipped = 0;
        collect(dir, dir, &mut files, &mut skipped, 0);
        files.sort();
        let mut passages = Vec::new();
        let mut kept = Vec::new();
        for rel in files {
            let path = dir.join(&rel);
            let Ok(text) = std::fs::read_to_string(&path) else {
                skipped += 1; // not UTF-8 text
                continue;
            };
            let file = kept.len();
            let before = passages.len();
            for (index, text) in split_passages(&text).into_iter().enumerate() {
                passages.push(Passage { file, index, text });
            }
            if passages.len() > before {
                kept.push(rel);
            }
        }
        if passages.is_empty() {
            return Err(format!("no text files ({}) with text in {}", EXTENSIONS.join(", "), dir.display()));
        }
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
            let q = e.embed(&[query], &EmbedOptions::default()).map_err(|e| e.to_string())?.remove(0);
            let mut sims: Vec<(usize, f32)> = vectors.iter().enumerate().map(|(i, v)| (i, dot(&q, v))).collect();
            sims.sort_by(|a, b| b.1.total_cmp(&a.1));
            candidates.extend(sims.into_iter().take(FIRST_STAGE_K).map(|(i, _)| i));
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

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn embed_all(e: &Embedder, passages: &[Passage], send: &dyn Fn(Event)) -> Result<Vec<Vec<f32>>, String> {
    let mut out = Vec::with_capacity(passages.len());
    for chunk in passages.chunks(64) {
        let texts: Vec<&str> = chunk.iter().map(|p| p.text.as_str()).collect();
        let mut v = e.embed(&texts, &EmbedOptions::default()).map_err(|e| e.to_string())?;
        for x in &mut v {
            let n = dot(x, x).sqrt().max(1e-12);
            x.iter_mut().for_each(|y| *y /= n);
        }
        out.extend(v);
        send(Event::Indexing { done: out.len(), total: passages.len(), what: "embeddings" });
    }
    Ok(out)
}

/// Text files under `dir` (relative paths), not following links into
/// directories (no cycles), skipping hidden entries.
fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, skipped: &mut usize, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() && depth < 32 {
            collect(root, &path, out, skipped, depth + 1);
        } else if kind.is_file() || kind.is_symlink() && path.is_file() {
            if !is_text_file(&path) {
                continue;
            }
            if entry.metadata().map_or(true, |m| m.len() > MAX_FILE_BYTES) {
                *skipped += 1;
                continue;
            }
            if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
}

/// Whether the index reads this file (by its extension).
pub fn is_text_file(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    EXTENSIONS.contains(&ext.as_str())
}

/// Paragraphs (blank-line separated) gathered into passages of about
/// `PASSAGE_BYTES`; a Markdown heading starts a new passage, and a
/// paragraph longer than two passages (a file without blank lines) is cut
/// at whitespace into passages of that size, so no passage costs hundreds
/// of windows.
pub fn split_passages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let paragraphs = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .flat_map(|p| if p.len() > 2 * PASSAGE_BYTES { cut(p, PASSAGE_BYTES) } else { vec![p] });
    for para in paragraphs {
        let heading = para.starts_with('#');
        if !cur.is_empty() && (heading || cur.len() + para.len() > PASSAGE_BYTES) {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(para);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `text` in pieces of at most about `size` bytes, cut after whitespace
/// (or anywhere on a char boundary when a piece has none).
fn cut(mut text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    while text.len() > size {
        let mut end = size;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let at = text[..end].rfind(char::is_whitespace).filter(|&i| i > size / 2).map_or(end, |i| i + 1);
        out.push(text[..at].trim());
        text = text[at..].trim_start();
    }
    if !text.is_empty() {
        out.push(text);
    }
    out
}

/// This process's resident memory now and at its peak, in MiB (Linux).
pub fn memory_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kb| kb / 1024.0);
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_follow_paragraphs_and_headings() {
        let text = "# Title\n\nFirst para.\n\nSecond para.\n\n## Next\n\nThird.";
        assert_eq!(split_passages(text), ["# Title\n\nFirst para.\n\nSecond para.", "## Next\n\nThird."]);
        let long = format!("{}\n\n{}", "a".repeat(1500), "b".repeat(1500));
        assert_eq!(split_passages(&long).len(), 2);
        assert!(split_passages("  \n\n  ").is_empty());
        // One huge paragraph: cut at whitespace into passages of about PASSAGE_BYTES.
        let words = "lorem ipsum dolor sit amet ".repeat(1000);
        let parts = split_passages(&words);
        assert!(parts.len() >= 10 && parts.iter().all(|p| p.len() <= PASSAGE_BYTES && !p.ends_with(' ')), "{}", parts.len());
        assert_eq!(parts.concat().replace(' ', ""), words.replace(' ', ""));
        // Multi-byte text without whitespace is cut on char boundaries.
        assert!(split_passages(&"ü".repeat(5000)).iter().all(|p| p.chars().all(|c| c == 'ü')));
    }
}
