//! The real server on a loopback port, called over HTTP: every endpoint's
//! scores equal `compute_score` on the fixtures; each error code; auth;
//! CORS; shutdown with requests in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crossrank::{Checkpoint, Device, Embedder, Reranker, ScoreOptions, sigmoid};
use crossrank_server::{Model, ServerConfig, router, serve};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn reranker(name: &str) -> Reranker {
    Reranker::load(&Checkpoint::dir(fixture(name)), &Device::flex()).unwrap()
}

/// A running server; shut down (gracefully) on drop.
struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(model: Model, config: ServerConfig) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, router(model, config), async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Self { base: format!("http://{addr}"), stop: Some(stop_tx), thread: Some(thread) }
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build()
}

/// POST JSON; (status, body, headers we care about).
fn post(url: &str, body: &Value, auth: Option<&str>) -> (u16, Value, Option<String>) {
    let mut req = agent().post(url).set("Content-Type", "application/json");
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let resp = match req.send_string(&body.to_string()) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = resp.status();
    let tokens = resp.header("x-compute-tokens").map(str::to_string);
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), tokens)
}

fn pairs() -> (String, Vec<String>) {
    let e: Value = serde_json::from_slice(&std::fs::read(fixture("bert-tiny").join("expected.json")).unwrap()).unwrap();
    let pairs = e["pairs"].as_array().unwrap();
    let query = pairs[0][0].as_str().unwrap().to_string();
    let docs = pairs.iter().map(|p| p[1].as_str().unwrap().to_string()).take(8).collect();
    (query, docs)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

#[test]
fn every_endpoint_scores_as_compute_score() {
    for model in ["bert-tiny", "gemma-tiny"] {
        let (query, docs) = pairs();
        let lib = reranker(model);
        let want =
            lib.compute_score(&docs.iter().map(|d| (query.as_str(), d.as_str())).collect::<Vec<_>>(), &ScoreOptions::default()).unwrap();
        let server = Server::start(Model::Reranker(reranker(model)), ServerConfig::default());
        let b = &server.base;

        // TEI /rerank: every text, best first; sigmoid unless raw_scores.
        let (status, body, tokens) =
            post(&format!("{b}/rerank"), &json!({"query": query, "texts": docs, "raw_scores": true, "return_text": true}), None);
        assert_eq!(status, 200, "{body}");
        assert!(tokens.is_some_and(|t| t.parse::<usize>().unwrap() > 0));
        let ranks = body.as_array().unwrap();
        assert_eq!(ranks.len(), docs.len());
        for w in ranks.windows(2) {
            assert!(w[0]["score"].as_f64() >= w[1]["score"].as_f64());
        }
        for r in ranks {
            let i = r["index"].as_u64().unwrap() as usize;
            assert!(close(r["score"].as_f64().unwrap() as f32, want[i]), "{model} /rerank {i}");
            assert_eq!(r["text"].as_str().unwrap(), docs[i]);
        }
        let (_, body, _) = post(&format!("{b}/rerank"), &json!({"query": query, "texts": docs}), None);
        for r in body.as_array().unwrap() {
            let i = r["index"].as_u64().unwrap() as usize;
            assert!(close(r["score"].as_f64().unwrap() as f32, sigmoid(want[i])));
            assert!(r.get("text").is_none());
        }

        // Cohere v1/v2: relevance_score is the sigmoid; top_n; documents as strings or objects.
        for path in ["/v1/rerank", "/v2/rerank"] {
            let documents: Vec<Value> =
                docs.iter().enumerate().map(|(i, d)| if i % 2 == 0 { json!(d) } else { json!({"text": d}) }).collect();
            let (status, body, _) = post(
                &format!("{b}{path}"),
                &json!({"model": "x", "query": query, "documents": documents, "top_n": 3, "return_documents": true}),
                None,
            );
            assert_eq!(status, 200, "{body}");
            let results = body["results"].as_array().unwrap();
            assert_eq!(results.len(), 3);
            let mut best: Vec<usize> = (0..docs.len()).collect();
            best.sort_by(|&x, &y| want[y].total_cmp(&want[x]));
            for (r, &w) in results.iter().zip(&best) {
                assert_eq!(r["index"].as_u64().unwrap() as usize, w);
                assert!(close(r["relevance_score"].as_f64().unwrap() as f32, sigmoid(want[w])));
                assert_eq!(r["document"]["text"].as_str().unwrap(), docs[w]);
            }
            assert!(body["id"].is_string() && body["meta"]["tokens"]["input_tokens"].as_u64().unwrap() > 0);
            assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
        }

        // /predict: one pair, and a batch.
        let (status, body, _) = post(&format!("{b}/predict"), &json!({"inputs": [query, docs[1]], "raw_scores": true}), None);
        assert_eq!(status, 200, "{body}");
        assert!(close(body[0]["score"].as_f64().unwrap() as f32, want[1]));
        let batch: Vec<Value> = docs.iter().map(|d| json!([query, d])).collect();
        let (_, body, _) = post(&format!("{b}/predict"), &json!({"inputs": batch}), None);
        for (i, p) in body.as_array().unwrap().iter().enumerate() {
            assert!(close(p[0]["score"].as_f64().unwrap() as f32, sigmoid(want[i])));
        }
    }
}

#[test]
fn many_concurrent_clients_share_passes_and_get_their_own_scores() {
    let (query, docs) = pairs();
    let lib = reranker("bert-tiny");
    let want = lib.compute_score(&docs.iter().map(|d| (query.as_str(), d.as_str())).collect::<Vec<_>>(), &ScoreOptions::default()).unwrap();
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), ServerConfig::default());
    let threads: Vec<_> = (0..24)
        .map(|c| {
            let (b, query, docs, want) = (server.base.clone(), query.clone(), docs.clone(), want.clone());
            std::thread::spawn(move || {
                let n = 1 + c % docs.len();
                let mine: Vec<&String> = docs.iter().cycle().skip(c).take(n).collect();
                let (status, body, _) = post(&format!("{b}/rerank"), &json!({"query": query, "texts": mine, "raw_scores": true}), None);
                assert_eq!(status, 200, "{body}");
                for r in body.as_array().unwrap() {
                    let i = r["index"].as_u64().unwrap() as usize;
                    let d = (c + i) % docs.len();
                    assert!(close(r["score"].as_f64().unwrap() as f32, want[d]), "client {c} text {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let metrics = agent().get(&format!("{}/metrics", server.base)).call().unwrap().into_string().unwrap();
    assert!(metrics.contains("crossrank_requests_total") && metrics.contains("crossrank_batch_pairs"), "{metrics}");
}

#[test]
fn errors_have_teis_codes_and_shape() {
    let config = ServerConfig { max_client_batch_size: 4, payload_limit: 10_000, ..Default::default() };
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), config);
    let b = &server.base;
    let check = |body: Value, status_want: u16, kind: &str, (status, got, _): (u16, Value, Option<String>)| {
        assert_eq!(status, status_want, "{body} -> {got}");
        assert_eq!(got["error_type"], kind, "{got}");
        assert!(got["error"].as_str().is_some_and(|e| !e.is_empty()));
    };
    let req = json!({"query": "q", "texts": []});
    check(req.clone(), 400, "Empty", post(&format!("{b}/rerank"), &req, None));
    let req = json!({"query": "q", "texts": ["a", "b", "c", "d", "e"]});
    check(req.clone(), 422, "Validation", post(&format!("{b}/rerank"), &req, None));
    let req = json!({"query": "q", "textz": ["a"]});
    check(req.clone(), 422, "Validation", post(&format!("{b}/rerank"), &req, None));
    let req = json!({"query": "q", "texts": ["x".repeat(20_000)]});
    check(req.clone(), 413, "PayloadTooLarge", post(&format!("{b}/rerank"), &req, None));
    let long = "word ".repeat(1500);
    let req = json!({"query": "q", "texts": [long], "truncate": false});
    check(req.clone(), 422, "Validation", post(&format!("{b}/rerank"), &req, None));
    let req = json!({"query": "q", "texts": ["a"], "truncation_direction": "Left"});
    check(req.clone(), 422, "Validation", post(&format!("{b}/rerank"), &req, None));
    let req = json!({"inputs": "just one text"});
    check(req.clone(), 422, "Validation", post(&format!("{b}/predict"), &req, None));
    let req = json!({"inputs": ["a"]});
    check(req.clone(), 422, "Validation", post(&format!("{b}/embed"), &req, None));
    // A non-finite score is the backend's failure: 424.
    let nan_dir = tempfile_copy("bert-tiny");
    patch_nan(&nan_dir, "classifier.bias");
    let nan = Server::start(Model::Reranker(Reranker::load(&Checkpoint::dir(&nan_dir), &Device::flex()).unwrap()), ServerConfig::default());
    let req = json!({"query": "q", "texts": ["a"]});
    check(req.clone(), 424, "Backend", post(&format!("{}/rerank", nan.base), &req, None));
    let _ = std::fs::remove_dir_all(nan_dir);
}

#[test]
fn over_the_concurrency_limit_is_429_at_once() {
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), ServerConfig { max_concurrent_requests: 1, ..Default::default() });
    let addr = server.base.trim_start_matches("http://").to_string();
    // A client that sends its headers and never its body holds the one slot.
    let mut hog = TcpStream::connect(&addr).unwrap();
    write!(hog, "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").unwrap();
    hog.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = std::time::Instant::now();
    let (status, body, _) = post(&format!("{}/rerank", server.base), &json!({"query": "q", "texts": ["a"]}), None);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error_type"], "Overloaded");
    assert!(t.elapsed() < Duration::from_secs(5), "refused at once, not queued");
    drop(hog);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = post(&format!("{}/rerank", server.base), &json!({"query": "q", "texts": ["a"]}), None);
    assert_eq!(status, 200);
}

#[test]
fn api_key_and_cors() {
    let config =
        ServerConfig { api_key: Some("s3cret".into()), cors_allow_origin: vec!["https://app.example".into()], ..Default::default() };
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), config);
    let b = &server.base;
    let req = json!({"query": "q", "texts": ["a"]});
    let (status, body, _) = post(&format!("{b}/rerank"), &req, None);
    assert_eq!((status, body["error_type"].as_str()), (401, Some("Unauthorized")));
    assert_eq!(post(&format!("{b}/rerank"), &req, Some("Bearer nope")).0, 401);
    assert_eq!(post(&format!("{b}/rerank"), &req, Some("Bearer s3cret")).0, 200);
    // A preflight is answered without the key.
    let resp = agent()
        .request("OPTIONS", &format!("{b}/rerank"))
        .set("Origin", "https://app.example")
        .set("Access-Control-Request-Method", "POST")
        .set("Access-Control-Request-Headers", "authorization,content-type")
        .call()
        .unwrap();
    assert_eq!(resp.header("access-control-allow-origin"), Some("https://app.example"));
    let other = agent()
        .request("OPTIONS", &format!("{b}/rerank"))
        .set("Origin", "https://evil.example")
        .set("Access-Control-Request-Method", "POST")
        .call();
    let allowed = other.ok().and_then(|r| r.header("access-control-allow-origin").map(str::to_string));
    assert_eq!(allowed, None);
}

