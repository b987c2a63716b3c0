//! `crossrank`: score, rerank and embed from the command line.
//!
//! stdout carries exactly one JSON document; logs and errors go to stderr.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use crossrank::device::{DeviceChoice, SelectedDevice};
use crossrank::{Checkpoint, EmbedOptions, Embedder, Pooling, Reranker, ScoreOptions, WeightDtype};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score (query, passage) pairs read as JSON Lines; prints one JSON array.
    Score {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        score: ScoreOptions,
        /// JSON Lines file of {"query": ..., "passage": ...}; `-` for stdin.
        #[arg(long, default_value = "-")]
        input: String,
    },
    /// Rank documents (one per line) for a query; prints [{"index", "score"}] best first.
    Rerank {
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
    },
    /// Embed texts (JSON Lines of {"text": ...} or JSON strings); prints a JSON array of vectors.
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// Pooling: mean or cls (default: the checkpoint's 1_Pooling/config.json, else mean).
        #[arg(long)]
        pooling: Option<String>,
        /// L2-normalize the vectors (default: as the checkpoint's modules.json says).
        #[arg(long)]
        normalize: bool,
        /// Token limit (default: sentence_bert_config.json max_seq_length, else 512).
        #[arg(long)]
        max_length: Option<usize>,
        /// Texts per forward pass.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Input file; `-` for stdin.
        #[arg(long, default_value = "-")]
        input: String,
    },
    /// Write a quantized copy of a checkpoint (f16, or q8 / q4 / q4-all
    /// with block scales, embedding table included); prints a JSON report
    /// of what was written.
    Quantize {
        /// A checkpoint directory or a Hugging Face repo id.
        #[arg(long)]
        model: String,
        /// f16, q8, q4 or q4-all.
        #[arg(long)]
        dtype: String,
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
    },
    /// Evaluate a reranker as FlagEmbedding's evaluation does: rerank a first
    /// stage's top-k per query of a BEIR- or FlagEmbedding-layout dataset and
    /// score both rankings with trec_eval's measures (nDCG, MAP, recall, P at
    /// each k; recip_rank; FlagEmbedding's MRR@k). Prints a before/after
    /// table on stdout (not JSON: metrics.json goes to --out); a progress bar
    /// with pairs/s and ETA on stderr.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        score: ScoreOptions,
        #[command(flatten)]
        eval: EvalArgs,
    },
    /// Training data from a judged dataset split, as FlagEmbedding's
    /// hn_mine does: per judged query, its relevant documents as "pos" and
    /// --negative-number "neg" drawn from the first stage's ranks
    /// --range-for-sampling (relevant ones excluded). Writes JSON Lines for
    /// `crossrank finetune --train`; prints a JSON summary.
    Mine {
        /// The dataset directory (BEIR or FlagEmbedding layout, as `eval`).
        #[arg(long)]
        dataset: PathBuf,
        #[arg(long, default_value = "train")]
        split: String,
        /// The first stage ranking the candidates (as `eval --first-stage`).
        #[arg(long, default_value = "bm25")]
        first_stage: String,
        /// Ranks START-END (0-based, END excluded) to draw negatives from.
        #[arg(long, default_value = "2-200")]
        range_for_sampling: String,
        #[arg(long, default_value_t = 15)]
        negative_number: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Device of a dense first stage.
        #[arg(long, default_value = "auto")]
        device: String,
        /// The JSON Lines file written (through a temporary file).
        #[arg(long)]
        out: PathBuf,
    },
    /// Fine-tune a cross-encoder (BERT, XLM-R; or a bare encoder such as
    /// all-MiniLM-L6-v2, given a new one-logit head) as FlagEmbedding's
    /// encoder-only runner does: groups of one positive and
    /// train_group_size - 1 negatives, cross-entropy over each group (plus
    /// distillation from teacher scores), AdamW with warmup and decay.
    /// Writes DIR/train_log.jsonl, DIR/checkpoint-N every --save-steps and
    /// the model in Hugging Face layout into DIR; Ctrl-C saves a resumable
    /// checkpoint. Prints a JSON report.
    Finetune {
        /// The starting checkpoint: a directory or a Hugging Face repo id.
        #[arg(long)]
        model: String,
        /// Training data: JSON Lines files of {"query", "pos": [..], "neg":
        /// [..]} (optionally "pos_scores"/"neg_scores", "prompt"), or
        /// directories of them.
        #[arg(long, required = true, num_args = 1..)]
        train: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// cpu, wgpu or auto.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Continue from a checkpoint-N directory (`last`: the newest in --out).
        #[arg(long)]
        resume_from_checkpoint: Option<PathBuf>,
        /// Train into a non-empty --out (files there are replaced).
        #[arg(long)]
        overwrite_output_dir: bool,
        #[command(flatten)]
        data: crossrank::finetune::data::DataArgs,
        #[command(flatten)]
        args: crossrank::finetune::train::TrainArgs,
        /// LLM rerankers (Gemma) train LoRA adapters, merged into the saved weights.
        #[command(flatten)]
        lora: crossrank::finetune::train::LoraArgs,
    },
    /// Serve the model over HTTP: TEI's /rerank, /predict and /embed,
    /// Cohere-style /v1/rerank and /v2/rerank, /health, /info, /metrics,
    /// /docs. Requests from all clients share forward passes.
    Serve {
        #[command(flatten)]
        model: ModelArgs,
        /// Scoring defaults; --max-batch-tokens (default 16384 here) caps
        /// each pass, --batch-size its pairs.
        #[command(flatten)]
        score: ScoreOptions,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

/// `crossrank eval`'s flags.
#[derive(Args)]
struct EvalArgs {
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

/// `crossrank serve`'s flags, named as TEI names them.
#[derive(Args)]
struct ServeArgs {
    #[arg(long, default_value_t = 3000, env = "PORT")]
    port: u16,
    /// The address to listen on. Loopback by default, so only this machine
    /// can connect; pass 0.0.0.0 to serve the network (set --api-key then).
    #[arg(long, default_value = "127.0.0.1", env = "HOSTNAME")]
    hostname: String,
    /// Texts (documents or pairs) per request.
    #[arg(long, default_value_t = 32)]
    max_client_batch_size: usize,
    /// Requests in flight before new ones are refused with 429.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 2_000_000)]
    payload_limit: usize,
    /// Truncate inputs longer than --max-length unless a request says
    /// `truncate: false`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_truncate: bool,
    /// Require `Authorization: Bearer <key>` (401 otherwise).
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Origins allowed by CORS, comma-separated (`*` for any).
    #[arg(long, value_delimiter = ',')]
    cors_allow_origin: Vec<String>,
}

#[derive(Args)]
struct ModelArgs {
    /// A checkpoint directory or a Hugging Face repo id (BAAI/bge-reranker-base[@revision]).
    #[arg(long)]
    model: String,
    /// cpu, wgpu or auto (a hardware GPU that passes a self-check, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Weight storage: f32, f16, q8, q4 or q4-all (converted at load; a
    /// quantized checkpoint stays quantized whatever this says). q8/q4
    /// linear layers run integer matrix products on the CPU (16-bit
    /// activations); f16 ones run in f16 on a GPU with shader-f16; the rest
    /// computes in f32.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

impl ModelArgs {
    fn open(&self) -> Result<(Checkpoint, SelectedDevice, WeightDtype)> {
        let dtype: WeightDtype = self.dtype.parse()?;
        let choice: DeviceChoice = self.device.parse()?;
        let checkpoint = Checkpoint::resolve(&self.model, true)?;
        let device = crossrank::device::select(choice)?;
        tracing::info!(device = device.kind, reason = %device.reason, "device selected");
        Ok((checkpoint, device, dtype))
    }
}

fn read_input(spec: &str) -> Result<String> {
    let mut s = String::new();
    if spec == "-" {
        std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
    } else {
        let path = PathBuf::from(spec);
        // A device never ends (/dev/zero would be read until the OOM
        // killer); a FIFO (process substitution) is fine.
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let t = std::fs::metadata(&path).with_context(|| format!("reading {spec}"))?.file_type();
            if t.is_char_device() || t.is_block_device() || t.is_dir() {
                bail!("--input {spec} is a device or a directory; pass a file, or - for stdin");
            }
        }
        s = std::fs::read_to_string(&path).with_context(|| format!("reading {spec}"))?;
    }
    Ok(s)
}

fn parse_pairs(text: &str) -> Result<Vec<(String, String)>> {
    Ok(crossrank::jsonl::pairs(text)?)
}

fn parse_texts(text: &str) -> Result<Vec<String>> {
    Ok(crossrank::jsonl::texts(text)?)
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Score { model, score, input } => {
            let pairs = parse_pairs(&read_input(&input)?)?;
            let (ck, dev, dtype) = model.open()?;
            let r = Reranker::load_with_dtype(&ck, &dev.device, dtype)?;
            let mut layers = r.compute_score_layers(&pairs, &score)?;
            if layers.len() == 1 { print_json(&layers.remove(0)) } else { print_json(&layers) }
        }
        Command::Rerank { model, score, query, docs, top_k } => {
            let text = read_input(&docs)?;
            let docs: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let (ck, dev, dtype) = model.open()?;
            let r = Reranker::load_with_dtype(&ck, &dev.device, dtype)?;
            // With --long-passages maxp each document also gets its best
            // window, in code points of its line.
            #[derive(serde::Serialize)]
            struct Line {
                index: usize,
                score: f32,
                #[serde(skip_serializing_if = "Option::is_none")]
                window: Option<crossrank::Window>,
            }
            let ranked = r.rerank_passages(&query, &docs, top_k, &score)?;
            let lines: Vec<Line> =
                ranked.iter().map(|(k, p)| Line { index: k.index, score: k.score, window: p.char_window(docs[k.index]) }).collect();
            print_json(&lines)
        }
        Command::Embed { model, pooling, normalize, max_length, batch_size, input } => {
            let texts = parse_texts(&read_input(&input)?)?;
            let pooling: Option<Pooling> = pooling.as_deref().map(str::parse).transpose()?;
            let (ck, dev, dtype) = model.open()?;
            let e = Embedder::load_with_dtype(&ck, &dev.device, dtype)?;
            let opts = EmbedOptions { max_length, pooling, normalize: normalize.then_some(true), batch_size: Some(batch_size) };
            print_json(&e.embed(&texts, &opts)?)
        }
        Command::Serve { model, score, serve } => serve_http(model, score, serve),
        Command::Eval { model, score, eval } => run_eval(model, score, eval),
        Command::Mine { dataset, split, first_stage: spec, range_for_sampling, negative_number, seed, device, out } => {
            use crossrank::finetune::mine;
            let t = std::time::Instant::now();
            let ds = crossrank::eval::data::load(&dataset, &split)?;
            let args = mine::MineArgs { negative_number, seed, ..range_for_sampling.parse()? };
            let run = first_stage(&spec, &device, &ds, args.range.1)?;
            let examples = mine::mine(&ds, &run, &args)?;
            crossrank::eval::data::write_atomic(&out, mine::to_jsonl(&examples).as_bytes())?;
            let negatives: usize = examples.iter().map(|e| e.neg.len()).sum();
            print_json(&serde_json::json!({
                "out": out, "examples": examples.len(), "negatives": negatives,
                "queries_without_positive": ds.queries.len() - examples.len(),
                "seconds": t.elapsed().as_secs_f64(),
            }))
        }
        Command::Finetune { model, train, out, device, resume_from_checkpoint, overwrite_output_dir, data, args, lora } => {
            let job = FinetuneJob { model, train, out, device, resume_from_checkpoint, overwrite_output_dir };
            run_finetune(job, data, args, lora)
        }
        Command::Quantize { model, dtype, out } => {
            let dtype: WeightDtype = dtype.parse()?;
            let ck = Checkpoint::resolve(&model, true)?;
            let report = crossrank::quantize::quantize_checkpoint(&ck, dtype, &out)?;
            print_json(&report)
        }
    }
}

fn run_eval(model: ModelArgs, score: ScoreOptions, args: EvalArgs) -> Result<()> {
    use crossrank::eval::{data, metrics, pipeline};
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

    // The first stage is evaluated whole (its full run), as FlagEmbedding
    // evaluates its retrieval results; the reranked run holds the top-k.
    let (first_q, first_mean) = metrics::evaluate(&ds.qrels, &first, &k_values);
    let layers = reranker.cutoff_layers(&score)?;
    let mut reranked: Vec<(String, std::collections::BTreeMap<String, metrics::Measures>, metrics::Measures)> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let (q, m) = metrics::evaluate(&ds.qrels, run, &k_values);
        let label = if runs.len() == 1 { "reranked".to_string() } else { format!("reranked_layer_{}", layers[i]) };
        reranked.push((label, q, m));
    }
    // The table: one row per measure.
    let mut out = String::new();
    out.push_str(&format!(
        "| measure | first stage | {} |\n|---|---|{}\n",
        reranked.iter().map(|r| r.0.as_str()).collect::<Vec<_>>().join(" | "),
        "---|".repeat(reranked.len())
    ));
    for name in metrics::measure_names(&k_values) {
        let cells: Vec<String> = reranked
            .iter()
            .map(|(_, _, m)| {
                let (a, b) = (first_mean.get(&name).copied().unwrap_or(0.0), m.get(&name).copied().unwrap_or(0.0));
                format!("{b:.4} ({:+.4})", b - a)
            })
            .collect();
        out.push_str(&format!("| {name} | {:.4} | {} |\n", first_mean.get(&name).copied().unwrap_or(0.0), cells.join(" | ")));
    }
    out.push_str(&format!(
        "\n{} queries evaluated (judged and ranked), top {} of the first stage reranked: {pairs} pairs, {:.1} pairs/s\n",
        first_q.len(),
        args.top_k,
        pairs as f64 / secs.max(1e-9)
    ));
    print!("{out}");

    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut m = serde_json::Map::new();
        m.insert("first_stage".into(), serde_json::to_value(&first_mean)?);
        for (label, _, mean) in &reranked {
            m.insert(label.clone(), serde_json::to_value(mean)?);
        }
        data::write_atomic(&dir.join("metrics.json"), &serde_json::to_vec_pretty(&m)?)?;
        let mut per_query = serde_json::Map::new();
        for (q, fm) in &first_q {
            let mut entry = serde_json::Map::new();
            entry.insert("first_stage".into(), serde_json::to_value(fm)?);
            for (label, rq, _) in &reranked {
                if let Some(v) = rq.get(q) {
                    entry.insert(label.clone(), serde_json::to_value(v)?);
                }
            }
            per_query.insert(q.clone(), entry.into());
        }
        data::write_atomic(&dir.join("per_query.json"), &serde_json::to_vec_pretty(&per_query)?)?;
        data::write_run(&dir.join("first_stage.trec"), &first, "first_stage")?;
        for ((label, _, _), run) in reranked.iter().zip(&runs) {
            data::write_run(&dir.join(format!("{label}.trec")), run, "crossrank")?;
        }
        eprintln!("wrote {}/{{metrics.json, per_query.json, first_stage.trec, reranked*.trec}}", dir.display());
    }
    Ok(())
}

