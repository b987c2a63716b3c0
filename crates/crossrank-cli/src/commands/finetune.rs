//! `crossrank finetune`: FlagEmbedding's reranker fine-tuning with a
//! progress bar; Ctrl-C saves a resumable checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use crossrank::Checkpoint;
use crossrank::device::DeviceChoice;
use crossrank::finetune::data::{DataArgs, read_jsonl};
use crossrank::finetune::train::{FineTuner, LoraArgs, TrainArgs};

use super::{print_json, read_input};

#[derive(Args)]
pub struct FinetuneArgs {
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
    data: DataArgs,
    #[command(flatten)]
    args: TrainArgs,
    /// LLM rerankers (Gemma) train LoRA adapters, merged into the saved weights.
    #[command(flatten)]
    lora: LoraArgs,
}

pub fn run(job: FinetuneArgs) -> Result<()> {
    let (data, args, lora) = (job.data, job.args, job.lora);
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
    let stop = stop_on_signal();
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

/// A flag set by the first Ctrl-C (or SIGTERM): the trainer finishes the
/// step, saves checkpoint-N and stops. A second one aborts (every file is
/// written aside and renamed, so an abort leaves the last good checkpoint).
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            loop {
                crossrank_server::termination().await;
                if flag.swap(true, Ordering::SeqCst) {
                    eprintln!("aborted");
                    std::process::exit(130);
                }
                eprintln!("stopping after this step and saving a resumable checkpoint (again to abort)");
            }
        });
    });
    stop
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

/// The newest `checkpoint-N` in `out`.
fn last_checkpoint(out: &Path) -> Result<PathBuf> {
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