#[test]
fn info_health_docs_and_embed() {
    let server =
        Server::start(Model::Reranker(reranker("bert-tiny")), ServerConfig { model_id: "fixture/bert-tiny".into(), ..Default::default() });
    let info: Value = agent().get(&format!("{}/info", server.base)).call().unwrap().into_json().unwrap();
    assert_eq!(info["model_id"], "fixture/bert-tiny");
    assert_eq!(info["max_input_length"], 512);
    assert_eq!(agent().get(&format!("{}/health", server.base)).call().unwrap().status(), 200);
    let spec: Value = agent().get(&format!("{}/openapi.json", server.base)).call().unwrap().into_json().unwrap();
    for p in ["/rerank", "/predict", "/v2/rerank", "/embed", "/info"] {
        assert!(spec["paths"].get(p).is_some(), "{p} missing from the OpenAPI spec");
    }
    let docs = agent().get(&format!("{}/docs", server.base)).call().unwrap().into_string().unwrap();
    assert!(docs.contains("<html") || docs.contains("<!DOCTYPE"), "{docs}");

    let emb = Embedder::load(&Checkpoint::dir(fixture("bert-tiny")), &Device::flex()).unwrap();
    let want =
        emb.embed(&["hello world", "a second text"], &crossrank::EmbedOptions { normalize: Some(true), ..Default::default() }).unwrap();
    let server = Server::start(Model::Embedder(emb), ServerConfig::default());
    let (status, body, _) = post(&format!("{}/embed", server.base), &json!({"inputs": ["hello world", "a second text"]}), None);
    assert_eq!(status, 200, "{body}");
    let got: Vec<Vec<f32>> = serde_json::from_value(body).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(g.iter().zip(w).all(|(a, b)| close(*a, *b)));
    }
    let (status, _, _) = post(&format!("{}/rerank", server.base), &json!({"query": "q", "texts": ["a"]}), None);
    assert_eq!(status, 422);
}