/// The first stage's run: a TREC run file, BM25, dense retrieval, or the
/// two fused, `depth` documents per query.
fn first_stage(spec: &str, device: &str, ds: &crossrank::eval::data::Dataset, depth: usize) -> Result<crossrank::eval::metrics::Run> {
    use crossrank::eval::{bm25, data, dense, pipeline};
    // bm25[:LANGUAGE]+dense:MODEL: reciprocal rank fusion of the two.
    if spec.starts_with("bm25") {
        if let Some((lexical, model)) = spec.split_once("+dense:") {
            let a = first_stage(lexical, device, ds, depth)?;
            let b = first_stage(&format!("dense:{model}"), device, ds, depth)?;
            return Ok(pipeline::reciprocal_rank_fusion(&[&a, &b], 60.0, depth));
        }
    }
    if let Some(model) = spec.strip_prefix("dense:") {
        let ck = Checkpoint::resolve(model, true)?;
        let dev = crossrank::device::select(device.parse()?)?;
        let embedder = Embedder::load(&ck, &dev.device)?;
        let bar = progress_bar("docs");
        let t = std::time::Instant::now();
        let run = dense::retrieve(&embedder, ds, depth, &EmbedOptions::default(), &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        eprintln!("dense first stage ({model}): {} documents embedded in {:.1} s", ds.corpus.len(), t.elapsed().as_secs_f64());
        return Ok(run);
    }
    if spec == "bm25" || spec.starts_with("bm25:") {
        let language = spec.strip_prefix("bm25:").unwrap_or("english");
        let bar = progress_bar("docs");
        let t = std::time::Instant::now();
        let index = bm25::Bm25Index::build(&ds.corpus, language, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        let indexed = t.elapsed().as_secs_f64();
        let run = index.retrieve(&ds.corpus, &ds.queries, depth)?;
        eprintln!(
            "BM25 first stage ({language}): {} documents indexed in {indexed:.1} s, {} queries in {:.2} s",
            ds.corpus.len(),
            ds.queries.len(),
            t.elapsed().as_secs_f64() - indexed
        );
        return Ok(run);
    }
    Ok(data::read_run(std::path::Path::new(spec))?)
}

struct FinetuneJob {
    model: String,
    train: Vec<PathBuf>,
    out: PathBuf,
    device: String,
    resume_from_checkpoint: Option<PathBuf>,
    overwrite_output_dir: bool,
}

/// The training files: the paths given, and the .jsonl/.json files of
/// directories given (sorted), as FlagEmbedding's `train_data` takes them.
fn training_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "jsonl" || x == "json"))
                .collect();
            if inside.is_empty() {
                bail!("--train {} holds no .jsonl or .json file", p.display());
            }
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn run_finetune(
    job: FinetuneJob,
    data: crossrank::finetune::data::DataArgs,
    args: crossrank::finetune::train::TrainArgs,
    lora: crossrank::finetune::train::LoraArgs,
) -> Result<()> {
    use crossrank::finetune::{data::read_jsonl, train::FineTuner};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut examples = Vec::new();
    for f in training_files(&job.train)? {
        let text = read_input(&f.to_string_lossy())?;
        examples.extend(read_jsonl(&text, &data).with_context(|| format!("{}", f.display()))?);
    }
    if examples.is_empty() {
        bail!("the training data holds no example");
    }
    let resume = match job.resume_from_checkpoint {
        Some(p) if p.as_os_str() == "last" => Some(last_checkpoint(&job.out)?),
        other => other,
    };
    let non_empty = std::fs::read_dir(&job.out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if non_empty && resume.is_none() && !job.overwrite_output_dir {
        bail!(
            "--out {} exists and is not empty: use a new directory, --resume-from-checkpoint, or --overwrite-output-dir",
            job.out.display()
        );
    }
    let choice: DeviceChoice = job.device.parse()?;
    let dev = crossrank::device::select(choice)?;
    eprintln!("crossrank finetune: device {} ({})", dev.kind, dev.reason);
    let mut tuner = match &resume {
        Some(ck) => FineTuner::resume(ck, data, args.clone(), &dev.device)?,
        None => FineTuner::start(Checkpoint::resolve(&job.model, true)?, data, args.clone(), lora, &dev.device)?,
    };
    let (tensors, values) = tuner.parameter_count();
    let total = args.total_steps(examples.len());
    eprintln!(
        "{} examples, {} tensors / {:.1} M parameters trained, {total} optimizer steps{}",
        examples.len(),
        tensors,
        values as f64 / 1e6,
        resume.as_ref().map(|r| format!(", resuming {} at step {}", r.display(), tuner.global_step())).unwrap_or_default()
    );

    // Ctrl-C (or SIGTERM): finish the step, save checkpoint-N, stop; a
    // second one aborts (every file is written aside and renamed, so an
    // abort leaves the last good checkpoint).
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                #[cfg(unix)]
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                for _ in 0..2 {
                    #[cfg(unix)]
                    let term_recv = async {
                        match term.as_mut() {
                            Some(t) => {
                                t.recv().await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    };
                    #[cfg(not(unix))]
                    let term_recv = std::future::pending::<()>();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        () = term_recv => {},
                    }
                    if stop.swap(true, Ordering::SeqCst) {
                        eprintln!("aborted");
                        std::process::exit(130);
                    }
                    eprintln!("stopping after this step and saving a resumable checkpoint (again to abort)");
                }
            });
        });
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}  ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(tuner.global_step() as u64);
    bar.reset_eta();
    let report = tuner.train(&examples, &job.out, &stop, &mut |p| {
        bar.set_position(p.step as u64);
        bar.set_message(format!("loss {:.4}  {:.1} pairs/s", p.last_loss, p.pairs as f64 / p.seconds.max(1e-9)));
        if let Some(l) = &p.logged {
            let line = format!(
                "step {:>6}  epoch {:.2}  loss {:.4}  lr {:.3e}  grad norm {:.3}  {:.1} pairs/s",
                l.step,
                l.epoch,
                l.loss,
                l.learning_rate,
                l.grad_norm,
                p.pairs as f64 / p.seconds.max(1e-9)
            );
            // The bar draws only on a terminal; in a log file the lines still go out.
            if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) }
        }
    })?;
    bar.finish_and_clear();
    if report.interrupted {
        eprintln!("stopped at step {}: resume with --resume-from-checkpoint {}", report.steps, report.saved.display());
    } else {
        eprintln!(
            "trained {} steps, {:.1} pairs/s (forward + backward), mean loss {:.4}; model in {}",
            report.steps,
            report.pairs_per_second,
            report.train_loss,
            report.saved.display()
        );
    }
    print_json(&report)
}

