//! Downloading a checkpoint from the Hugging Face Hub (or an `HF_ENDPOINT`
//! mirror) into the standard Hugging Face cache — `models--owner--name/`
//! with `blobs/`, `snapshots/<commit>/` (links into blobs) and
//! `refs/<revision>` — so the Python libraries and crossrank share it; see
//! `Checkpoint::resolve`.
//!
//! A small client of our own on ureq, not hf-hub 0.4.3: hf-hub used what
//! the server sends as path components without a check — `weight_map`
//! values of a sharded index (`/abs/x.safetensors` and `../../x` wrote
//! outside the cache, the latter then panicked), the `ETag` (an ETag of
//! `/tmp/victim.txt` overwrote that file) and `x-repo-commit` — and
//! panicked on a redirect without `Location`. Here every file name is
//! checked before any request, every header value before it names a path,
//! and each file is written to a temporary name and renamed into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::files::{MAX_JSON_BYTES, shard_names, validate_file_name, write_atomically};

/// Files a checkpoint may have besides the weights; fetched when present.
const OPTIONAL: &[&str] =
    &["tokenizer_config.json", "special_tokens_map.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json", "config_sentence_transformers.json"];

/// Redirects followed between repos (renamed repos answer with a relative
/// one) before giving up.
const MAX_REDIRECTS: usize = 5;

fn hub_err(message: impl std::fmt::Display) -> Error {
    Error::Hub(message.to_string())
}

/// `owner/name`: two segments of letters, digits, `-`, `_`, `.`, not
/// starting with `.` or `-`, as the Hub allows.
pub(crate) fn validate_repo_id(repo: &str) -> Result<()> {
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s.len() <= 96
            && !s.starts_with(['.', '-'])
            && !s.contains("..")
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((owner, name)) if ok_segment(owner) && ok_segment(name) => Ok(()),
        _ => Err(hub_err(format!("{repo:?} is not a Hugging Face repo id (owner/name of letters, digits, '-', '_', '.')"))),
    }
}

/// A revision: a branch, tag or commit (`refs/pr/1` too): `/`-separated
/// segments of letters, digits, `-`, `_`, `.`, none empty, `.` or `..`.
fn validate_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 256
        && rev.split('/').all(|s| {
            !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if ok { Ok(()) } else { Err(hub_err(format!("{rev:?} is not a revision (a branch, tag or commit hash)"))) }
}

/// An ETag as a blob name: quotes and a weak `W/` prefix removed; then only
/// letters, digits, `-` and `_` (the Hub sends a sha256 or a git sha1).
fn etag_component(raw: &str) -> Result<String> {
    let e = raw.trim().trim_start_matches("W/").trim_matches('"');
    if e.is_empty() || e.len() > 128 || !e.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
        return Err(hub_err(format!("the server sent an ETag {raw:?} that cannot name a cached file")));
    }
    Ok(e.to_string())
}

/// A commit hash as a snapshot directory name: 40 hex digits.
fn commit_component(raw: &str) -> Result<String> {
    let c = raw.trim();
    if c.len() != 40 || !c.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Err(hub_err(format!("the server sent a commit {raw:?} that is not a 40-digit hash")));
    }
    Ok(c.to_ascii_lowercase())
}

/// Percent-encode a path for a URL (each segment; `/` kept unless `slash`).
fn url_path(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the Hub says about one file of a revision.
struct FileMeta {
    commit: String,
    etag: String,
    /// Where its bytes are (the resolve URL itself, or a CDN's).
    url: String,
    size: Option<u64>,
}

/// How a download reports: not at all, a terminal bar, or to the caller.
pub(crate) enum Progress {
    Silent,
    Bar,
    Callback(Box<dyn Fn(&DownloadProgress) + Send + Sync>),
}

/// Where a Hub download stands ([`crate::Checkpoint::resolve_with_progress`]):
/// the file being fetched and its bytes so far (files already cached are
/// not reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadProgress {
    /// The file being downloaded.
    pub file: String,
    /// Bytes received so far.
    pub bytes: u64,
    /// The file's size, when the server says.
    pub total: Option<u64>,
}

/// One download session for `repo@revision`.
struct Session {
    agent: ureq::Agent,
    endpoint: String,
    token: Option<String>,
    repo: String,
    revision: String,
    /// `<cache>/models--owner--name`.
    root: PathBuf,
    progress: Progress,
    offline: bool,
    /// The commit every file of this session comes from.
    commit: Option<String>,
    /// Whether cached files may answer without asking the server.
    use_cache: bool,
}

