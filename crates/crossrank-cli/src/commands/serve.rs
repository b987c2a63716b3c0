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

/// `crossrank serve`'s own flags, named as TEI names them, each also read
/// from TEI's environment variable.
#[derive(Args)]
struct ServeFlags {
    #[arg(long, short = 'p', default_value_t = 3000, env = "PORT")]
    port: u16,
    /// The address to listen on. Loopback by default, so only this machine
    /// can connect; pass 0.0.0.0 to serve the network (set --api-key then).
    /// From the environment, HOSTNAME counts only when it is an IP address
    /// or `localhost`: Docker and many init systems set it to the
    /// machine's name, which must not move the server onto the network.
    #[arg(long)]
    hostname: Option<String>,
    /// Texts (documents or pairs) per request.
    #[arg(long, default_value_t = 32, env = "MAX_CLIENT_BATCH_SIZE")]
    max_client_batch_size: usize,
    /// Requests in flight before new ones are refused with 429.
    #[arg(long, default_value_t = 512, env = "MAX_CONCURRENT_REQUESTS")]
    max_concurrent_requests: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 2_000_000, env = "PAYLOAD_LIMIT")]
    payload_limit: usize,
    /// Truncate inputs longer than --max-length unless a request says
    /// `truncate: false`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "AUTO_TRUNCATE")]
    auto_truncate: bool,
    /// Require `Authorization: Bearer <key>` (401 otherwise) on every route
    /// but /health, /ping and /metrics (probes and scrapers).
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// With --api-key, /metrics needs the key too.
    #[arg(long, env = "PROTECT_METRICS")]
    protect_metrics: bool,
    /// Origins allowed by CORS, comma-separated (`*` for any).
    #[arg(long, value_delimiter = ',', env = "CORS_ALLOW_ORIGIN")]
    cors_allow_origin: Vec<String>,
    /// The model's name in /info, /v1/models and responses (default: --model).
    #[arg(long, env = "SERVED_MODEL_NAME")]
    served_model_name: Option<String>,
}

/// The address to bind: --hostname; else HOSTNAME when it is an IP
/// address or `localhost` (TEI's variable, which container runtimes also
/// set to a machine name); else loopback.
fn bind_address(flag: Option<String>, env: Option<String>) -> String {
    if let Some(h) = flag {
        return h;
    }
    match env {
        Some(h) if h == "localhost" || h.parse::<std::net::IpAddr>().is_ok() => {
            eprintln!("crossrank: binding HOSTNAME={h} from the environment (--hostname overrides it)");
            h
        }
        Some(h) => {
            tracing::info!("HOSTNAME={h:?} is a machine name, not an address to listen on; ignored (use --hostname)");
            "127.0.0.1".into()
        }
        None => "127.0.0.1".into(),
    }
}

/// Whether `host` is only reachable from this machine.
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub fn run(a: ServeArgs) -> Result<()> {
    let (model, score, args) = (a.model, a.score, a.serve);
    let hostname = bind_address(args.hostname.clone(), std::env::var("HOSTNAME").ok());
    if !is_loopback(&hostname) && args.api_key.is_none() {
        // Shown by serve's default log filter (crossrank_cli=warn).
        tracing::warn!("serving {hostname} (not loopback) without --api-key: anyone who can reach this port can use the model");
    }
    let (ck, dev, dtype) = model.open()?;
    let architecture = crossrank::Architecture::of(&ck)?;
    let served = if crossrank::Task::of(&ck)? == crossrank::Task::Rerank {
        crossrank_server::Model::Reranker(Reranker::load_with_dtype(&ck, &dev.device, dtype)?)
    } else {
        crossrank_server::Model::Embedder(Embedder::load_with_dtype(&ck, &dev.device, dtype)?)
    };
    let config = crossrank_server::ServerConfig {
        model_id: args.served_model_name.clone().unwrap_or_else(|| model.spec()),
        dtype: model.dtype.clone(),
        device: dev.kind.to_string(),
        max_batch_tokens: score.max_batch_tokens.unwrap_or(16384),
        max_batch_pairs: score.batch_size,
        max_client_batch_size: args.max_client_batch_size,
        max_concurrent_requests: args.max_concurrent_requests,
        payload_limit: args.payload_limit,
        auto_truncate: args.auto_truncate,
        api_key: args.api_key,
        protect_metrics: args.protect_metrics,
        cors_allow_origin: args.cors_allow_origin,
        score,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((hostname.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {hostname}:{}", args.port))?;
        let addr = listener.local_addr()?;
        // One line on stderr that scripts (and the tests) wait for.
        eprintln!("crossrank: listening on http://{addr} ({architecture:?} on {})", dev.kind);
        crossrank_server::serve(listener, crossrank_server::router(served, config), crossrank_server::shutdown_signal()).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_from_the_environment_only_when_it_is_an_address() {
        let bind = |flag: Option<&str>, env: Option<&str>| bind_address(flag.map(String::from), env.map(String::from));
        assert_eq!(bind(None, None), "127.0.0.1");
        assert_eq!(bind(None, Some("0.0.0.0")), "0.0.0.0");
        assert_eq!(bind(None, Some("::")), "::");
        assert_eq!(bind(None, Some("localhost")), "localhost");
        // Docker's container id, a machine's name: not an address to serve.
        assert_eq!(bind(None, Some("3f4e1a2b9c8d")), "127.0.0.1");
        assert_eq!(bind(None, Some("build-host.example")), "127.0.0.1");
        assert_eq!(bind(Some("10.1.2.3"), Some("0.0.0.0")), "10.1.2.3");
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0") && !is_loopback("192.168.1.5"));
    }
}
