//! crossrank-desktop: local semantic search over a folder of text and
//! Markdown files. BM25 (and dense retrieval with an embedding model) find
//! candidates, a crossrank reranker orders them, and the window that scored
//! is highlighted. The egui window renders with wgpu and, by default, lends
//! its wgpu device to the models (`crossrank::device::from_wgpu`): one GPU
//! device for UI and inference instead of two.
//!
//! ```text
//! crossrank-desktop --folder ~/notes --reranker BAAI/bge-reranker-base \
//!     [--embedder sentence-transformers/all-MiniLM-L6-v2] [--device shared|auto|cpu|wgpu] [--dtype f32|f16|q8|q4]
//! ```
//!
//! `--self-test QUERY --screenshot out.png --report out.json` types QUERY
//! once the folder is indexed, waits for the ranked list to be drawn, saves
//! a screenshot of the window and a JSON report (results, device, memory),
//! and exits: what CI runs under Xvfb.

mod app;
mod corpus;
mod engine;
mod self_test;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use eframe::egui;
use eframe::egui_wgpu::{WgpuConfiguration, WgpuSetup, WgpuSetupCreateNew};

#[derive(Parser, Debug, Clone)]
#[command(version, about = "Search a folder of notes: BM25 / dense retrieval reranked by crossrank")]
pub struct Args {
    /// The folder to index (text and Markdown files, recursively).
    #[arg(long)]
    pub folder: Option<PathBuf>,
    /// Reranker: a checkpoint directory or a Hugging Face repo id.
    #[arg(long, default_value = "BAAI/bge-reranker-base")]
    pub reranker: String,
    /// Embedding model for dense retrieval next to BM25 (directory or repo id).
    #[arg(long)]
    pub embedder: Option<String>,
    /// auto (the window's GPU when it is a hardware one, else crossrank's
    /// auto: a hardware GPU or the CPU), shared (the window's device, even
    /// a software one), cpu, or wgpu (a second GPU device).
    #[arg(long, default_value = "auto", value_parser = engine::DeviceMode::parse)]
    pub device: engine::DeviceMode,
    /// Weight storage: f32, f16, q8, q4 or q4-all.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Type this query once indexed, screenshot the ranked list, report, exit.
    #[arg(long)]
    pub self_test: Option<String>,
    /// Self-test: where the screenshot (PNG) goes.
    #[arg(long, requires = "self_test")]
    pub screenshot: Option<PathBuf>,
    /// Self-test: where the JSON report goes (stdout without it).
    #[arg(long, requires = "self_test")]
    pub report: Option<PathBuf>,
    /// Self-test: give up after this many seconds (exit 1).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = args.dtype.parse::<crossrank::WeightDtype>() {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(2);
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([1100.0, 780.0]).with_title("crossrank — search a folder"),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: WgpuConfiguration {
            wgpu_setup: WgpuSetup::CreateNew(WgpuSetupCreateNew {
                // The device the window opens is the one the models may
                // share: request what Burn's kernels need, on the APIs Burn
                // runs on (Vulkan, Metal, DX12; not GL).
                instance_descriptor: eframe::wgpu::InstanceDescriptor {
                    backends: eframe::wgpu::Backends::from_env().unwrap_or(eframe::wgpu::Backends::PRIMARY),
                    ..WgpuSetupCreateNew::without_display_handle().instance_descriptor
                },
                device_descriptor: Arc::new(crossrank::device::shared_device_descriptor),
                ..WgpuSetupCreateNew::without_display_handle()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let outcome = Arc::new(std::sync::Mutex::new(None::<Result<(), String>>));
    let shared_outcome = outcome.clone();
    let run =
        eframe::run_native("crossrank-desktop", options, Box::new(move |cc| Ok(Box::new(app::SearchApp::new(cc, args, shared_outcome)))));
    if let Err(e) = run {
        eprintln!("error: cannot open the window: {e}");
        return std::process::ExitCode::from(1);
    }
    match outcome.lock().ok().and_then(|mut o| o.take()) {
        Some(Err(e)) => {
            eprintln!("self-test failed: {e}");
            std::process::ExitCode::from(1)
        }
        _ => std::process::ExitCode::SUCCESS,
    }
}
