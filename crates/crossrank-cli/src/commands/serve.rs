//! `crossrank serve`: the server crate's router on a TCP listener.

use anyhow::{Context, Result};
use clap::Args;
use crossrank::{Embedder, Reranker, ScoreOptions};

use super::ModelArgs;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Scoring defaults; --max-batch-tokens (default 16384 here) caps
    /// each pass, --batch-size its pairs.
    #[command(flatten)]
    score: ScoreOptions,
    #[command(flatten)]
    serve: ServeFlags,
}

/// `crossrank serve`'s own flags, named as TEI names them.
#[derive(Args)]
struct ServeFlags {
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

pub fn run(a: ServeArgs) -> Result<()> {
    let (model, score, args) = (a.model, a.score, a.serve);
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
