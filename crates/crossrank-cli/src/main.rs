//! `crossrank`: score, rerank and embed from the command line.
//!
//! stdout carries exactly one JSON document (`eval`: its table); logs and
//! errors go to stderr. This file only parses and dispatches: each
//! subcommand's flags and calls live in `commands/`.

mod commands;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{embed, eval, finetune, mine, quantize, rerank, score, serve};

/// See Cargo.toml: keeps freed activation buffers instead of page-faulting
/// them back in on every op.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (mimalloc.h; between the sys crate's
/// `mi_option_eager_commit_delay` = 14 and `mi_option_use_numa_nodes` = 16).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[derive(Parser)]
#[command(name = "crossrank", version, about = "BAAI bge-reranker cross-encoders on CPU and GPU (Burn)")]
struct Cli {
    /// More logging on stderr (-v info and dependencies' warnings, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Logs as JSON lines on stderr (for log collectors).
    #[arg(long, global = true, env = "JSON_OUTPUT")]
    json_output: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score (query, passage) pairs read as JSON Lines; prints one JSON array.
    Score(score::ScoreArgs),
    /// Rank documents (one per line) for a query; prints [{"index", "score"}] best first.
    Rerank(rerank::RerankArgs),
    /// Embed texts (JSON Lines of {"text": ...} or JSON strings); prints a JSON array of vectors.
    Embed(embed::EmbedArgs),
    /// Write a quantized copy of a checkpoint (f16, or q8 / int8 / q4 / q4-all
    /// with block scales, embedding table included); prints a JSON report
    /// of what was written.
    Quantize(quantize::QuantizeArgs),
    /// Evaluate a reranker as FlagEmbedding's evaluation does: rerank a first
    /// stage's top-k per query of a BEIR- or FlagEmbedding-layout dataset and
    /// score both rankings with trec_eval's measures (nDCG, MAP, recall, P at
    /// each k; recip_rank; FlagEmbedding's MRR@k). Prints a before/after
    /// table on stdout (not JSON: metrics.json goes to --out); a progress bar
    /// with pairs/s and ETA on stderr.
    Eval(eval::EvalArgs),
    /// Training data from a judged dataset split, as FlagEmbedding's
    /// hn_mine does: per judged query, its relevant documents as "pos" and
    /// --negative-number "neg" drawn from the first stage's ranks
    /// --range-for-sampling (relevant ones excluded). Writes JSON Lines for
    /// `crossrank finetune --train`; prints a JSON summary.
    Mine(mine::MineArgs),
    /// Fine-tune a cross-encoder (BERT, XLM-R; or a bare encoder such as
    /// all-MiniLM-L6-v2, given a new one-logit head) as FlagEmbedding's
    /// encoder-only runner does: groups of one positive and
    /// train_group_size - 1 negatives, cross-entropy over each group (plus
    /// distillation from teacher scores), AdamW with warmup and decay.
    /// Writes DIR/train_log.jsonl, DIR/checkpoint-N every --save-steps and
    /// the model in Hugging Face layout into DIR; Ctrl-C saves a resumable
    /// checkpoint. Prints a JSON report.
    Finetune(finetune::FinetuneArgs),
    /// Serve the model over HTTP: TEI's /rerank, /predict and /embed,
    /// Cohere-style /v1/rerank and /v2/rerank, /health, /info, /metrics,
    /// /docs. Requests from all clients share forward passes.
    Serve(serve::ServeArgs),
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Score(a) => score::run(a),
        Command::Rerank(a) => rerank::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Mine(a) => mine::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Serve(a) => serve::run(a),
    }
}

fn main() -> ExitCode {
    // SAFETY: sets a process-wide mimalloc option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    // Without -v only crossrank's own warnings: the GPU probe of `--device
    // auto` makes wgpu and cubecl log adapter failures that are expected on
    // a machine without a GPU (the reason is logged by us at -v instead).
    // `serve` also logs each request (method, path, status, latency, request id).
    let serving = matches!(cli.command, Command::Serve(_));
    let default = match (cli.verbose, serving) {
        (0, false) => "off,crossrank=warn,crossrank_cli=warn",
        (0, true) => "off,crossrank=warn,crossrank_cli=warn,crossrank_server=info,tower_http=info",
        (1, _) => "warn,crossrank=info,crossrank_cli=info,crossrank_server=info,tower_http=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.json_output { logs.json().init() } else { logs.init() }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
