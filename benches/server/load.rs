//! Load generator for `crossrank serve` (benches/server/run.sh drives it).
//! Loopback only, bounded in requests and time; every phase prints a
//! Markdown table and can write JSON.
//!
//!     server-load make-model --from MINILM_DIR --out DIR
//!         An ms-marco-MiniLM-L-6-shaped BERT cross-encoder (6 layers, hidden
//!         384, uncased WordPiece) from the real all-MiniLM-L6-v2 encoder
//!         weights plus a seeded classifier head: real compute and real
//!         tokenization, random relevance.
//!     server-load throughput --url URL --model DIR [--clients 32] [--requests 96] [--docs 1-8] [--words 40-160] [--json F]
//!         The same pairs scored in this process by `compute_score` (what
//!         `crossrank score` runs, its default options) and through the
//!         server by CLIENTS concurrent clients sending requests of DOCS
//!         documents each; pairs/s of both, the ratio, and the largest
//!         |server - in-process| score difference.
//!     server-load load --url URL --pid PID [--clients 1000] [--docs 1-16] [--words 10-400] [--bad 200] [--json F]
//!         CLIENTS clients at once, one request each (mixed /rerank,
//!         /v2/rerank, /predict; mixed sizes), plus a burst of BAD oversize
//!         and malformed requests in the middle. Counts by status, lost
//!         (no complete HTTP answer), p50/p99, pairs/s, the server's peak RSS.
//!     server-load soak --url URL --pid PID [--minutes 10] [--rate 4] [--docs 1-8] [--json F]
//!         RATE requests/s at a steady (open-loop) rate for MINUTES, 5% of
//!         them malformed and 2% abandoned by their client mid-flight; the
//!         server's RSS sampled every 5 s. "flat" when RSS at the end is
//!         within 5% (and 16 MB) of RSS after the first minute.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use crossrank::{Checkpoint, Device, Reranker, ScoreOptions};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

#[path = "../common.rs"]
mod common;
use common::{Rng, arg, words};

/// Every request gets this long for a complete answer; past it, it is lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> Result<()> {
    common::help("usage: server-load make-model|throughput|load|soak ... (see benches/server/load.rs)");
    common::keep_freed_pages();
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "make-model" => make_model(Path::new(&req_arg("--from")?), Path::new(&req_arg("--out")?)),
        "throughput" | "load" | "soak" => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let url = req_arg("--url")?;
            let addr: SocketAddr = url.trim_start_matches("http://").trim_end_matches('/').parse().context("--url http://IP:PORT")?;
            let report = match cmd.as_str() {
                "throughput" => throughput(&rt, addr, &PathBuf::from(req_arg("--model")?))?,
                "load" => rt.block_on(load(addr, req_arg("--pid")?.parse()?))?,
                _ => rt.block_on(soak(addr, req_arg("--pid")?.parse()?))?,
            };
            if let Some(path) = arg("--json") {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
            }
            Ok(())
        }
        _ => bail!("usage: server-load make-model|throughput|load|soak ... (see benches/server/load.rs)"),
    }
}

fn req_arg(key: &str) -> Result<String> {
    arg(key).with_context(|| format!("{key} is required"))
}

fn range_arg(key: &str, default: (usize, usize)) -> Result<(usize, usize)> {
    match arg(key) {
        None => Ok(default),
        Some(r) => {
            let (a, b) = r.split_once('-').with_context(|| format!("{key} A-B"))?;
            Ok((a.parse()?, b.parse()?))
        }
    }
}

fn num_arg<T: std::str::FromStr>(key: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(arg(key).map(|s| s.parse()).transpose()?.unwrap_or(default))
}

// ---------------------------------------------------------------- model

