//! Evaluation data: the BEIR layout and FlagEmbedding's local layout, and
//! TREC run files.
//!
//! - BEIR: `corpus.jsonl` `{"_id", "title", "text"}`, `queries.jsonl`
//!   `{"_id", "text"}`, `qrels/{split}.tsv` (`query-id corpus-id score`,
//!   with its header line).
//! - FlagEmbedding (`AbsEvalDataLoader`'s local files): `corpus.jsonl`
//!   `{"id", "title", "text"}`, `{split}_queries.jsonl` `{"id", "text"}`,
//!   `{split}_qrels.jsonl` `{"qid", "docid", "relevance"}`.
//!
//! A document's text is FlagEmbedding's: `"{title} {text}".strip()`. Only
//! the split's judged queries are kept (BEIR's loader and FlagEmbedding's do
//! the same). Every text is held once: the corpus keeps one string per
//! document and an id → index map.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::metrics::{Qrels, Run, trec_order};
use crate::error::{Error, Result};

/// The documents, in file order.
#[derive(Default)]
pub struct Corpus {
    ids: Vec<String>,
    texts: Vec<String>,
    index: HashMap<String, usize>,
}

impl Corpus {
    /// Documents in the corpus.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether the corpus has no document.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The index of document `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    /// Document `i`'s id.
    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }
    /// Document `i`'s text (title and body, as FlagEmbedding joins them).
    pub fn text(&self, i: usize) -> &str {
        &self.texts[i]
    }
    /// Document `id`'s text.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.position(id).map(|i| self.texts[i].as_str())
    }
    /// Every document's text, in corpus order.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }
    /// Add a document; a repeated id is an error (which text would count?).
    pub fn push(&mut self, id: String, text: String) -> std::result::Result<(), String> {
        if self.index.contains_key(&id) {
            return Err(format!("document id {id:?} appears twice"));
        }
        self.index.insert(id.clone(), self.ids.len());
        self.ids.push(id);
        self.texts.push(text);
        Ok(())
    }
}

/// A dataset split: the corpus, the judged queries (id, text) in file
/// order, and their judgments.
pub struct Dataset {
    /// The documents.
    pub corpus: Corpus,
    /// The split's judged queries: (id, text), in file order.
    pub queries: Vec<(String, String)>,
    /// The split's judgments.
    pub qrels: Qrels,
    /// "beir" or "flagembedding".
    pub layout: &'static str,
}

