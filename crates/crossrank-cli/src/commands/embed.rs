//! `crossrank embed`: texts → vectors.

use anyhow::Result;
use clap::Args;
use crossrank::{EmbedOptions, Embedder, Pooling};

use super::{ModelArgs, print_json, read_input};

#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Pooling: mean, cls or last (default: the checkpoint's
    /// 1_Pooling/config.json, else mean; Qwen3-Embedding: last).
    #[arg(long)]
    pooling: Option<String>,
    /// L2-normalize the vectors (default: as the checkpoint's modules.json says).
    #[arg(long)]
    normalize: bool,
    /// Token limit (default: sentence_bert_config.json max_seq_length, else
    /// 512; Qwen3-Embedding: 8192).
    #[arg(long)]
    max_length: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Text put before every text (sentence-transformers' `prompt`).
    #[arg(long, conflicts_with = "prompt_name")]
    prompt: Option<String>,
    /// The model's prompt of this name, e.g. `query` (Qwen3-Embedding's
    /// "Instruct: ...\nQuery:"); from config_sentence_transformers.json.
    #[arg(long)]
    prompt_name: Option<String>,
    /// Input file; `-` for stdin.
    #[arg(long, default_value = "-")]
    input: String,
}

pub fn run(a: EmbedArgs) -> Result<()> {
    let texts = crossrank::jsonl::texts(&read_input(&a.input)?)?;
    let pooling: Option<Pooling> = a.pooling.as_deref().map(str::parse).transpose()?;
    let (ck, dev, dtype) = a.model.open()?;
    let e = Embedder::load_with_dtype(&ck, &dev.device, dtype)?;
    let opts = EmbedOptions {
        max_length: a.max_length,
        pooling,
        normalize: a.normalize.then_some(true),
        batch_size: Some(a.batch_size),
        prompt: a.prompt,
        prompt_name: a.prompt_name,
    };
    print_json(&e.embed(&texts, &opts)?)
}