fn make_model(from: &Path, out: &Path) -> Result<()> {
    let bytes = std::fs::read(from.join("model.safetensors")).with_context(|| format!("{}/model.safetensors", from.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let mut data: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let name = if name.starts_with("bert.") { name } else { format!("bert.{name}") };
        data.push((name, view.dtype(), view.shape().to_vec(), view.data().to_vec()));
    }
    let config: Value = serde_json::from_slice(&std::fs::read(from.join("config.json"))?)?;
    let hidden = config["hidden_size"].as_u64().context("hidden_size")? as usize;
    let mut rng = Rng(0xc1a55);
    let w: Vec<u8> = (0..hidden).flat_map(|_| (0.1 * rng.uniform()).to_le_bytes()).collect();
    data.push(("classifier.weight".into(), safetensors::Dtype::F32, vec![1, hidden], w));
    data.push(("classifier.bias".into(), safetensors::Dtype::F32, vec![1], 0.0f32.to_le_bytes().to_vec()));
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        data.iter().map(|(n, d, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b)?))).collect::<Result<_>>()?;
    std::fs::create_dir_all(out)?;
    safetensors::serialize_to_file(views, None, &out.join("model.safetensors"))?;
    let mut config = config;
    config["architectures"] = json!(["BertForSequenceClassification"]);
    config["id2label"] = json!({"0": "LABEL_0"});
    config["label2id"] = json!({"LABEL_0": 0});
    std::fs::write(out.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"] {
        if from.join(f).exists() {
            std::fs::copy(from.join(f), out.join(f))?;
        }
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

// ---------------------------------------------------------------- HTTP

#[derive(Clone, Debug)]
enum Outcome {
    /// A complete answer: status, latency, body.
    Answered(u16, Duration, Bytes),
    /// No complete HTTP answer (refused, reset, timed out, cut short).
    Lost(String),
}

/// One request on its own connection (a client, as RAG apps' HTTP clients
/// without a pool are).
async fn send(addr: SocketAddr, path: &str, body: Bytes) -> Outcome {
    let t = Instant::now();
    let go = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let req = hyper::Request::post(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| format!("send: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok::<_, String>((status, bytes))
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, go).await {
        Ok(Ok((status, bytes))) => Outcome::Answered(status, t.elapsed(), bytes),
        Ok(Err(e)) => Outcome::Lost(e),
        Err(_) => Outcome::Lost("timed out".into()),
    }
}

async fn get_text(addr: SocketAddr, path: &str) -> Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", addr.to_string()).body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    Ok(String::from_utf8_lossy(&resp.into_body().collect().await?.to_bytes()).into_owned())
}

/// The server's resident memory now and at its peak (MB).
fn rss_mb(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()).map_or(f64::NAN, |kb| kb / 1e3)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------- workload

/// A request of the mixed workload: endpoint, body, pairs in it.
#[derive(Clone)]
struct Request {
    path: &'static str,
    body: Bytes,
    pairs: usize,
    kind: &'static str,
}

fn rerank_request(rng: &mut Rng, docs: (usize, usize), passage: (usize, usize)) -> Request {
    let n = rng.range(docs.0, docs.1);
    let q = rng.range(4, 12);
    let query = words(rng, q);
    let texts: Vec<String> = (0..n)
        .map(|_| {
            let w = rng.range(passage.0, passage.1);
            words(rng, w)
        })
        .collect();
    match rng.range(0, 9) {
        0..=6 => Request {
            path: "/rerank",
            body: json!({"query": query, "texts": texts, "raw_scores": true}).to_string().into(),
            pairs: n,
            kind: "rerank",
        },
        7 | 8 => Request {
            path: "/v2/rerank",
            body: json!({"model": "m", "query": query, "documents": texts, "top_n": 3}).to_string().into(),
            pairs: n,
            kind: "v2/rerank",
        },
        _ => Request {
            path: "/predict",
            body: json!({"inputs": texts.iter().map(|t| [query.clone(), t.clone()]).collect::<Vec<_>>()}).to_string().into(),
            pairs: n,
            kind: "predict",
        },
    }
}

/// A request the server must refuse, and with which status.
fn bad_request(rng: &mut Rng, i: usize) -> (Request, u16) {
    let bad = |path, body: String, kind| Request { path, body: body.into(), pairs: 0, kind };
    match i % 6 {
        // over --payload-limit (2 MB)
        0 => (bad("/rerank", json!({"query": "q", "texts": ["x ".repeat(1_100_000)]}).to_string(), "oversize"), 413),
        // over --max-client-batch-size (32)
        1 => (bad("/rerank", json!({"query": "q", "texts": vec!["a"; 33]}).to_string(), "too many texts"), 422),
        // not JSON
        2 => (bad("/rerank", "{\"query\": \"q\", \"texts\": [\"a\"".into(), "malformed JSON"), 422),
        // wrong field types
        3 => (bad("/v2/rerank", json!({"query": 7, "documents": "d"}).to_string(), "wrong types"), 422),
        // no texts
        4 => (bad("/rerank", json!({"query": "q", "texts": []}).to_string(), "empty"), 400),
        // invalid UTF-8 inside a JSON string
        _ => {
            let mut b = br#"{"query": "q", "texts": [""#.to_vec();
            b.extend((0..rng.range(1, 64)).map(|_| 0xff));
            b.extend(br#""]}"#);
            (Request { path: "/rerank", body: b.into(), pairs: 0, kind: "invalid UTF-8" }, 422)
        }
    }
}

/// Does a 200 body answer the request (every text, valid indices)?
fn body_ok(r: &Request, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    match r.kind {
        "rerank" => v.as_array().is_some_and(|a| {
            let mut idx: Vec<u64> = a.iter().filter_map(|x| x["index"].as_u64()).collect();
            idx.sort_unstable();
            idx == (0..r.pairs as u64).collect::<Vec<_>>() && a.iter().all(|x| x["score"].as_f64().is_some_and(f64::is_finite))
        }),
        "v2/rerank" => v["results"].as_array().is_some_and(|a| a.len() == r.pairs.min(3)),
        "predict" => v.as_array().is_some_and(|a| a.len() == r.pairs),
        _ => false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

// ---------------------------------------------------------------- throughput

fn throughput(rt: &tokio::runtime::Runtime, addr: SocketAddr, model: &Path) -> Result<Value> {
    let clients: usize = num_arg("--clients", 32)?;
    let total: usize = num_arg("--requests", 96)?;
    let docs = range_arg("--docs", (1, 8))?;
    let passage = range_arg("--words", (40, 160))?;
    let mut rng = Rng(0x7417);
    // Requests: one query and its documents each.
    let requests: Vec<(String, Vec<String>)> = (0..total)
        .map(|_| {
            let n = rng.range(docs.0, docs.1);
            let q = rng.range(4, 12);
            let query = words(&mut rng, q);
            let texts = (0..n)
                .map(|_| {
                    let w = rng.range(passage.0, passage.1);
                    words(&mut rng, w)
                })
                .collect();
            (query, texts)
        })
        .collect();
    let pairs: Vec<(&str, &str)> = requests.iter().flat_map(|(q, ts)| ts.iter().map(move |t| (q.as_str(), t.as_str()))).collect();
    let n_pairs = pairs.len();

    // In process, as `crossrank score` runs: same library, same defaults.
    let reranker = Reranker::load(&Checkpoint::dir(model), &Device::flex())?;
    let opts = ScoreOptions::default();
    reranker.compute_score(&pairs[..pairs.len().min(16)], &opts)?; // first-call costs out of the timing
    let t = Instant::now();
    let want = reranker.compute_score(&pairs, &opts)?;
    let cli_s = t.elapsed().as_secs_f64();
    drop(reranker);

    // Through the server: CLIENTS clients, each sending its share in turn.
    let bodies: Vec<Bytes> =
        requests.iter().map(|(q, ts)| Bytes::from(json!({"query": q, "texts": ts, "raw_scores": true}).to_string())).collect();
    let bodies = Arc::new(bodies);
    let (server_s, answers) = rt.block_on(async {
        let _ = send(addr, "/rerank", bodies[0].clone()).await; // warm-up
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (bodies, next) = (bodies.clone(), next.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if i >= bodies.len() {
                            return got;
                        }
                        got.push((i, send(addr, "/rerank", bodies[i].clone()).await));
                    }
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.extend(t.await.unwrap_or_default());
        }
        (t.elapsed().as_secs_f64(), answers)
    });
    // Every answer must carry the in-process scores.
    let offsets: Vec<usize> = requests.iter().scan(0, |o, (_, ts)| Some(std::mem::replace(o, *o + ts.len()))).collect();
    let (mut max_diff, mut failed) = (0f64, 0usize);
    for (i, a) in &answers {
        let Outcome::Answered(200, _, body) = a else {
            failed += 1;
            continue;
        };
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        for r in v.as_array().into_iter().flatten() {
            let (Some(k), Some(s)) = (r["index"].as_u64(), r["score"].as_f64()) else { continue };
            max_diff = max_diff.max((s - want[offsets[*i] + k as usize] as f64).abs());
        }
    }
    let (cli, server) = (n_pairs as f64 / cli_s, n_pairs as f64 / server_s);
    println!("\n| | pairs | seconds | pairs/s |\n|---|---|---|---|");
    println!("| in process (compute_score, CLI defaults) | {n_pairs} | {cli_s:.2} | {cli:.1} |");
    println!("| server, {clients} clients x {total} requests of {}-{} docs | {n_pairs} | {server_s:.2} | {server:.1} |", docs.0, docs.1);
    println!(
        "\nserver / in-process throughput: **{:.2}x**; max |server - in-process| score: {max_diff:.2e}; failed requests: {failed}",
        server / cli
    );
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(json!({"pairs": n_pairs, "clients": clients, "requests": total, "cli_pairs_per_s": cli, "server_pairs_per_s": server,
              "ratio": server / cli, "max_abs_diff": max_diff}))
}

// ---------------------------------------------------------------- load

#[derive(Default)]
struct Tally {
    by_status: std::collections::BTreeMap<u16, usize>,
    by_kind: std::collections::BTreeMap<(String, u16), usize>,
    lost: Vec<String>,
    latencies: Vec<Duration>,
    pairs: usize,
    bad_bodies: usize,
    unexpected: Vec<String>,
}

impl Tally {
    fn add(&mut self, r: &Request, expect: Option<u16>, o: &Outcome) {
        match o {
            Outcome::Answered(status, took, body) => {
                *self.by_status.entry(*status).or_default() += 1;
                *self.by_kind.entry((r.kind.to_string(), *status)).or_default() += 1;
                if *status == 200 {
                    self.latencies.push(*took);
                    self.pairs += r.pairs;
                    if !body_ok(r, body) {
                        self.bad_bodies += 1;
                    }
                }
                // A refusal for load (429) is always a valid answer.
                let fine = match expect {
                    None => *status == 200 || *status == 429,
                    Some(e) => *status == e || *status == 429,
                };
                if !fine && self.unexpected.len() < 8 {
                    self.unexpected.push(format!("{} -> {status}: {}", r.kind, String::from_utf8_lossy(&body[..body.len().min(200)])));
                }
            }
            Outcome::Lost(e) => self.lost.push(format!("{}: {e}", r.kind)),
        }
    }

    fn sent(&self) -> usize {
        self.by_status.values().sum::<usize>() + self.lost.len()
    }

    fn fivexx(&self) -> usize {
        self.by_status.iter().filter(|(s, _)| **s >= 500).map(|(_, n)| n).sum()
    }

    fn report(&mut self, wall: f64, rss: (f64, f64)) -> Value {
        self.latencies.sort_unstable();
        let get = |s: u16| self.by_status.get(&s).copied().unwrap_or(0);
        println!(
            "\n| sent | 200 | 429 | 413 | 422 | 400 | other 4xx | 5xx | lost | p50 ms | p99 ms | pairs/s | server RSS now / peak MB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let other4 = self
            .by_status
            .iter()
            .filter(|(s, _)| (400..500).contains(*s) && ![429, 413, 422, 400].contains(*s))
            .map(|(_, n)| n)
            .sum::<usize>();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.0} / {:.0} |",
            self.sent(),
            get(200),
            get(429),
            get(413),
            get(422),
            get(400),
            other4,
            self.fivexx(),
            self.lost.len(),
            percentile(&self.latencies, 0.5),
            percentile(&self.latencies, 0.99),
            self.pairs as f64 / wall,
            rss.0,
            rss.1
        );
        println!("\nby kind: {}", self.by_kind.iter().map(|((k, s), n)| format!("{k} {s}: {n}")).collect::<Vec<_>>().join(", "));
        for l in self.lost.iter().take(5) {
            println!("lost: {l}");
        }
        for u in &self.unexpected {
            println!("unexpected: {u}");
        }
        if self.bad_bodies > 0 {
            println!("200s whose body did not answer the request: {}", self.bad_bodies);
        }
        json!({
            "sent": self.sent(), "status": self.by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "lost": self.lost.len(), "5xx": self.fivexx(), "unexpected": self.unexpected, "bad_bodies": self.bad_bodies,
            "p50_ms": percentile(&self.latencies, 0.5), "p99_ms": percentile(&self.latencies, 0.99),
            "pairs_per_s": self.pairs as f64 / wall, "wall_s": wall, "rss_mb": rss.0, "peak_rss_mb": rss.1,
        })
    }

    fn ok(&self) -> bool {
        self.lost.is_empty() && self.fivexx() == 0 && self.bad_bodies == 0 && self.unexpected.is_empty()
    }
}

async fn load(addr: SocketAddr, pid: u32) -> Result<Value> {
    let clients: usize = num_arg("--clients", 1000)?;
    let n_bad: usize = num_arg("--bad", 200)?;
    let docs = range_arg("--docs", (1, 16))?;
    let passage = range_arg("--words", (10, 400))?;
    let mut rng = Rng(0x10ad);
    let good: Vec<Request> = (0..clients).map(|_| rerank_request(&mut rng, docs, passage)).collect();
    let bad: Vec<(Request, u16)> = (0..n_bad).map(|i| bad_request(&mut rng, i)).collect();
    let rss_before = rss_mb(pid);
    let t = Instant::now();
    // Everyone at once; the bad burst lands while the good ones are queued.
    let mut tasks = Vec::new();
    for r in good {
        tasks.push(tokio::spawn(async move {
            let o = send(addr, r.path, r.body.clone()).await;
            (r, None, o)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (r, expect) in bad {
        tasks.push(tokio::spawn(async move {
            let o = send(addr, r.path, r.body.clone()).await;
            (r, Some(expect), o)
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        let (r, expect, o) = task.await?;
        tally.add(&r, expect, &o);
    }
    let wall = t.elapsed().as_secs_f64();
    println!(
        "\nload: {clients} clients at once (docs {}-{}, passages {}-{} words) + {n_bad} bad requests; {wall:.1} s",
        docs.0, docs.1, passage.0, passage.1
    );
    println!("server RSS before: {:.0} MB", rss_before.0);
    let report = tally.report(wall, rss_mb(pid));
    let metrics = get_text(addr, "/metrics").await.unwrap_or_default();
    let depth = metrics.lines().find(|l| l.starts_with("crossrank_queue_depth ")).unwrap_or("crossrank_queue_depth ?").to_string();
    println!("after the run: {depth}");
    if !tally.ok() {
        bail!("load test failed: lost, 5xx, wrong answers or unexpected statuses (above)");
    }
    Ok(report)
}

// ---------------------------------------------------------------- soak

async fn soak(addr: SocketAddr, pid: u32) -> Result<Value> {
    let minutes: f64 = num_arg("--minutes", 10.0)?;
    let rate: f64 = num_arg("--rate", 4.0)?;
    let docs = range_arg("--docs", (1, 8))?;
    let passage = range_arg("--words", (10, 300))?;
    let mut rng = Rng(0x50a4);
    // Warm-up: full passes of the workload's longest pairs, the largest
    // activations it can make. The allocator keeps freed pages (as the CLI
    // sets it, for speed), so RSS is a high-water mark: without this, the
    // first window that happens to hold the longest pairs steps it up once,
    // mid-soak, which is not growth.
    let longest = json!({"query": words(&mut rng, 12), "texts": vec![words(&mut rng, passage.1); docs.1], "raw_scores": true}).to_string();
    let warm: Vec<_> = (0..8).map(|_| tokio::spawn(send(addr, "/rerank", Bytes::from(longest.clone())))).collect();
    for w in warm {
        match w.await? {
            Outcome::Answered(200, _, _) => {}
            other => bail!("warm-up request failed: {other:?}"),
        }
    }
    let rss_warm = rss_mb(pid).0;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(minutes * 60.0);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Request, Option<u16>, Outcome)>();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut next_sample = start;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0usize;
    let mut abandoned = 0usize;
    while Instant::now() < end {
        interval.tick().await;
        i += 1;
        let roll = rng.range(0, 99);
        let (r, expect) = if roll < 5 {
            let (r, e) = bad_request(&mut rng, i);
            (r, Some(e))
        } else {
            (rerank_request(&mut rng, docs, passage), None)
        };
        let (r, expect) = if r.kind == "oversize" { (rerank_request(&mut rng, docs, passage), None) } else { (r, expect) };
        let tx = tx.clone();
        if (5..7).contains(&roll) {
            // Abandoned: the client goes away 50 ms in (its work must be dropped, not leak).
            abandoned += 1;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_millis(50), send(addr, r.path, r.body.clone())).await;
            });
            continue;
        }
        tokio::spawn(async move {
            let o = send(addr, r.path, r.body.clone()).await;
            let _ = tx.send((r, expect, o));
        });
        if Instant::now() >= next_sample {
            samples.push((start.elapsed().as_secs_f64(), rss_mb(pid).0));
            next_sample += Duration::from_secs(5);
        }
    }
    drop(tx);
    let mut tally = Tally::default();
    while let Some((r, expect, o)) = rx.recv().await {
        tally.add(&r, expect, &o);
    }
    let wall = start.elapsed().as_secs_f64();
    samples.push((wall, rss_mb(pid).0));
    println!(
        "\nsoak: {minutes} min at {rate} requests/s (docs {}-{}), 5% malformed, {abandoned} abandoned by their client",
        docs.0, docs.1
    );
    let report = tally.report(wall, rss_mb(pid));
    let after_warmup = samples.iter().find(|(t, _)| *t >= 60.0f64.min(wall / 2.0)).map_or(f64::NAN, |s| s.1);
    let last = samples.last().map_or(f64::NAN, |s| s.1);
    let max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    // Least-squares slope after the first minute, MB per minute.
    let steady: Vec<&(f64, f64)> = samples.iter().filter(|(t, _)| *t >= 60.0f64.min(wall / 2.0)).collect();
    let n = steady.len() as f64;
    let (mt, mm) = (steady.iter().map(|s| s.0).sum::<f64>() / n, steady.iter().map(|s| s.1).sum::<f64>() / n);
    let slope = steady.iter().map(|s| (s.0 - mt) * (s.1 - mm)).sum::<f64>()
        / steady.iter().map(|s| (s.0 - mt).powi(2)).sum::<f64>().max(1e-9)
        * 60.0;
    let flat = last <= after_warmup * 1.05 && last - after_warmup <= 16.0;
    println!(
        "\nserver RSS: {rss_warm:.0} MB after the warm-up, {after_warmup:.0} MB after the first minute, {last:.0} MB at the end, {max:.0} MB at most, slope {slope:+.2} MB/min -> {}",
        if flat { "flat" } else { "GROWS" }
    );
    let curve: Vec<String> = samples.iter().step_by((samples.len() / 10).max(1)).map(|(t, m)| format!("{t:.0}s {m:.0}")).collect();
    println!("RSS curve (s MB): {}", curve.join(", "));
    let mut report = report;
    report["abandoned"] = json!(abandoned);
    report["rss_after_warmup_mb"] = json!(rss_warm);
    report["rss_after_first_minute_mb"] = json!(after_warmup);
    report["rss_slope_mb_per_min"] = json!(slope);
    report["rss_end_mb"] = json!(last);
    report["rss_flat"] = json!(flat);
    report["rss_samples"] = json!(samples);
    if !tally.ok() || !flat {
        bail!("soak failed: lost, 5xx, wrong answers, unexpected statuses or RSS growth (above)");
    }
    Ok(report)
}