#[test]
fn shutdown_answers_every_request_in_flight() {
    let (query, docs) = pairs();
    let mut server = Server::start(Model::Reranker(reranker("gemma-tiny")), ServerConfig { max_batch_tokens: 64, ..Default::default() });
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let (b, q, d) = (server.base.clone(), query.clone(), docs.clone());
            std::thread::spawn(move || post(&format!("{b}/rerank"), &json!({"query": q, "texts": d}), None).0)
        })
        .collect();
    // Time for every client to connect and send its request (one that had
    // not would find the listener closed, which is not what is tested).
    std::thread::sleep(Duration::from_millis(500));
    server.shutdown();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    // Every request the server accepted is answered; one that raced the
    // shutdown may find the port closed (ureq then panics in `post`, failing
    // the join) — so all must be 200.
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

fn tempfile_copy(model: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crossrank-server-test-{}-{model}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture(model)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// Overwrite tensor `name` (f32) with NaN in place, in whichever shard has it.
fn patch_nan(dir: &std::path::Path, name: &str) {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    let shard = dir.join(index["weight_map"][name].as_str().unwrap());
    let mut bytes = Vec::new();
    std::fs::File::open(&shard).unwrap().read_to_end(&mut bytes).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let (a, z) = (header[name]["data_offsets"][0].as_u64().unwrap() as usize, header[name]["data_offsets"][1].as_u64().unwrap() as usize);
    for k in (8 + n + a..8 + n + z).step_by(4) {
        bytes[k..k + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&shard, bytes).unwrap();
}

/// A counter or gauge from `/metrics` (0 when not yet there).
fn metric(base: &str, name: &str) -> f64 {
    let text = agent().get(&format!("{base}/metrics")).call().unwrap().into_string().unwrap();
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_client_that_goes_away_has_its_work_dropped() {
    // One pair per pass keeps the worker busy on a long request (the
    // blocker) while the victim's request waits behind it in the queue.
    let config = ServerConfig { max_batch_pairs: 1, max_client_batch_size: 4000, payload_limit: 50_000_000, ..Default::default() };
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), config);
    let b = server.base.clone();
    let n_blocker = 300; // ~4 s of passes in a debug build
    let long = "the quick brown fox jumps over the lazy dog ".repeat(60);
    let blocker = {
        let b = b.clone();
        let texts = vec![long; n_blocker];
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            let status = post(&format!("{b}/rerank"), &json!({"query": "q", "texts": texts}), None).0;
            (status, t.elapsed())
        })
    };
    wait_for("the blocker's first pass", || metric(&b, "crossrank_pairs_scored_total") >= 1.0);
    // The victim: short texts (passes take the longest pairs first, so none
    // of these can be taken while the blocker's remain).
    let body = json!({"query": "q", "texts": ["a", "b", "c", "d", "e", "f", "g", "h"]}).to_string();
    let mut victim = TcpStream::connect(b.trim_start_matches("http://")).unwrap();
    write!(victim, "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .unwrap();
    victim.flush().unwrap();
    wait_for("the victim in the queue", || metric(&b, "crossrank_queue_depth") >= 2.0);
    victim.shutdown(std::net::Shutdown::Both).unwrap();
    drop(victim);
    wait_for("the victim's work dropped", || metric(&b, "crossrank_requests_dropped_total") >= 1.0);
    assert!(!blocker.is_finished(), "the blocker must still be running when the victim is dropped (make it longer)");
    let (status, took) = blocker.join().unwrap();
    assert_eq!(status, 200);
    eprintln!("blocker took {took:?}");
    // Only the blocker's pairs were computed.
    assert_eq!(metric(&b, "crossrank_pairs_scored_total"), n_blocker as f64);
    assert_eq!(metric(&b, "crossrank_requests_dropped_total"), 1.0);
    assert_eq!(metric(&b, "crossrank_queue_depth"), 0.0);
}

