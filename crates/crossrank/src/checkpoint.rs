//! A Hugging Face checkpoint's files: a directory on disk (weights
//! memory-mapped with the `mmap` feature), an in-memory map of them (the
//! browser has no file system), or a Hub repo id resolved to a directory.
//! File access only: what the weights mean is `crate::weights`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::files::{MAX_JSON_BYTES, shard_names};

/// Where the files of a checkpoint come from.
#[derive(Debug, Clone)]
pub enum Checkpoint {
    /// A local directory laid out as on the Hub.
    Dir(PathBuf),
    /// File name → contents, e.g. fetched by JavaScript; shared, so the
    /// weights are never copied out of it (the browser's 4 GiB hold one
    /// copy of the file, not two).
    Memory(HashMap<String, Arc<Vec<u8>>>),
}

impl Checkpoint {
    /// A checkpoint directory on disk.
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        Checkpoint::Dir(path.into())
    }

    /// A checkpoint held in memory: file name → bytes.
    pub fn memory(files: HashMap<String, Vec<u8>>) -> Self {
        Checkpoint::Memory(files.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }

    pub(crate) fn location(&self) -> String {
        match self {
            Checkpoint::Dir(p) => p.display().to_string(),
            Checkpoint::Memory(_) => "<memory>".into(),
        }
    }

    /// Contents of `name`, or `None` when the checkpoint has no such file.
    pub(crate) fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Checkpoint::Dir(dir) => {
                let path = dir.join(name);
                let limit = name.ends_with(".json").then_some(MAX_JSON_BYTES);
                if !regular_file(&path, limit)? {
                    return Ok(None);
                }
                std::fs::read(&path).map(Some).map_err(|e| Error::io(path, e))
            }
            Checkpoint::Memory(files) => Ok(files.get(name).map(|b| b.to_vec())),
        }
    }

    /// Names of the checkpoint's files (top level; sorted).
    pub(crate) fn files(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = match self {
            Checkpoint::Dir(dir) => std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir.clone(), e))?
                .filter_map(|e| e.ok())
                // Following links: a Hub snapshot is a directory of them.
                .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Checkpoint::Memory(files) => files.keys().cloned().collect(),
        };
        out.sort();
        Ok(out)
    }

    /// Size in bytes of the file `name`, without reading it.
    pub(crate) fn file_len(&self, name: &str) -> Result<u64> {
        match self {
            Checkpoint::Dir(dir) => {
                let path = dir.join(name);
                std::fs::metadata(&path).map(|m| m.len()).map_err(|e| Error::io(path, e))
            }
            Checkpoint::Memory(files) => files
                .get(name)
                .map(|b| b.len() as u64)
                .ok_or_else(|| Error::MissingFile { file: name.to_string(), location: self.location() }),
        }
    }

    /// Contents of `name`; a typed error when it is absent.
    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.read_optional(name)?.ok_or_else(|| Error::MissingFile { file: name.to_string(), location: self.location() })
    }

    /// Parse a JSON file of the checkpoint, if present.
    pub(crate) fn read_json(&self, name: &str) -> Result<Option<serde_json::Value>> {
        match self.read_optional(name)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::config(name, e)),
        }
    }

    /// A weights file: memory-mapped from a directory (feature `mmap`),
    /// else read into memory.
    pub(crate) fn read_weights_file(&self, name: &str) -> Result<Option<ShardBytes>> {
        #[cfg(feature = "mmap")]
        if let Checkpoint::Dir(dir) = self {
            let path = dir.join(name);
            if !regular_file(&path, None)? {
                return Ok(None);
            }
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            // SAFETY: the map is read-only and private to this process; a
            // checkpoint file truncated by another process while we load is
            // outside what any loader can defend against.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            return Ok(Some(ShardBytes::Mapped(map)));
        }
        if let Checkpoint::Memory(files) = self {
            return Ok(files.get(name).map(|b| ShardBytes::Shared(b.clone())));
        }
        Ok(self.read_optional(name)?.map(ShardBytes::Owned))
    }

    /// The safetensors files of the weights, each as (name, bytes):
    /// `model.safetensors`, or the shards `model.safetensors.index.json`
    /// lists (each once, sorted).
    pub(crate) fn weight_files(&self) -> Result<Vec<(String, ShardBytes)>> {
        if let Some(bytes) = self.read_weights_file("model.safetensors")? {
            return Ok(vec![("model.safetensors".into(), bytes)]);
        }
        let Some(index) = self.read_optional("model.safetensors.index.json")? else {
            return Err(Error::MissingFile {
                file: "model.safetensors (or model.safetensors.index.json)".into(),
                location: self.location(),
            });
        };
        shard_names(&index)?
            .into_iter()
            .map(|f| {
                let bytes = self.read_weights_file(&f)?.ok_or_else(|| Error::MissingFile { file: f.clone(), location: self.location() })?;
                Ok((f, bytes))
            })
            .collect()
    }

    /// Resolve a model spec: an existing local directory as it is, or a
    /// Hugging Face repo id `owner/name[@revision]`, downloaded into
    /// hf-hub's standard cache (`HF_HOME`, `HF_ENDPOINT` honoured) with a
    /// progress bar when `progress` (feature `hub`).
    pub fn resolve(spec: &str, progress: bool) -> Result<Checkpoint> {
        #[cfg(feature = "hub")]
        let progress = if progress { crate::hub::Progress::Bar } else { crate::hub::Progress::Silent };
        Self::resolve_inner(spec, progress)
    }

    /// [`Checkpoint::resolve`], reporting a download to `on_progress` (file,
    /// bytes so far, size) instead of a terminal bar: for an application's
    /// own progress display.
    #[cfg(feature = "hub")]
    pub fn resolve_with_progress(
        spec: &str,
        on_progress: impl Fn(&crate::hub::DownloadProgress) + Send + Sync + 'static,
    ) -> Result<Checkpoint> {
        Self::resolve_inner(spec, crate::hub::Progress::Callback(Box::new(on_progress)))
    }

    fn resolve_inner(
        spec: &str,
        #[cfg(feature = "hub")] progress: crate::hub::Progress,
        #[cfg(not(feature = "hub"))] progress: bool,
    ) -> Result<Checkpoint> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(Checkpoint::dir(path));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (spec, "main"),
        };
        let looks_like_repo = repo.split('/').count() == 2 && !repo.starts_with('.') && !repo.starts_with('/');
        if !looks_like_repo || path.exists() {
            return Err(Error::MissingFile {
                file: "config.json".into(),
                location: format!("{spec} (not a directory, nor a Hugging Face repo id like BAAI/bge-reranker-base)"),
            });
        }
        #[cfg(feature = "hub")]
        return crate::hub::download(repo, revision, progress).map(Checkpoint::Dir);
        #[cfg(not(feature = "hub"))]
        {
            let _ = (revision, progress);
            Err(Error::Hub(format!("{spec}: this build of crossrank cannot download from the Hub (feature \"hub\")")))
        }
    }
}

/// Whether `path` (links followed) is a regular file of at most `limit`
/// bytes; `false` when there is nothing there. Anything else —
/// a FIFO (reading one blocks forever), a device (`/dev/zero` never ends),
/// a directory, an oversized JSON file — is a typed error before a read.
fn regular_file(path: &Path, limit: Option<u64>) -> Result<bool> {
    let refuse = |why: String| Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, why)));
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
        Ok(m) if !m.is_file() => refuse("not a regular file (a FIFO, a device or a directory)".into()),
        Ok(m) if limit.is_some_and(|l| m.len() > l) => {
            refuse(format!("{} MB is over the {} MB limit for a JSON file", m.len() >> 20, limit.unwrap_or(0) >> 20))
        }
        Ok(_) => Ok(true),
    }
}

/// The bytes of one safetensors file.
pub(crate) enum ShardBytes {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
    #[cfg(feature = "mmap")]
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for ShardBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ShardBytes::Owned(v) => v,
            ShardBytes::Shared(v) => v,
            #[cfg(feature = "mmap")]
            ShardBytes::Mapped(m) => m,
        }
    }
}