/// Ids are strings; some BEIR-style files write numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    S(String),
    N(serde_json::Number),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::S(s) => s,
            Id::N(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct DocLine {
    #[serde(alias = "_id")]
    id: Id,
    #[serde(default)]
    title: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct QueryLine {
    #[serde(alias = "_id")]
    id: Id,
    text: String,
}

#[derive(Deserialize)]
struct QrelLine {
    qid: Id,
    docid: Id,
    relevance: i64,
}

fn bad(path: &Path, line: usize, message: impl std::fmt::Display) -> Error {
    Error::Dataset { file: path.display().to_string(), message: format!("line {line}: {message}") }
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>> {
    let f = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    Ok(BufReader::new(f))
}

/// Each non-blank line of a file, numbered from 1, streamed.
fn each_line(path: &Path, mut f: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    let mut reader = open(path)?;
    let mut line = String::new();
    let mut n = 0;
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        let l = line.trim_end_matches(['\n', '\r']);
        if !l.trim().is_empty() {
            f(n, l)?;
        }
    }
}

/// FlagEmbedding's document text: `"{title} {text}".strip()`.
pub fn document_text(title: Option<&str>, text: &str) -> String {
    let joined = format!("{} {}", title.unwrap_or(""), text);
    joined.trim().to_string()
}

/// Read `corpus.jsonl` (either layout's fields).
pub fn read_corpus(path: &Path) -> Result<Corpus> {
    let mut corpus = Corpus::default();
    each_line(path, |n, l| {
        let d: DocLine =
            serde_json::from_str(l).map_err(|e| bad(path, n, format!("expected {{\"_id\" or \"id\", \"title\", \"text\"}}: {e}")))?;
        corpus.push(d.id.into_string(), document_text(d.title.as_deref(), &d.text)).map_err(|e| bad(path, n, e))
    })?;
    Ok(corpus)
}

fn read_queries(path: &Path) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    each_line(path, |n, l| {
        let q: QueryLine = serde_json::from_str(l).map_err(|e| bad(path, n, format!("expected {{\"_id\" or \"id\", \"text\"}}: {e}")))?;
        let id = q.id.into_string();
        if out.insert(id.clone(), q.text).is_some() {
            return Err(bad(path, n, format!("query id {id:?} appears twice")));
        }
        Ok(())
    })?;
    Ok(out)
}

fn relevance(path: &Path, n: usize, v: i64) -> Result<i32> {
    i32::try_from(v).map_err(|_| bad(path, n, format!("relevance {v} out of range")))
}

/// BEIR's `qrels/{split}.tsv`: a header, then `query-id corpus-id score`.
pub fn read_qrels_tsv(path: &Path) -> Result<Qrels> {
    let mut qrels = Qrels::new();
    let mut first = true;
    each_line(path, |n, l| {
        let cols: Vec<&str> = l.split('\t').collect();
        if std::mem::take(&mut first) && cols.get(2).is_some_and(|c| c.trim().parse::<i64>().is_err()) {
            return Ok(()); // the header
        }
        let [q, d, s] = cols[..] else { return Err(bad(path, n, "expected query-id<TAB>corpus-id<TAB>score")) };
        let s: i64 = s.trim().parse().map_err(|_| bad(path, n, format!("score {s:?} is not an integer")))?;
        qrels.entry(q.trim().to_string()).or_default().insert(d.trim().to_string(), relevance(path, n, s)?);
        Ok(())
    })?;
    Ok(qrels)
}

/// FlagEmbedding's `{split}_qrels.jsonl`: `{"qid", "docid", "relevance"}`.
pub fn read_qrels_jsonl(path: &Path) -> Result<Qrels> {
    let mut qrels = Qrels::new();
    each_line(path, |n, l| {
        let r: QrelLine =
            serde_json::from_str(l).map_err(|e| bad(path, n, format!("expected {{\"qid\", \"docid\", \"relevance\"}}: {e}")))?;
        qrels.entry(r.qid.into_string()).or_default().insert(r.docid.into_string(), relevance(path, n, r.relevance)?);
        Ok(())
    })?;
    Ok(qrels)
}

/// Load split `split` of the dataset in `dir`, whichever layout it has.
pub fn load(dir: &Path, split: &str) -> Result<Dataset> {
    if split.is_empty() || split.starts_with('.') || !split.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err(Error::InvalidInput(format!("invalid split name {split:?}: letters, digits, _ - . only")));
    }
    let corpus_path = dir.join("corpus.jsonl");
    let beir_qrels = dir.join("qrels").join(format!("{split}.tsv"));
    let flag_qrels = dir.join(format!("{split}_qrels.jsonl"));
    let (layout, qrels, queries_path): (&'static str, Qrels, PathBuf) = if beir_qrels.is_file() {
        ("beir", read_qrels_tsv(&beir_qrels)?, dir.join("queries.jsonl"))
    } else if flag_qrels.is_file() {
        ("flagembedding", read_qrels_jsonl(&flag_qrels)?, dir.join(format!("{split}_queries.jsonl")))
    } else {
        return Err(Error::Dataset {
            file: dir.display().to_string(),
            message: format!(
                "no judgments for split {split:?}: expected qrels/{split}.tsv (BEIR) or {split}_qrels.jsonl (FlagEmbedding) with corpus.jsonl"
            ),
        });
    };
    let all_queries = read_queries(&queries_path)?;
    let corpus = read_corpus(&corpus_path)?;
    // The split's judged queries, in a stable order (by id), each with text.
    let mut ids: Vec<&String> = qrels.keys().collect();
    ids.sort();
    let mut queries = Vec::with_capacity(ids.len());
    for id in ids {
        let text = all_queries.get(id).ok_or_else(|| Error::Dataset {
            file: queries_path.display().to_string(),
            message: format!("query {id:?} is judged in the qrels but has no text"),
        })?;
        queries.push((id.clone(), text.clone()));
    }
    Ok(Dataset { corpus, queries, qrels, layout })
}

/// A TREC run file: `qid Q0 docid rank score tag` per line (whitespace
/// separated; rank and tag are ignored: trec_eval ranks by score). A
/// document listed twice for one query is an error, as in trec_eval.
pub fn read_run(path: &Path) -> Result<Run> {
    let mut run = Run::new();
    let mut seen: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    each_line(path, |n, l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let [q, _, d, _, s, ..] = cols[..] else { return Err(bad(path, n, "expected qid Q0 docid rank score tag")) };
        let score: f64 = s.parse().map_err(|_| bad(path, n, format!("score {s:?} is not a number")))?;
        if !score.is_finite() {
            return Err(bad(path, n, format!("score {s:?} is not finite")));
        }
        if !seen.entry(q.to_string()).or_default().insert(d.to_string()) {
            return Err(bad(path, n, format!("document {d:?} listed twice for query {q:?}")));
        }
        run.entry(q.to_string()).or_default().push((d.to_string(), score));
        Ok(())
    })?;
    Ok(run)
}

/// Write `run` as a TREC run file, each query's documents in trec_eval's
/// order, ranks from 1, queries sorted by id; written to a temporary file
/// and renamed into place.
pub fn write_run(path: &Path, run: &Run, tag: &str) -> Result<()> {
    let mut out = String::new();
    let mut qids: Vec<&String> = run.keys().collect();
    qids.sort();
    for q in qids {
        for (rank, (d, s)) in trec_order(&run[q]).into_iter().enumerate() {
            out.push_str(&format!("{q} Q0 {d} {} {s} {tag}\n", rank + 1));
        }
    }
    write_atomic(path, out.as_bytes())
}

/// Write through a temporary file beside `path`, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_atomically(path, bytes).map_err(|e| Error::write(path, e))
}