#[test]
fn requests_finish_in_arrival_order_not_longest_first() {
    // Small windows: a window is the oldest requests up to two passes of
    // 512 tokens. A short request queued before twenty long ones must not
    // wait for all of them (longest-first over the whole queue made it last).
    let config = ServerConfig { max_batch_pairs: 1, max_batch_tokens: 512, max_client_batch_size: 1000, ..Default::default() };
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), config);
    let b = server.base.clone();
    let long = "the quick brown fox jumps over the lazy dog ".repeat(60);
    let client = |texts: Vec<String>| {
        let b = b.clone();
        std::thread::spawn(move || {
            let status = post(&format!("{b}/rerank"), &json!({"query": "q", "texts": texts}), None).0;
            (status, std::time::Instant::now())
        })
    };
    let blocker = client(vec![long.clone(); 200]);
    wait_for("the blocker's first pass", || metric(&b, "crossrank_pairs_scored_total") >= 1.0);
    let short = client(vec!["a".into()]);
    wait_for("the short request queued", || metric(&b, "crossrank_queue_depth") >= 2.0);
    let longs: Vec<_> = (0..20).map(|_| client(vec![long.clone()])).collect();
    wait_for("the long requests queued", || metric(&b, "crossrank_queue_depth") >= 22.0);
    assert!(!blocker.is_finished(), "the blocker must still be running when all are queued (make it longer)");
    assert_eq!(blocker.join().unwrap().0, 200);
    let (status, short_done) = short.join().unwrap();
    assert_eq!(status, 200);
    let after: Vec<std::time::Instant> = longs.into_iter().map(|l| l.join().unwrap()).map(|(s, t)| (assert_eq!(s, 200), t).1).collect();
    let later = after.iter().filter(|&&t| t > short_done).count();
    // Its window holds it and the first two long requests (sorted longest
    // first, it goes last of the three); the other 18 come after it.
    assert!(later >= 15, "the short request finished after {} of the 20 long ones queued behind it", 20 - later);
}

