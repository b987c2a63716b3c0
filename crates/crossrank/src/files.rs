//! The names and sizes a checkpoint's files may have — one rule for the
//! loader, the Hub download and the quantizer (the npm package mirrors
//! it): JSON size cap, file names that cannot leave the checkpoint, the
//! shard index's list of files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// JSON files (config, tokenizer, shard index) larger than this are
/// refused before they are read: the largest real tokenizer.json files are
/// ~35 MB (Gemma's 256k vocabulary).
pub(crate) const MAX_JSON_BYTES: u64 = 64 << 20;

/// A file name inside a checkpoint, as an index or a caller names it: a
/// relative path of `/`-separated segments, none empty, `.` or `..`; no
/// `\`, no `:` (a scheme or a drive), no control characters, no leading
/// `/`. Checked before it reaches a URL or a path.
pub(crate) fn validate_file_name(name: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("file name {name:?} {why}"));
    if name.is_empty() || name.len() > 512 {
        return bad("is empty or too long");
    }
    if name.starts_with('/') {
        return bad("is an absolute path");
    }
    if name.contains('\\') || name.contains(':') || name.chars().any(char::is_control) {
        return bad("contains '\\', ':' or a control character");
    }
    if name.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return bad("has an empty, '.' or '..' segment");
    }
    Ok(())
}

/// The shard files a `model.safetensors.index.json` names (each once,
/// sorted), every name checked first: a relative path inside the
/// checkpoint ending in `.safetensors` (no `..`, no absolute path or URL,
/// no `\`), since natively it becomes a path and in the browser a URL.
pub(crate) fn shard_names(index: &[u8]) -> Result<Vec<String>> {
    const FILE: &str = "model.safetensors.index.json";
    let v: serde_json::Value = serde_json::from_slice(index).map_err(|e| Error::config(FILE, e))?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::config(FILE, "no \"weight_map\" object"))?;
    let mut files = Vec::with_capacity(map.len());
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| Error::config(FILE, format!("weight_map[{tensor:?}] is not a file name")))?;
        validate_file_name(file).map_err(|m| Error::config(FILE, m))?;
        if !file.ends_with(".safetensors") {
            return Err(Error::config(FILE, format!("shard {file:?} is not a .safetensors file")));
        }
        files.push(file.to_string());
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(Error::config(FILE, "\"weight_map\" lists no shard"));
    }
    Ok(files)
}

/// Write `bytes` to `path` through a temporary sibling (`.NAME.tmp-PID`),
/// synced, then renamed into place: a reader sees the old file or the new
/// one, never half of one. Creates the parent directory.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    written.and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A temporary directory beside the target (`NAME.crossrank-tmp-PID`), moved into place by
/// [`Staging::commit`] and removed if dropped before.
pub(crate) struct Staging {
    dir: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    pub(crate) fn new(target: &Path) -> Result<Self> {
        let name = target.file_name().ok_or_else(|| Error::InvalidInput(format!("--out {} has no directory name", target.display())))?;
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
        let mut tmp = name.to_owned();
        tmp.push(format!(".crossrank-tmp-{}", std::process::id()));
        let dir = parent.join(tmp);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
        }
        std::fs::create_dir(&dir).map_err(|e| Error::write(&dir, e))?;
        Ok(Self { dir, target: target.to_path_buf(), committed: false })
    }

    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::write(d, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| Error::write(path, e))
    }

    /// Swap the finished directory in: the old `out` (if any) is renamed
    /// aside, the new one renamed into place, then the old one removed.
    pub(crate) fn commit(mut self) -> Result<()> {
        let mut old = self.dir.as_os_str().to_owned();
        old.push("-old");
        let old = PathBuf::from(old);
        let had_target = self.target.exists();
        if had_target {
            std::fs::rename(&self.target, &old).map_err(|e| Error::write(&self.target, e))?;
        }
        if let Err(e) = std::fs::rename(&self.dir, &self.target) {
            if had_target {
                let _ = std::fs::rename(&old, &self.target);
            }
            return Err(Error::write(&self.target, e));
        }
        self.committed = true;
        if had_target {
            std::fs::remove_dir_all(&old).map_err(|e| Error::write(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Staging {
    /// The directory being filled.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}