/// Signals that the revision moved on the server while files were being
/// taken from the cache: start again from the server.
struct Moved;

impl Session {
    fn new(repo: &str, revision: &str, progress: Progress) -> Result<Self> {
        validate_repo_id(repo)?;
        validate_revision(revision)?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let hf_home = env("HF_HOME").map(PathBuf::from).or_else(|| {
            env("XDG_CACHE_HOME")
                .map(|x| PathBuf::from(x).join("huggingface"))
                .or_else(|| env("HOME").or_else(|| env("USERPROFILE")).map(|h| PathBuf::from(h).join(".cache").join("huggingface")))
        });
        let cache = env("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| hf_home.as_ref().map(|h| h.join("hub")))
            .ok_or_else(|| hub_err("no cache directory: set HF_HOME or HF_HUB_CACHE"))?;
        let token = env("HF_TOKEN").or_else(|| {
            let file = hf_home.as_ref()?.join("token");
            std::fs::read_to_string(file).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        let endpoint = env("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()).trim_end_matches('/').to_string();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(hub_err(format!("HF_ENDPOINT {endpoint:?} is not an http(s) URL")));
        }
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("crossrank/", env!("CARGO_PKG_VERSION")))
            .build();
        let commit = commit_component(revision).ok();
        Ok(Self {
            agent,
            endpoint,
            token,
            repo: repo.to_string(),
            revision: revision.to_string(),
            root: cache.join(format!("models--{}", repo.replace('/', "--"))),
            progress,
            offline: env("HF_HUB_OFFLINE").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
            commit,
            use_cache: true,
        })
    }

    fn context(&self, file: &str, e: impl std::fmt::Display) -> Error {
        hub_err(format!(
            "cannot download {file} of {} from {}: {e} (offline? pass a local checkpoint directory instead)",
            self.repo, self.endpoint
        ))
    }

    /// The commit `refs/<revision>` names in the cache, if any.
    fn cached_commit(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.root.join("refs").join(&self.revision)).ok()?;
        commit_component(&text).ok()
    }

    fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// The path of `file` in the cache, downloaded if needed; `None` when
    /// the repo has no such file (404).
    fn get(&mut self, file: &str) -> Result<std::result::Result<Option<PathBuf>, Moved>> {
        validate_file_name(file).map_err(|m| self.context(file, m))?;
        if self.use_cache {
            if self.commit.is_none() {
                self.commit = self.cached_commit();
            }
            if let Some(commit) = &self.commit {
                let p = self.snapshot(commit).join(file);
                if p.is_file() {
                    return Ok(Ok(Some(p)));
                }
                // The Hub cache's record that this commit has no such file.
                if self.root.join(".no_exist").join(commit).join(file).is_file() {
                    return Ok(Ok(None));
                }
            }
        }
        if self.offline {
            return Err(self.context(file, "HF_HUB_OFFLINE is set and the file is not in the cache"));
        }
        let Some(meta) = self.metadata(file)? else {
            if let Some(commit) = &self.commit {
                let marker = self.root.join(".no_exist").join(commit).join(file);
                write_atomically(&marker, b"").map_err(|e| Error::write(&marker, e))?;
            }
            return Ok(Ok(None));
        };
        match &self.commit {
            Some(c) if *c != meta.commit => {
                if self.use_cache {
                    return Ok(Err(Moved));
                }
                return Err(self.context(file, format!("the revision moved from {c} to {} during the download; try again", meta.commit)));
            }
            _ => self.commit = Some(meta.commit.clone()),
        }
        let blob = self.root.join("blobs").join(&meta.etag);
        if !blob.is_file() {
            self.fetch(file, &meta, &blob)?;
        }
        let pointer = self.snapshot(&meta.commit).join(file);
        link(&blob, &pointer).map_err(|e| Error::write(&pointer, e))?;
        if meta.commit != self.revision {
            let r = self.root.join("refs").join(&self.revision);
            write_atomically(&r, meta.commit.as_bytes()).map_err(|e| Error::write(&r, e))?;
        }
        Ok(Ok(Some(pointer)))
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let req = self.agent.request(method, url);
        // The token goes to the endpoint only, never to a CDN it redirects to.
        match &self.token {
            Some(t) if url.starts_with(&format!("{}/", self.endpoint)) => req.set("Authorization", &format!("Bearer {t}")),
            _ => req,
        }
    }

    /// Ask for `file`'s commit, ETag and location without downloading it.
    fn metadata(&self, file: &str) -> Result<Option<FileMeta>> {
        let mut url = format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            url_path(&self.repo, true),
            url_path(&self.revision, false),
            url_path(file, true)
        );
        for _ in 0..=MAX_REDIRECTS {
            let resp = match self.request("HEAD", &url).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(404, _)) => return Ok(None),
                Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                    return Err(self.context(file, format!("HTTP {code}: a gated or private repo needs HF_TOKEN")));
                }
                Err(e) => return Err(self.context(file, e)),
            };
            let header = |h: &str| resp.header(h).map(str::to_string);
            let status = resp.status();
            if (300..400).contains(&status) {
                let location =
                    header("location").ok_or_else(|| self.context(file, format!("HTTP {status} redirect without a Location header")))?;
                if location.starts_with('/') {
                    // A renamed repo: the same question at its new path.
                    url = format!("{}{location}", self.endpoint);
                    continue;
                }
                if !(location.starts_with("https://") || location.starts_with("http://")) {
                    return Err(self.context(file, format!("redirect to {location:?}, which is not an http(s) URL")));
                }
                return self.meta_from(file, &header, location).map(Some);
            }
            if status != 200 {
                return Err(self.context(file, format!("HTTP {status}")));
            }
            return self.meta_from(file, &header, url).map(Some);
        }
        Err(self.context(file, format!("more than {MAX_REDIRECTS} redirects")))
    }

    fn meta_from(&self, file: &str, header: &dyn Fn(&str) -> Option<String>, url: String) -> Result<FileMeta> {
        let commit = header("x-repo-commit").ok_or_else(|| self.context(file, "no x-repo-commit header (not a Hub server?)"))?;
        let etag = header("x-linked-etag").or_else(|| header("etag")).ok_or_else(|| self.context(file, "no ETag header"))?;
        let size = header("x-linked-size").or_else(|| header("content-length")).and_then(|s| s.parse().ok());
        Ok(FileMeta { commit: commit_component(&commit)?, etag: etag_component(&etag)?, url, size })
    }

    /// Download `meta.url` into `blob` through a temporary file.
    fn fetch(&self, file: &str, meta: &FileMeta, blob: &Path) -> Result<()> {
        let limit = if file.ends_with(".json") { Some(MAX_JSON_BYTES) } else { None };
        if let (Some(l), Some(s)) = (limit, meta.size)
            && s > l
        {
            return Err(self.context(file, format!("{} MB is over the {} MB limit for a JSON file", s >> 20, l >> 20)));
        }
        let mut url = meta.url.clone();
        let resp = loop {
            match self.request("GET", &url).call() {
                Ok(r) if (300..400).contains(&r.status()) => {
                    let loc = r.header("location").ok_or_else(|| self.context(file, "redirect without a Location header"))?;
                    url = if loc.starts_with('/') {
                        let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                        format!("{origin}{loc}")
                    } else if loc.starts_with("https://") || loc.starts_with("http://") {
                        loc.to_string()
                    } else {
                        return Err(self.context(file, format!("redirect to {loc:?}, which is not an http(s) URL")));
                    };
                    if url == meta.url {
                        return Err(self.context(file, "redirect loop"));
                    }
                }
                Ok(r) => break r,
                Err(e) => return Err(self.context(file, e)),
            }
        };
        let dir = blob.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        let tmp = blob.with_extension(format!("incomplete-{}", std::process::id()));
        let bar = matches!(self.progress, Progress::Bar).then(|| {
            let bar = indicatif::ProgressBar::new(meta.size.unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(file.to_string());
            bar
        });
        let result = (|| -> Result<()> {
            let mut out = std::fs::File::create(&tmp).map_err(|e| Error::write(&tmp, e))?;
            let mut reader = resp.into_reader().take(limit.map_or(u64::MAX, |l| l + 1));
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            loop {
                let n = reader.read(&mut buf).map_err(|e| self.context(file, e))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if limit.is_some_and(|l| total > l) {
                    return Err(self.context(file, "over the 64 MB limit for a JSON file"));
                }
                out.write_all(&buf[..n]).map_err(|e| Error::write(&tmp, e))?;
                if let Some(b) = &bar {
                    b.inc(n as u64);
                }
                if let Progress::Callback(f) = &self.progress {
                    f(&DownloadProgress { file: file.to_string(), bytes: total, total: meta.size });
                }
            }
            if let Some(s) = meta.size.filter(|&s| s != total) {
                return Err(self.context(file, format!("got {total} bytes of {s}: the connection broke")));
            }
            out.sync_all().map_err(|e| Error::write(&tmp, e))?;
            std::fs::rename(&tmp, blob).map_err(|e| Error::write(blob, e))
        })();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Point `pointer` at `blob`: a relative link as the Hub cache has them
/// (a copy where links are unavailable), replacing what was there.
fn link(blob: &Path, pointer: &Path) -> std::io::Result<()> {
    let dir = pointer.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = pointer.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    {
        // snapshots/<commit>/<a/b/file> -> ../../(../)blobs/<etag>
        let up =
            pointer.parent().and_then(|p| p.strip_prefix(blob.parent()?.parent()?).ok()).map(|rel| rel.components().count()).unwrap_or(0);
        let mut target = PathBuf::new();
        for _ in 0..up {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().unwrap_or_default());
        std::os::unix::fs::symlink(&target, &tmp)?;
    }
    #[cfg(not(unix))]
    std::fs::copy(blob, &tmp).map(|_| ())?;
    std::fs::rename(&tmp, pointer).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Download a checkpoint's files; returns the snapshot directory.
pub(crate) fn download(repo: &str, revision: &str, progress: Progress) -> Result<PathBuf> {
    let mut s = Session::new(repo, revision, progress)?;
    match fetch_all(&mut s)? {
        Ok(dir) => Ok(dir),
        Err(Moved) => {
            // The cached revision is stale: everything again from the
            // server (blobs already cached by ETag are not downloaded).
            s.use_cache = false;
            s.commit = commit_component(revision).ok();
            fetch_all(&mut s)?.map_err(|Moved| hub_err("the revision moved during the download; try again"))
        }
    }
}

fn fetch_all(s: &mut Session) -> Result<std::result::Result<PathBuf, Moved>> {
    macro_rules! get {
        ($f:expr) => {
            match s.get($f)? {
                Ok(p) => p,
                Err(Moved) => return Ok(Err(Moved)),
            }
        };
    }
    let required = |s: &Session, f: &str, p: Option<PathBuf>| p.ok_or_else(|| s.context(f, "HTTP 404: not in the repo"));
    let config = get!("config.json");
    required(s, "config.json", config)?;
    let tok = get!("tokenizer.json");
    required(s, "tokenizer.json", tok)?;
    for f in OPTIONAL {
        get!(f);
    }
    if get!("model.safetensors").is_none() {
        let index = get!("model.safetensors.index.json")
            .ok_or_else(|| hub_err(format!("{} has neither model.safetensors nor model.safetensors.index.json", s.repo)))?;
        let bytes = std::fs::read(&index).map_err(|e| Error::io(&index, e))?;
        // Every shard name is checked before the first request for one.
        for shard in shard_names(&bytes)? {
            get!(&shard);
        }
    }
    let commit = s.commit.clone().ok_or_else(|| hub_err("no commit for the downloaded files"))?;
    Ok(Ok(s.snapshot(&commit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_cache_are_refused() {
        for bad in ["/abs/x.safetensors", "../../x.safetensors", "a/../b", "a//b", "./a", "a\\b", "C:x", "https://e/x", "", "a\nb"] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["model.safetensors", "1_Pooling/config.json", "model-00001-of-00002.safetensors"] {
            assert!(validate_file_name(ok).is_ok(), "{ok:?}");
        }
        for bad in ["/tmp/victim.txt", "\"../x\"", "a b", ""] {
            assert!(etag_component(bad).is_err(), "{bad:?}");
        }
        assert_eq!(etag_component("W/\"abc123\"").unwrap(), "abc123");
        assert!(commit_component("../../../../tmp").is_err());
        assert!(
            validate_repo_id("../x").is_err() && validate_repo_id("a/b/c").is_err() && validate_repo_id("BAAI/bge-reranker-v2-m3").is_ok()
        );
        assert!(validate_revision("refs/pr/1").is_ok() && validate_revision("../main").is_err() && validate_revision("a//b").is_err());
    }

    #[test]
    fn links_are_relative_into_blobs() {
        let d = tempfile::tempdir().unwrap();
        let blob = d.path().join("blobs/abc");
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, "x").unwrap();
        let pointer = d.path().join("snapshots/c0/1_Pooling/config.json");
        link(&blob, &pointer).unwrap();
        assert_eq!(std::fs::read_to_string(&pointer).unwrap(), "x");
        #[cfg(unix)]
        assert_eq!(std::fs::read_link(&pointer).unwrap(), Path::new("../../../blobs/abc"));
    }
}