#[test]
fn maxp_over_http_is_the_librarys_best_window_in_code_points() {
    // A long passage (non-ASCII before the needle, so code points differ
    // from bytes), and a short one that fits.
    let long =
        format!("{}Pandas eat bamboo. {}", "Ünïcödé kernel text about run queues and processors. ".repeat(60), "More text. ".repeat(40));
    let docs = vec![long.clone(), "Pandas eat bamboo.".to_string()];
    let query = "what do pandas eat";
    let opts = ScoreOptions { long_passages: crossrank::LongPassages::Maxp, passage_stride: Some(96), ..Default::default() };
    let lib = reranker("bert-tiny");
    let pairs: Vec<(&str, &str)> = docs.iter().map(|d| (query, d.as_str())).collect();
    let want = lib.compute_passage_scores(&pairs, &opts).unwrap().remove(0);
    assert!(want[0].windows > 1 && want[1].windows == 1);
    let truncated = lib.compute_score(&pairs, &ScoreOptions::default()).unwrap();
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), ServerConfig::default());
    let b = &server.base;
    for (path, body) in [
        ("rerank", json!({"query": query, "texts": docs, "raw_scores": true, "long_passages": "maxp", "passage_stride": 96})),
        ("v2/rerank", json!({"query": query, "documents": docs, "long_passages": "maxp", "passage_stride": 96})),
    ] {
        let (status, body, _) = post(&format!("{b}/{path}"), &body, None);
        assert_eq!(status, 200, "{body}");
        let results = if path == "rerank" { body.clone() } else { body["results"].clone() };
        for r in results.as_array().unwrap() {
            let i = r["index"].as_u64().unwrap() as usize;
            let score = r.get("score").or(r.get("relevance_score")).unwrap().as_f64().unwrap() as f32;
            let expect = if path == "rerank" { want[i].score } else { sigmoid(want[i].score) };
            assert!(close(score, expect), "{path} {i}: {score} vs {expect}");
            let (start, end) = want[i].char_span(&docs[i]).unwrap();
            assert_eq!((r["window"]["start"].as_u64().unwrap() as usize, r["window"]["end"].as_u64().unwrap() as usize), (start, end));
            assert_eq!(r["window"]["windows"].as_u64().unwrap() as usize, want[i].windows);
            // Code points: the span cut from the text as Python would cut it.
            let text: String = docs[i].chars().skip(start).take(end - start).collect();
            let (a, z) = want[i].span.unwrap();
            assert_eq!(text, docs[i][a..z]);
        }
    }
    // Without the field: truncate, no window.
    let (_, body, _) = post(&format!("{b}/rerank"), &json!({"query": query, "texts": docs, "raw_scores": true}), None);
    for r in body.as_array().unwrap() {
        let i = r["index"].as_u64().unwrap() as usize;
        assert!(close(r["score"].as_f64().unwrap() as f32, truncated[i]));
        assert!(r.get("window").is_none());
    }
    // A bad value is a 422 naming the field.
    let (status, body, _) = post(&format!("{b}/rerank"), &json!({"query": query, "texts": docs, "long_passages": "firstp"}), None);
    assert_eq!(status, 422, "{body}");
}

