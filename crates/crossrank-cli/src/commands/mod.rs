//! One file per subcommand: its flags (a clap `Args` struct) and `run`,
//! which only calls the library. What they share is here: the model flags,
//! reading an input file or stdin, printing one JSON document, progress
//! bars, and a first stage run with a bar.

pub mod embed;
pub mod eval;
pub mod finetune;
pub mod mine;
pub mod quantize;
pub mod rerank;
pub mod score;
pub mod serve;

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use crossrank::device::{DeviceChoice, SelectedDevice};
use crossrank::eval::{FirstStage, StageEvent, data::Dataset, metrics::Run};
use crossrank::{Checkpoint, WeightDtype};

/// The flags that choose a model, its device and its weight storage.
#[derive(Args)]
pub struct ModelArgs {
    /// A checkpoint directory or a Hugging Face repo id (BAAI/bge-reranker-base[@revision]).
    #[arg(long, visible_alias = "model-id", env = "MODEL_ID")]
    pub model: String,
    /// A Hub revision (branch, tag or commit) for a repo id; the same as
    /// `--model ID@REVISION`.
    #[arg(long, env = "REVISION")]
    pub revision: Option<String>,
    /// cpu, wgpu or auto (a hardware GPU that passes a self-check, else the CPU).
    #[arg(long, default_value = "auto", env = "CROSSRANK_DEVICE")]
    pub device: String,
    /// Weight storage: f32, f16, q8, int8, q4 or q4-all (converted at load;
    /// a quantized checkpoint stays quantized whatever this says, and int8
    /// on a q8 checkpoint runs it as int8). q8/q4 linear layers run integer
    /// matrix products on the CPU with 16-bit activations, int8's with
    /// 8-bit activations (faster, slightly less faithful); f16 ones run in
    /// f16 on a GPU with shader-f16; the rest computes in f32.
    #[arg(long, default_value = "f32", env = "DTYPE")]
    pub dtype: String,
}

impl ModelArgs {
    /// The model as `Checkpoint::resolve` takes it: `--model`, with
    /// `@REVISION` when --revision is given.
    pub fn spec(&self) -> String {
        match &self.revision {
            Some(r) => format!("{}@{r}", self.model),
            None => self.model.clone(),
        }
    }

    /// The checkpoint (downloaded when it is a repo id), the device chosen
    /// and the weight dtype.
    pub fn open(&self) -> Result<(Checkpoint, SelectedDevice, WeightDtype)> {
        let dtype: WeightDtype = self.dtype.parse()?;
        let choice: DeviceChoice = self.device.parse()?;
        let checkpoint = Checkpoint::resolve(&self.spec(), true)?;
        let device = crossrank::device::select(choice)?;
        tracing::info!(device = device.kind, reason = %device.reason, "device selected");
        Ok((checkpoint, device, dtype))
    }
}

/// The text of file `spec`, or of stdin for `-`.
pub fn read_input(spec: &str) -> Result<String> {
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

/// `value` as one JSON document on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A progress bar on stderr counting `unit`, with rate and ETA.
pub fn progress_bar(unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit}  {{per_sec}}  ETA {{eta}}"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The first stage named `spec` over `ds`, `depth` documents per query,
/// with a progress bar and a line on stderr per stage.
pub fn first_stage(spec: &str, device: &str, ds: &Dataset, depth: usize) -> Result<Run> {
    let stage: FirstStage = spec.parse()?;
    // The device matters (and is checked) only where an embedder runs.
    let device: DeviceChoice = if stage.embedder().is_some() { device.parse()? } else { DeviceChoice::Cpu };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let run = stage.run(ds, depth, device, &mut |e| match e {
        StageEvent::Progress { done, total } => {
            let b = bar.get_or_insert_with(|| progress_bar("docs"));
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
        StageEvent::Finished(line) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("{line}");
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(run?)
}
