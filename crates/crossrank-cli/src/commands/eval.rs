//! `crossrank eval`: rerank a first stage's top-k of a judged dataset and
//! report both rankings (the library's `eval::Report`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use crossrank::eval::{Report, data, pipeline};
use crossrank::{Reranker, ScoreOptions};

use super::{ModelArgs, first_stage, progress_bar};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    score: ScoreOptions,
    #[command(flatten)]
    eval: EvalFlags,
}

/// The dataset, the first stage and the measures.
#[derive(Args)]
struct EvalFlags {
    /// The dataset directory: BEIR (corpus.jsonl, queries.jsonl,
    /// qrels/SPLIT.tsv) or FlagEmbedding's (corpus.jsonl, SPLIT_queries.jsonl,
    /// SPLIT_qrels.jsonl).
    #[arg(long)]
    dataset: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    /// The first stage: `bm25` (BEIR's BM25: tantivy, English analyzer;
    /// `bm25:LANGUAGE` for another Snowball language, `bm25:none` for none),
    /// `dense:EMBED_MODEL` (an embedding checkpoint directory or Hub repo id:
    /// exact cosine top-k over the corpus, on --device), `bm25+dense:MODEL`
    /// (the two fused by reciprocal rank, k = 60), or a TREC run file (qid
    /// Q0 docid rank score tag).
    #[arg(long)]
    first_stage: String,
    /// Documents per query reranked (the first stage's best, by score).
    #[arg(long, default_value_t = 100)]
    top_k: usize,
    /// Cutoffs of the measures.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,10,100")]
    k_values: Vec<usize>,
    /// Write metrics.json, first_stage.trec, reranked.trec and
    /// per_query.json here (created).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let (model, score, args) = (a.model, a.score, a.eval);
    if args.top_k == 0 || args.k_values.is_empty() || args.k_values.contains(&0) {
        bail!("--top-k and every --k-values cutoff must be at least 1");
    }
    let mut k_values = args.k_values.clone();
    k_values.sort_unstable();
    k_values.dedup();
    let t0 = std::time::Instant::now();
    let ds = data::load(&args.dataset, &args.split)?;
    let depth = args.top_k.max(k_values.last().copied().unwrap_or(1));
    let first = first_stage(&args.first_stage, &model.device, &ds, depth)?;
    eprintln!(
        "crossrank eval: {} ({} layout, split {}): {} documents, {} judged queries; loaded in {:.1} s",
        args.dataset.display(),
        ds.layout,
        args.split,
        ds.corpus.len(),
        ds.queries.len(),
        t0.elapsed().as_secs_f64()
    );
    let candidates = pipeline::top_k(&first, args.top_k);
    let (ck, dev, dtype) = model.open()?;
    let reranker = Reranker::load_with_dtype(&ck, &dev.device, dtype)?;
    let bar = progress_bar("pairs");
    let t = std::time::Instant::now();
    let runs = pipeline::rerank(&reranker, &ds, &candidates, &score, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let pairs: usize = runs.first().map_or(0, |r| r.values().map(Vec::len).sum());
    let secs = t.elapsed().as_secs_f64();
    eprintln!("reranked {pairs} pairs in {secs:.1} s ({:.1} pairs/s)", pairs as f64 / secs.max(1e-9));

    let report = Report::new(&ds.qrels, first, runs, &reranker.cutoff_layers(&score)?, &k_values);
    print!(
        "{}\n{} queries evaluated (judged and ranked), top {} of the first stage reranked: {pairs} pairs, {:.1} pairs/s\n",
        report.table(),
        report.queries(),
        args.top_k,
        pairs as f64 / secs.max(1e-9)
    );
    if let Some(dir) = &args.out {
        report.write(dir)?;
        eprintln!("wrote {}/{{metrics.json, per_query.json, first_stage.trec, reranked*.trec}}", dir.display());
    }
    Ok(())
}