/// What TEI, Infinity and Cohere clients and Kubernetes send: `documents`
/// on `/rerank`, `truncation_direction` in either case, probes without
/// the key, `/v1/models`, a request id on every response.
#[test]
fn drop_in_for_tei_infinity_cohere_and_kubernetes() {
    let (query, docs) = pairs();
    let lib = reranker("bert-tiny");
    let want = lib.compute_score(&docs.iter().map(|d| (query.as_str(), d.as_str())).collect::<Vec<_>>(), &ScoreOptions::default()).unwrap();
    let config = ServerConfig { api_key: Some("k".into()), model_id: "served-name".into(), ..Default::default() };
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), config);
    let b = &server.base;
    let key = Some("Bearer k");
    // Probes and scrapers need no key; everything else does.
    for path in ["/health", "/ping", "/metrics"] {
        assert_eq!(agent().get(&format!("{b}{path}")).call().map(|r| r.status()).unwrap_or(0), 200, "{path}");
    }
    assert_eq!(post(&format!("{b}/rerank"), &json!({"query": "q", "texts": ["a"]}), None).0, 401);
    // Infinity / Cohere v1 body on /rerank: Cohere's answer.
    let body = json!({"model": "x", "query": query, "documents": docs, "top_n": 3, "return_documents": true});
    let (status, got, _) = post(&format!("{b}/rerank"), &body, key);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["model"], "served-name");
    assert!(got["id"].as_str().is_some_and(|id| id.len() >= 32), "a generated request id: {got}");
    // The response id is the request's x-request-id.
    let v2: Value = agent()
        .post(&format!("{b}/v2/rerank"))
        .set("Authorization", "Bearer k")
        .set("x-request-id", "client-id-7")
        .send_json(json!({"query": "q", "documents": ["a"]}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v2["id"], "client-id-7");
    let results = got["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let i = r["index"].as_u64().unwrap() as usize;
        assert!(close(r["relevance_score"].as_f64().unwrap() as f32, sigmoid(want[i])), "{r}");
        assert_eq!(r["document"]["text"], docs[i]);
    }
    // TEI's lowercase truncation_direction.
    for dir in ["right", "Right", "RIGHT"] {
        let (status, got, _) = post(&format!("{b}/rerank"), &json!({"query": "q", "texts": ["a"], "truncation_direction": dir}), key);
        assert_eq!(status, 200, "{dir}: {got}");
    }
    let (status, _, _) = post(&format!("{b}/rerank"), &json!({"query": "q", "texts": ["a"], "truncation_direction": "left"}), key);
    assert_eq!(status, 422);
    let (status, _, _) = post(&format!("{b}/rerank"), &json!({"query": "q", "texts": ["a"], "truncation_direction": "up"}), key);
    assert_eq!(status, 422);
    // /v1/models names the served model.
    let models: Value = agent().get(&format!("{b}/v1/models")).set("Authorization", "Bearer k").call().unwrap().into_json().unwrap();
    assert_eq!(models["data"][0]["id"], "served-name");
    // A request id on every response: the client's kept, else a new one.
    let r = agent().get(&format!("{b}/health")).set("x-request-id", "abc-123").call().unwrap();
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = agent().get(&format!("{b}/health")).call().unwrap();
    assert!(r.header("x-request-id").is_some_and(|id| id.len() >= 32), "{:?}", r.header("x-request-id"));
    drop(server);
    // --protect-metrics closes /metrics too.
    let config = ServerConfig { api_key: Some("k".into()), protect_metrics: true, ..Default::default() };
    let server = Server::start(Model::Reranker(reranker("bert-tiny")), config);
    let status = match agent().get(&format!("{}/metrics", server.base)).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 401);
    assert_eq!(agent().get(&format!("{}/health", server.base)).call().unwrap().status(), 200);
}