/// The newest `checkpoint-N` in `out`.
fn last_checkpoint(out: &std::path::Path) -> Result<PathBuf> {
    let best = std::fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("checkpoint-").and_then(|n| n.parse::<usize>().ok()).map(|n| (n, e.path()))
        })
        .max_by_key(|(n, _)| *n);
    best.map(|(_, p)| p).with_context(|| format!("no checkpoint-N in {}", out.display()))
}

fn progress_bar(unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit}  {{per_sec}}  ETA {{eta}}"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn serve_http(model: ModelArgs, score: ScoreOptions, args: ServeArgs) -> Result<()> {
    let (ck, dev, dtype) = model.open()?;
    let architecture = crossrank::Architecture::of(&ck)?;
    let served = if architecture.is_cross_encoder() || architecture.is_llm() {
        crossrank_server::Model::Reranker(Reranker::load_with_dtype(&ck, &dev.device, dtype)?)
    } else {
        crossrank_server::Model::Embedder(Embedder::load_with_dtype(&ck, &dev.device, dtype)?)
    };
    let config = crossrank_server::ServerConfig {
        model_id: model.model.clone(),
        dtype: model.dtype.clone(),
        device: dev.kind.to_string(),
        max_batch_tokens: score.max_batch_tokens.unwrap_or(16384),
        max_batch_pairs: score.batch_size,
        max_client_batch_size: args.max_client_batch_size,
        max_concurrent_requests: args.max_concurrent_requests,
        payload_limit: args.payload_limit,
        auto_truncate: args.auto_truncate,
        api_key: args.api_key,
        cors_allow_origin: args.cors_allow_origin,
        score,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.hostname.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.hostname, args.port))?;
        let addr = listener.local_addr()?;
        // One line on stderr that scripts (and the tests) wait for.
        eprintln!("crossrank: listening on http://{addr} ({architecture:?} on {})", dev.kind);
        crossrank_server::serve(listener, crossrank_server::router(served, config), crossrank_server::shutdown_signal()).await?;
        Ok(())
    })
}

fn main() -> ExitCode {
    // SAFETY: sets a process-wide mimalloc option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    // Without -v only crossrank's own warnings: the GPU probe of `--device
    // auto` makes wgpu and cubecl log adapter failures that are expected on
    // a machine without a GPU (the reason is logged by us at -v instead).
    let default = match cli.verbose {
        0 => "off,crossrank=warn,crossrank_cli=warn",
        1 => "warn,crossrank=info,crossrank_cli=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
