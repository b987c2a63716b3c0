//! Downloading a checkpoint from the Hugging Face Hub (or `HF_ENDPOINT`)
//! into hf-hub's standard cache, with a progress bar; see
//! `Checkpoint::resolve`.

use std::path::PathBuf;

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Repo, RepoType};

use crate::error::{Error, Result};

/// Files a checkpoint may have besides the weights; fetched when present.
const OPTIONAL: &[&str] =
    &["tokenizer_config.json", "special_tokens_map.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json"];

fn hub_err(repo: &str, file: &str, e: ApiError) -> Error {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    Error::Hub(format!("cannot download {file} of {repo} from {endpoint}: {e} (offline? pass a local checkpoint directory instead)"))
}

fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::RequestError(inner) if matches!(**inner, ureq::Error::Status(404, _)))
}

fn get_optional(api: &ApiRepo, repo: &str, file: &str) -> Result<Option<PathBuf>> {
    match api.get(file) {
        Ok(p) => Ok(Some(p)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(hub_err(repo, file, e)),
    }
}

/// Download a checkpoint's files; returns the snapshot directory.
pub(crate) fn download(repo: &str, revision: &str, progress: bool) -> Result<PathBuf> {
    let api = ApiBuilder::from_env().with_progress(progress).build().map_err(|e| Error::Hub(e.to_string()))?;
    let api = api.repo(Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string()));
    let config = api.get("config.json").map_err(|e| hub_err(repo, "config.json", e))?;
    let dir = config.parent().ok_or_else(|| Error::Hub("hf-hub returned a path without a parent".into()))?.to_path_buf();
    api.get("tokenizer.json").map_err(|e| hub_err(repo, "tokenizer.json", e))?;
    for f in OPTIONAL {
        get_optional(&api, repo, f)?;
    }
    if get_optional(&api, repo, "model.safetensors")?.is_none() {
        let index = get_optional(&api, repo, "model.safetensors.index.json")?
            .ok_or_else(|| Error::Hub(format!("{repo} has neither model.safetensors nor model.safetensors.index.json")))?;
        let text = std::fs::read(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::config("model.safetensors.index.json", e))?;
        let mut shards: Vec<String> = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| m.values().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        for s in shards {
            api.get(&s).map_err(|e| hub_err(repo, &s, e))?;
        }
    }
    Ok(dir)
}