/// `query_instruction` / `passage_instruction` over HTTP are the library's
/// options: the scores of the instruction text put into the pair by hand.
#[test]
fn instructions_over_http_are_the_librarys() {
    let (query, docs) = pairs();
    let lib = reranker("gemma-tiny");
    // Instructions off, "Q: " / "P: " spelled into the text.
    let opts = ScoreOptions { query_instruction: Some(String::new()), passage_instruction: Some(String::new()), ..Default::default() };
    let spelled: Vec<(String, String)> = docs.iter().map(|d| (format!("Q: {query}"), format!("P: {d}"))).collect();
    let want = lib.compute_score(&spelled, &opts).unwrap();
    let server = Server::start(Model::Reranker(reranker("gemma-tiny")), ServerConfig::default());
    let body = json!({"query": query, "texts": docs, "raw_scores": true, "query_instruction": "Q: ", "passage_instruction": "P: "});
    let (status, body, _) = post(&format!("{}/rerank", server.base), &body, None);
    assert_eq!(status, 200, "{body}");
    for r in body.as_array().unwrap() {
        let i = r["index"].as_u64().unwrap() as usize;
        assert!(close(r["score"].as_f64().unwrap() as f32, want[i]), "{i}");
    }
}

/// The models people pick now behind the same routes: Qwen3-Reranker (its
/// instruction through `prompt`, P(yes) with `raw_scores: false`) on TEI's
/// /rerank and Cohere's /v2/rerank, a ModernBERT cross-encoder, and
/// Qwen3-Embedding on /embed with TEI's `prompt_name`. Each response equals
/// the library's own call.
#[test]
fn qwen3_and_modernbert_behind_the_same_routes() {
    let (query, docs) = pairs();
    let pairs_of = |q: &str| docs.iter().map(|d| (q.to_string(), d.clone())).collect::<Vec<_>>();
    for model in ["qwen3-reranker-tiny", "modernbert-cls-tiny"] {
        let ck = Checkpoint::dir(fixture(model));
        assert_eq!(crossrank::Task::of(&ck).unwrap(), crossrank::Task::Rerank, "{model}");
        let r = reranker(model);
        let instruction = "Find passages about animals";
        let opts = ScoreOptions { prompt: model.starts_with("qwen3").then(|| instruction.to_string()), normalize: true, ..Default::default() };
        let want = r.compute_score(&pairs_of(&query), &opts).unwrap();
        let server = Server::start(Model::Reranker(r), ServerConfig::default());
        let mut body = json!({"query": query, "texts": docs, "raw_scores": false});
        if model.starts_with("qwen3") {
            body["prompt"] = json!(instruction);
        }
        let (status, got, _) = post(&format!("{}/rerank", server.base), &body, None);
        assert_eq!(status, 200, "{got}");
        for item in got.as_array().unwrap() {
            let i = item["index"].as_u64().unwrap() as usize;
            assert!(close(item["score"].as_f64().unwrap() as f32, want[i]), "{model} /rerank {i}: {item} vs {}", want[i]);
        }
        let mut cohere = json!({"model": "m", "query": query, "documents": docs, "top_n": 3});
        if model.starts_with("qwen3") {
            cohere["prompt"] = json!(instruction);
        }
        let (status, got, _) = post(&format!("{}/v2/rerank", server.base), &cohere, None);
        assert_eq!(status, 200, "{got}");
        let results = got["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        let best = want.iter().cloned().fold(f32::MIN, f32::max);
        assert!(close(results[0]["relevance_score"].as_f64().unwrap() as f32, best), "{model}: {got}");
    }

    let ck = Checkpoint::dir(fixture("qwen3-embedding-tiny"));
    assert_eq!(crossrank::Task::of(&ck).unwrap(), crossrank::Task::Embed);
    let emb = Embedder::load(&ck, &Device::flex()).unwrap();
    let texts = ["what is a panda?", "where do pandas live?"];
    let want = emb.embed(&texts, &crossrank::EmbedOptions { prompt_name: Some("query".into()), ..Default::default() }).unwrap();
    let plain = emb.embed(&texts, &Default::default()).unwrap();
    let server = Server::start(Model::Embedder(emb), ServerConfig::default());
    let (status, body, _) = post(&format!("{}/embed", server.base), &json!({"inputs": texts, "prompt_name": "query"}), None);
    assert_eq!(status, 200, "{body}");
    let got: Vec<Vec<f32>> = serde_json::from_value(body).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(g.iter().zip(w).all(|(a, b)| close(*a, *b)));
    }
    assert!(got[0].iter().zip(&plain[0]).any(|(a, b)| !close(*a, *b)), "the query prompt must change the vector");
    let (status, body, _) = post(&format!("{}/embed", server.base), &json!({"inputs": texts, "prompt_name": "nope"}), None);
    assert_eq!(status, 422, "{body}");
}
