//! `crossrank rerank`: one query, documents one per line → ranked.

use anyhow::Result;
use clap::Args;
use crossrank::{Reranker, ScoreOptions};

use super::{ModelArgs, print_json, read_input};

#[derive(Args)]
pub struct RerankArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    score: ScoreOptions,
    /// The query.
    #[arg(long)]
    query: String,
    /// File with one document per line; `-` for stdin.
    #[arg(long, default_value = "-")]
    docs: String,
    /// Keep only the K best.
    #[arg(long)]
    top_k: Option<usize>,
}

/// One ranked document; with --long-passages maxp also its best window,
/// in code points of its line.
#[derive(serde::Serialize)]
struct Line {
    index: usize,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<crossrank::Window>,
}

pub fn run(a: RerankArgs) -> Result<()> {
    let text = read_input(&a.docs)?;
    let docs: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let (ck, dev, dtype) = a.model.open()?;
    let r = Reranker::load_with_dtype(&ck, &dev.device, dtype)?;
    let ranked = r.rerank_passages(&a.query, &docs, a.top_k, &a.score)?;
    let lines: Vec<Line> =
        ranked.iter().map(|(k, p)| Line { index: k.index, score: k.score, window: p.char_window(docs[k.index]) }).collect();
    print_json(&lines)
}
