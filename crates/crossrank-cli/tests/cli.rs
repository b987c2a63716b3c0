//! The `crossrank` binary: the stdout contract, errors, and Hub downloads
//! against a local server that speaks the Hub's resolve layout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn crossrank(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossrank"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[derive(serde::Deserialize)]
struct Expected {
    pairs: Vec<(String, String)>,
    cases: Vec<Case>,
}
#[derive(serde::Deserialize)]
struct Case {
    name: String,
    scores: Vec<f32>,
}

fn expected(model: &str) -> Expected {
    serde_json::from_slice(&std::fs::read(fixtures().join(model).join("expected.json")).unwrap()).unwrap()
}

fn jsonl(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(q, p)| serde_json::json!({"query": q, "passage": p}).to_string() + "\n").collect()
}

fn case<'a>(e: &'a Expected, name: &str) -> &'a Case {
    e.cases.iter().find(|c| c.name == name).unwrap()
}

fn assert_scores(out: &Output, want: &[f32], tol: f32) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "crossrank failed: {stderr}");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "stdout must be one JSON document: {stdout}");
    let got: Vec<f32> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "got {got:?}\nwant {want:?}");
    }
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!err.contains("panicked"), "panic: {err}");
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{err}");
    last
}

#[test]
fn score_prints_one_json_array_in_input_order() {
    let e = expected("xlmr-tiny");
    let model = fixtures().join("xlmr-tiny");
    let out = crossrank(&["score", "--model", model.to_str().unwrap(), "--device", "cpu"], &jsonl(&e.pairs), &[]);
    assert_scores(&out, &case(&e, "default").scores, 1e-4);
    let out = crossrank(
        &["score", "--model", model.to_str().unwrap(), "--device", "cpu", "--normalize", "--batch-size", "4"],
        &jsonl(&e.pairs),
        &[],
    );
    assert_scores(&out, &case(&e, "batch_4_normalize").scores, 1e-4);
    let out = crossrank(
        &["score", "--model", model.to_str().unwrap(), "--device", "cpu", "--max-length", "64", "--query-max-length", "8"],
        &jsonl(&e.pairs),
        &[],
    );
    assert_scores(&out, &case(&e, "max_length_64_query_8").scores, 1e-4);
}

#[test]
fn score_reads_a_file() {
    let e = expected("bert-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("pairs.jsonl");
    std::fs::write(&input, jsonl(&e.pairs)).unwrap();
    let model = fixtures().join("bert-tiny");
    let out = crossrank(
        &["score", "--model", model.to_str().unwrap(), "--device", "cpu", "--max-length", "32", "--input", input.to_str().unwrap()],
        "",
        &[],
    );
    assert_scores(&out, &case(&e, "max_length_32").scores, 1e-4);
}

#[test]
fn rerank_prints_indices_best_first() {
    let e = expected("bert-tiny");
    let query = e.pairs[0].0.clone();
    // Score the docs against one query through `score`, then check `rerank`'s order.
    let docs: Vec<String> = e.pairs.iter().map(|p| p.1.replace('\n', " ")).filter(|d| !d.trim().is_empty()).collect();
    let model = fixtures().join("bert-tiny");
    let m = model.to_str().unwrap();
    let pairs: Vec<(String, String)> = docs.iter().map(|d| (query.clone(), d.clone())).collect();
    let out = crossrank(&["score", "--model", m, "--device", "cpu"], &jsonl(&pairs), &[]);
    assert!(out.status.success());
    let scores: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();
    let out = crossrank(&["rerank", "--model", m, "--device", "cpu", "--query", &query, "--top-k", "3"], &docs.join("\n"), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ranked: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ranked.len(), 3);
    let mut want: Vec<usize> = (0..scores.len()).collect();
    want.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    for (r, w) in ranked.iter().zip(&want) {
        assert_eq!(r["index"].as_u64().unwrap() as usize, *w);
        assert!((r["score"].as_f64().unwrap() as f32 - scores[*w]).abs() < 1e-5);
        assert!(r.get("window").is_none(), "no window without maxp");
    }
    // --long-passages maxp: the library's best windows, in code points of
    // each line (one long line with non-ASCII text before its end).
    let long = format!("{} Pandas eat bamboo.", "Ünïcödé run queues and processors. ".repeat(150));
    let lines = [long.as_str(), "Pandas eat bamboo."];
    let out = crossrank(
        &["rerank", "--model", m, "--device", "cpu", "--query", "what do pandas eat", "--long-passages", "maxp", "--passage-stride", "64"],
        &lines.join("\n"),
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ranked: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let r = crossrank::Reranker::load(&crossrank::Checkpoint::dir(&model), &crossrank::Device::flex()).unwrap();
    let opts = crossrank::ScoreOptions { long_passages: crossrank::LongPassages::Maxp, passage_stride: Some(64), ..Default::default() };
    let pairs: Vec<(&str, &str)> = lines.iter().map(|l| ("what do pandas eat", *l)).collect();
    let want = r.compute_passage_scores(&pairs, &opts).unwrap().remove(0);
    assert_eq!(ranked.len(), 2);
    for x in &ranked {
        let i = x["index"].as_u64().unwrap() as usize;
        assert!((x["score"].as_f64().unwrap() as f32 - want[i].score).abs() < 1e-5);
        let w = want[i].char_window(lines[i]).unwrap();
        assert_eq!(x["window"], serde_json::json!({"start": w.start, "end": w.end, "windows": w.windows}), "line {i}");
    }
    assert!(want[0].windows > 1 && want[1].windows == 1);
}

#[test]
fn bad_input_gives_a_one_line_error_and_nonzero_exit() {
    let model = fixtures().join("bert-tiny");
    let m = model.to_str().unwrap();
    let err = one_line_error(&crossrank(&["score", "--model", m, "--device", "cpu"], "{\"query\": \"q\"}\n", &[]));
    assert!(err.contains("line 1"), "{err}");
    let err = one_line_error(&crossrank(&["score", "--model", m, "--device", "cpu"], "not json\n", &[]));
    assert!(err.contains("line 1"), "{err}");
    let err = one_line_error(&crossrank(&["score", "--model", "/nonexistent/dir", "--device", "cpu"], "", &[]));
    assert!(err.contains("/nonexistent/dir"), "{err}");
    let err = one_line_error(&crossrank(&["score", "--model", m, "--device", "tpu"], "", &[]));
    assert!(err.contains("tpu"), "{err}");
    let err = one_line_error(&crossrank(&["score", "--model", m, "--dtype", "q3"], "", &[]));
    assert!(err.contains("q3"), "{err}");
    // A device as input would be read until memory runs out.
    #[cfg(unix)]
    {
        let err = one_line_error(&crossrank(&["score", "--model", m, "--device", "cpu", "--input", "/dev/zero"], "", &[]));
        assert!(err.contains("device"), "{err}");
    }
    // A NaN score: exit 1, nothing partial on stdout, the pair named.
    let nan = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&model).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, nan.path().join(p.file_name().unwrap())).unwrap();
    }
    // classifier.bias := NaN, patched in place in its shard.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(nan.path().join("model.safetensors.index.json")).unwrap()).unwrap();
    let shard = nan.path().join(index["weight_map"]["classifier.bias"].as_str().unwrap());
    let mut bytes = std::fs::read(&shard).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let at = 8 + n + header["classifier.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&shard, bytes).unwrap();
    let pairs = "{\"query\": \"q\", \"passage\": \"p\"}\n{\"query\": \"q\", \"passage\": \"r\"}\n";
    let err = one_line_error(&crossrank(&["score", "--model", nan.path().to_str().unwrap(), "--device", "cpu"], pairs, &[]));
    assert!(err.contains("non-finite") && err.contains("input 0"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors.index.json"] {
        std::fs::copy(model.join(f), tmp.path().join(f)).unwrap();
    }
    std::fs::write(tmp.path().join("model-00001-of-00002.safetensors"), b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let err = one_line_error(&crossrank(&["score", "--model", tmp.path().to_str().unwrap(), "--device", "cpu"], "", &[]));
    assert!(err.contains("model-0000"), "{err}");
}

#[test]
fn hub_repo_id_fails_fast_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    // An endpoint nothing listens on stands for "no network".
    let out = crossrank(
        &["score", "--model", "BAAI/bge-reranker-base", "--device", "cpu"],
        "",
        &[("HF_ENDPOINT", "http://127.0.0.1:9"), ("HF_HOME", tmp.path().to_str().unwrap())],
    );
    let err = one_line_error(&out);
    assert!(err.contains("hub") && err.contains("BAAI/bge-reranker-base") && err.contains("config.json"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
}

/// A response the mock Hub is about to send: status and headers, which a
/// test may change to play a hostile server.
type Tweak = Box<dyn Fn(&str, &mut u16, &mut Vec<(String, String)>) + Send>;

/// Serve `dir` as `/{repo}/resolve/{revision}/{file}` with the headers
/// the Hub sends (ETag, x-repo-commit, Content-Range for ranged GETs).
fn serve_hub(dir: &Path, repo: &'static str, stop: Arc<AtomicBool>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    serve_hub_with(dir, repo, stop, Box::new(|_, _, _| {}))
}

fn serve_hub_with(dir: &Path, repo: &'static str, stop: Arc<AtomicBool>, tweak: Tweak) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", server.server_addr().to_ip().unwrap());
    let dir = dir.to_path_buf();
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        // Bounded: stops when told, or after 60 s whatever happens.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let url = req.url().to_string();
            seen.push(format!("{} {url}", req.method()));
            let prefix = format!("/{repo}/resolve/main/");
            let name = url.strip_prefix(&prefix).unwrap_or_default().to_string();
            let Some(Ok(body)) = url.strip_prefix(&prefix).map(|f| std::fs::read(dir.join(f))) else {
                let _ = req.respond(tiny_http::Response::empty(404));
                continue;
            };
            let range = req.headers().iter().find(|h| h.field.equiv("Range")).map(|h| h.value.as_str().to_string());
            let mut headers = vec![
                ("etag".to_string(), format!("\"{:x}\"", body.len() * 31 + url.len())),
                ("x-repo-commit".to_string(), "0123456789abcdef0123456789abcdef01234567".to_string()),
            ];
            let (mut status, part) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                Some(r) => {
                    let (a, b) = r.split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    let b: usize = if b.is_empty() { body.len() - 1 } else { b.parse::<usize>().unwrap().min(body.len() - 1) };
                    headers.push(("Content-Range".to_string(), format!("bytes {a}-{b}/{}", body.len())));
                    (206, body[a..=b].to_vec())
                }
                None => (200, body),
            };
            tweak(&name, &mut status, &mut headers);
            let mut resp = tiny_http::Response::from_data(part).with_status_code(status);
            for (k, v) in headers {
                resp.add_header(tiny_http::Header::from_bytes(k, v).unwrap());
            }
            let _ = req.respond(resp);
        }
        seen
    });
    (addr, handle)
}

/// A copy of the sharded BERT fixture whose index names `shard` for one
/// tensor.
fn hub_dir_with_shard(shard: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join("bert-tiny")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
    }
    let path = d.path().join("model.safetensors.index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["weight_map"]["classifier.bias"] = shard.into();
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    d
}

/// Each way a Hub (or mirror) could make the download write outside the
/// cache or panic: a typed one-line error, no request for a bad name,
/// nothing written outside HF_HOME.
#[test]
fn hostile_hub_responses_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let abs_shard = format!("{}/x.safetensors", outside.path().display());
    let cases: Vec<(&str, String, Tweak)> = vec![
        ("absolute shard", abs_shard.clone(), Box::new(|_, _, _| {})),
        ("relative shard", "../../x.safetensors".into(), Box::new(|_, _, _| {})),
        ("URL shard", "https://elsewhere.example/x.safetensors".into(), Box::new(|_, _, _| {})),
        ("backslash shard", "..\\x.safetensors".into(), Box::new(|_, _, _| {})),
        ("not safetensors", "x.bin".into(), Box::new(|_, _, _| {})),
        ("ETag path", "model-00001-of-00002.safetensors".into(), {
            let v = victim.display().to_string();
            Box::new(move |_, _, h: &mut Vec<(String, String)>| h[0].1 = v.clone())
        }),
        (
            "commit path",
            "model-00001-of-00002.safetensors".into(),
            Box::new(|_, _, h: &mut Vec<(String, String)>| h[1].1 = "../../../../../tmp".into()),
        ),
        (
            "redirect without Location",
            "model-00001-of-00002.safetensors".into(),
            Box::new(|name, status: &mut u16, _| {
                if name == "config.json" {
                    *status = 302;
                }
            }),
        ),
    ];
    for (what, shard, tweak) in cases {
        let d = hub_dir_with_shard(&shard);
        let stop = Arc::new(AtomicBool::new(false));
        let (endpoint, server) = serve_hub_with(d.path(), "evil/model", stop.clone(), tweak);
        let home = tempfile::tempdir().unwrap();
        let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", home.path().to_str().unwrap())];
        let out = crossrank(&["score", "--model", "evil/model", "--device", "cpu"], "", &env);
        stop.store(true, Ordering::SeqCst);
        let seen = server.join().unwrap();
        let err = one_line_error(&out);
        assert!(err.contains("model.safetensors.index.json") || err.contains("hub"), "{what}: {err}");
        assert!(!seen.iter().any(|u| u.contains("x.safetensors") || u.contains("x.bin")), "{what}: asked for a bad name: {seen:?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "{what}");
        let mut left: Vec<_> = std::fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, vec![std::ffi::OsString::from("victim.txt")], "{what}: wrote outside the cache");
    }
}

#[test]
fn hub_repo_id_downloads_into_the_hf_cache() {
    let e = expected("bert-tiny");
    let stop = Arc::new(AtomicBool::new(false));
    let (endpoint, server) = serve_hub(&fixtures().join("bert-tiny"), "crossrank-test/bert-tiny", stop.clone());
    let home = tempfile::tempdir().unwrap();
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", home.path().to_str().unwrap())];
    let out = crossrank(&["score", "--model", "crossrank-test/bert-tiny", "--device", "cpu"], &jsonl(&e.pairs), &env);
    stop.store(true, Ordering::SeqCst);
    let seen = server.join().unwrap();
    assert_scores(&out, &case(&e, "default").scores, 1e-4);
    let snap = home.path().join("hub/models--crossrank-test--bert-tiny/snapshots");
    let snapshot = std::fs::read_dir(&snap).unwrap().next().unwrap().unwrap().path();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        assert!(snapshot.join(f).exists(), "{f} not in the cache; requests: {seen:?}");
    }
    assert!(seen.iter().any(|u| u.ends_with("/model.safetensors")), "asked for the single file first: {seen:?}");
    // A second run is served from the cache: not one request.
    let stop = Arc::new(AtomicBool::new(false));
    let (endpoint, server) = serve_hub(&fixtures().join("bert-tiny"), "crossrank-test/bert-tiny", stop.clone());
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HOME", home.path().to_str().unwrap())];
    let out = crossrank(&["score", "--model", "crossrank-test/bert-tiny", "--device", "cpu"], &jsonl(&e.pairs), &env);
    stop.store(true, Ordering::SeqCst);
    let seen = server.join().unwrap();
    assert_scores(&out, &case(&e, "default").scores, 1e-4);
    assert!(seen.is_empty(), "cached files (or known-absent ones) asked for again: {seen:?}");
}

/// The LLM fixtures' expected.json: one score list per layer.
#[derive(serde::Deserialize)]
struct LlmExpected {
    pairs: Vec<(String, String)>,
    cases: Vec<LlmCase>,
}
#[derive(serde::Deserialize)]
struct LlmCase {
    name: String,
    scores: Vec<Vec<f32>>,
}

fn llm_expected(model: &str) -> LlmExpected {
    serde_json::from_slice(&std::fs::read(fixtures().join(model).join("expected.json")).unwrap()).unwrap()
}

#[test]
fn layerwise_cutoff_layers_print_one_array_per_layer() {
    let dir = fixtures().join("minicpm-layerwise-tiny");
    let e = llm_expected("minicpm-layerwise-tiny");
    let want = &e.cases.iter().find(|c| c.name == "cutoff_2_4").unwrap().scores;
    let out = crossrank(&["score", "--model", dir.to_str().unwrap(), "--device", "cpu", "--cutoff-layers", "2,4"], &jsonl(&e.pairs), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(want) {
        assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() <= 1e-3), "got {g:?}\nwant {w:?}");
    }
    // One layer: a flat array, like every other model.
    let want = &e.cases.iter().find(|c| c.name == "cutoff_3").unwrap().scores[0];
    let out = crossrank(&["score", "--model", dir.to_str().unwrap(), "--device", "cpu", "--cutoff-layers", "3"], &jsonl(&e.pairs), &[]);
    assert_scores(&out, want, 1e-3);
}

#[test]
fn gemma_prompt_flag_changes_the_template() {
    let dir = fixtures().join("gemma-tiny");
    let e = llm_expected("gemma-tiny");
    let want = &e.cases.iter().find(|c| c.name == "custom_prompt_batch_4").unwrap().scores[0];
    let out = crossrank(
        &[
            "score",
            "--model",
            dir.to_str().unwrap(),
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--prompt",
            "Is B relevant to A? Answer Yes or No.",
        ],
        &jsonl(&e.pairs),
        &[],
    );
    assert_scores(&out, want, 1e-3);
}

/// `crossrank quantize` writes a checkpoint that `score` loads as is, and
/// scores like `score --dtype q8` on the original (quantized at load).
#[test]
fn quantize_writes_a_checkpoint_that_scores_like_quantizing_at_load() {
    let model = fixtures().join("xlmr-tiny");
    let m = model.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q8");
    let o = crossrank(&["quantize", "--model", m, "--dtype", "q8", "--out", out.to_str().unwrap()], "", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["dtype"], "q8");
    assert!(report["bytes_out"].as_u64().unwrap() < report["bytes_in"].as_u64().unwrap());
    let input = "{\"query\": \"what is panda?\", \"passage\": \"The giant panda is a bear.\"}\n{\"query\": \"q\", \"passage\": \"p\"}\n";
    let scores = |args: &[&str]| -> Vec<f32> {
        let o = crossrank(args, input, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let from_file = scores(&["score", "--model", out.to_str().unwrap(), "--device", "cpu"]);
    let at_load = scores(&["score", "--model", m, "--device", "cpu", "--dtype", "q8"]);
    let f32s = scores(&["score", "--model", m, "--device", "cpu"]);
    assert_eq!(from_file.len(), 2);
    for i in 0..2 {
        assert!((from_file[i] - at_load[i]).abs() <= 1e-6, "{from_file:?} vs {at_load:?}");
        assert!((from_file[i] - f32s[i]).abs() <= 0.1, "q8 far from f32: {from_file:?} vs {f32s:?}");
    }
    let err = one_line_error(&crossrank(&["quantize", "--model", m, "--dtype", "f32", "--out", out.to_str().unwrap()], "", &[]));
    assert!(err.contains("q8"), "{err}");
}

/// `crossrank serve` on an ephemeral port: answers /rerank, and SIGTERM
/// stops it with exit code 0.
#[cfg(unix)]
#[test]
fn serve_answers_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read};
    let model = fixtures().join("bert-tiny");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(["serve", "--model", model.to_str().unwrap(), "--device", "cpu", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !line.contains("listening on http://") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0 && Instant::now() < deadline, "no listening line");
    }
    let addr = line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let body = r#"{"query": "what is a panda?", "texts": ["The giant panda is a bear.", "Paris is in France."]}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let json: serde_json::Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[test]
fn eval_reranks_the_first_stage_top_k_and_scores_both() {
    use crossrank::eval::{data, metrics, pipeline};
    let ds_dir = fixtures().join("eval/tiny-beir");
    let out = tempfile::tempdir().unwrap();
    let model = fixtures().join("bert-tiny");
    let run_file = ds_dir.join("first_stage.trec");
    let args = ["eval", "--model", model.to_str().unwrap(), "--device", "cpu", "--dataset", ds_dir.to_str().unwrap()];
    let o = crossrank(
        &[
            &args[..],
            &["--first-stage", run_file.to_str().unwrap(), "--top-k", "5", "--k-values", "1,3,10", "--out", out.path().to_str().unwrap()],
        ]
        .concat(),
        "",
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.contains("| ndcg_cut_10 |") && table.contains("3 queries evaluated"), "{table}");

    // The same thing through the library, by hand: top 5 by score, pairs
    // scored with compute_score, both runs evaluated.
    let ds = data::load(&ds_dir, "test").unwrap();
    let first = data::read_run(&run_file).unwrap();
    let r = crossrank::Reranker::load(&crossrank::Checkpoint::dir(&model), &crossrank::Device::flex()).unwrap();
    let mut want_run = metrics::Run::new();
    for (qid, qtext) in &ds.queries {
        let mut docs = first[qid].clone();
        docs.sort_by(|a, b| b.1.total_cmp(&a.1));
        docs.truncate(5);
        let pairs: Vec<(&str, &str)> = docs.iter().map(|(d, _)| (qtext.as_str(), ds.corpus.get(d).unwrap())).collect();
        let scores = r.compute_score(&pairs, &crossrank::ScoreOptions::default()).unwrap();
        want_run.insert(qid.clone(), docs.iter().zip(scores).map(|((d, _), s)| (d.clone(), s as f64)).collect());
    }
    let k = [1, 3, 10];
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    for (key, run) in [("first_stage", &first), ("reranked", &want_run)] {
        let (_, mean) = metrics::evaluate(&ds.qrels, run, &k);
        for (name, v) in mean {
            let g = got[key][&name].as_f64().unwrap();
            assert!((g - v).abs() < 1e-6, "{key} {name}: {g} vs {v}");
        }
    }
    // The unjudged query q4 is in neither; the reranked run file holds the top 5.
    let reranked = data::read_run(&out.path().join("reranked.trec")).unwrap();
    assert_eq!(reranked.len(), 3);
    assert!(reranked.values().all(|v| v.len() == 5));
    assert_eq!(pipeline::top_k(&first, 5)["q1"].len(), 5);
    let per_query: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("per_query.json")).unwrap()).unwrap();
    assert!(per_query["q1"]["reranked"]["ndcg_cut_10"].is_f64() && per_query.get("q4").is_none());

    // A run naming a document the corpus lacks is a one-line error.
    let bad = out.path().join("bad.trec");
    std::fs::write(&bad, "q1 Q0 nope 1 3.0 x\n").unwrap();
    let o = crossrank(&[&args[..], &["--first-stage", bad.to_str().unwrap()]].concat(), "", &[]);
    assert!(!o.status.success());
    assert!(one_line_error(&o).contains("nope"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn eval_dense_first_stage_is_exact_cosine_top_k() {
    use crossrank::eval::{data, metrics};
    let ds_dir = fixtures().join("eval/tiny-beir");
    let model = fixtures().join("bert-tiny");
    let out = tempfile::tempdir().unwrap();
    let spec = format!("dense:{}", model.display());
    let args = ["eval", "--model", model.to_str().unwrap(), "--device", "cpu", "--dataset", ds_dir.to_str().unwrap()];
    let o = crossrank(
        &[&args[..], &["--first-stage", &spec, "--top-k", "4", "--k-values", "1,5", "--out", out.path().to_str().unwrap()]].concat(),
        "",
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // By hand: every document embedded, cosine against each query, best 5.
    let ds = data::load(&ds_dir, "test").unwrap();
    let e = crossrank::Embedder::load(&crossrank::Checkpoint::dir(&model), &crossrank::Device::flex()).unwrap();
    let opts = crossrank::EmbedOptions::default();
    let docs = e.embed(ds.corpus.texts(), &opts).unwrap();
    let cos = |a: &[f32], b: &[f32]| {
        let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        d / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let file = data::read_run(&out.path().join("first_stage.trec")).unwrap();
    let mut want = metrics::Run::new();
    for (qid, text) in &ds.queries {
        let qv = &e.embed(&[text.as_str()], &opts).unwrap()[0];
        let mut all: Vec<(String, f64)> = (0..ds.corpus.len()).map(|i| (ds.corpus.id(i).to_string(), cos(qv, &docs[i]) as f64)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(5);
        let got: Vec<&String> = file[qid].iter().map(|(d, _)| d).collect();
        assert_eq!(got, all.iter().map(|(d, _)| d).collect::<Vec<_>>(), "{qid}");
        for ((_, g), (_, w)) in file[qid].iter().zip(&all) {
            assert!((g - w).abs() < 1e-5, "{qid}: {g} vs {w}");
        }
        want.insert(qid.clone(), all);
    }
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    let (_, mean) = metrics::evaluate(&ds.qrels, &want, &[1, 5]);
    for (name, v) in mean {
        assert!((got["first_stage"][&name].as_f64().unwrap() - v).abs() < 1e-6, "{name}");
    }
    // BM25 (the library's run, written as the first stage) and BM25+dense
    // (reciprocal rank fusion of the two runs the CLI wrote).
    let bm25_out = tempfile::tempdir().unwrap();
    let with = |stage: &str, dir: &std::path::Path| {
        let o = crossrank(
            &[&args[..], &["--first-stage", stage, "--top-k", "4", "--k-values", "1,5", "--out", dir.to_str().unwrap()]].concat(),
            "",
            &[],
        );
        assert!(o.status.success(), "{stage}: {}", String::from_utf8_lossy(&o.stderr));
        data::read_run(&dir.join("first_stage.trec")).unwrap()
    };
    let bm25 = with("bm25", bm25_out.path());
    let index = crossrank::eval::bm25::Bm25Index::build(&ds.corpus, "english", &mut |_, _| {}).unwrap();
    let by_hand = index.retrieve(&ds.corpus, &ds.queries, 5).unwrap();
    assert_eq!(bm25.len(), by_hand.len());
    for (qid, docs) in &by_hand {
        assert!(!docs.is_empty(), "{qid}: BM25 found nothing");
        // The file is in trec_eval's order (equal scores: larger docno
        // first), so compare it as a set with its scores.
        let (mut got, mut want) = (bm25[qid].clone(), docs.clone());
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.iter().map(|d| &d.0).collect::<Vec<_>>(), want.iter().map(|d| &d.0).collect::<Vec<_>>(), "{qid}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g.1 - w.1).abs() < 1e-5, "{qid} {}: {} vs {}", g.0, g.1, w.1);
        }
    }
    let fused_out = tempfile::tempdir().unwrap();
    let fused = with(&format!("bm25+{spec}"), fused_out.path());
    let want = crossrank::eval::pipeline::reciprocal_rank_fusion(&[&by_hand, &file], 60.0, 5);
    for (qid, docs) in &want {
        let score = |run: &Vec<(String, f64)>, d: &str| run.iter().find(|x| x.0 == d).map(|x| x.1);
        assert_eq!(fused[qid].len(), docs.len(), "{qid}");
        for (d, s) in docs {
            let got = score(&fused[qid], d).unwrap_or_else(|| panic!("{qid}: {d} missing from the fused run"));
            assert!((got - s).abs() < 1e-9, "{qid} {d}: {got} vs {s}");
        }
    }
    // A language tantivy has no stemmer for is a one-line error.
    let o = crossrank(&[&args[..], &["--first-stage", "bm25:klingon"]].concat(), "", &[]);
    assert!(!o.status.success() && one_line_error(&o).contains("unknown BM25 language"));
}

/// The whole pipeline against FlagEmbedding 1.4.2's own evaluation code
/// (`EvalReranker`, `evaluate_metrics`, `evaluate_mrr`) on the tiny BEIR
/// fixture: tests/fixtures/gen_eval_pipeline.py.
#[test]
fn eval_equals_flagembeddings_evaluation() {
    use crossrank::eval::data;
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures().join("eval/pipeline-expected.json")).unwrap()).unwrap();
    let ds_dir = fixtures().join("eval/tiny-beir");
    let name = |flag: &str| {
        let (m, k) = flag.split_once('@').unwrap();
        match m {
            "NDCG" => format!("ndcg_cut_{k}"),
            "MAP" => format!("map_cut_{k}"),
            "Recall" => format!("recall_{k}"),
            "P" => format!("P_{k}"),
            _ => flag.to_string(),
        }
    };
    let check = |got: &serde_json::Value, want: &serde_json::Value, what: &str| {
        for (flag, v) in want.as_object().unwrap() {
            // FlagEmbedding rounds its averages to 5 decimals.
            let g = got[&name(flag)].as_f64().unwrap_or_else(|| panic!("{what}: no {}", name(flag)));
            assert!((g - v.as_f64().unwrap()).abs() <= 6e-6, "{what} {flag}: {g} vs {v}");
        }
    };
    for (model, tol) in [("bert-tiny", 1e-5), ("gemma-tiny", 5e-5)] {
        let out = tempfile::tempdir().unwrap();
        let o = crossrank(
            &[
                "eval",
                "--model",
                fixtures().join(model).to_str().unwrap(),
                "--device",
                "cpu",
                "--dataset",
                ds_dir.to_str().unwrap(),
                "--first-stage",
                ds_dir.join("first_stage.trec").to_str().unwrap(),
                "--top-k",
                "4",
                "--k-values",
                "1,3,5",
                "--out",
                out.path().to_str().unwrap(),
            ],
            "",
            &[],
        );
        assert!(o.status.success(), "{model}: {}", String::from_utf8_lossy(&o.stderr));
        let reranked = data::read_run(&out.path().join("reranked.trec")).unwrap();
        let expected = want["models"][model]["reranked"].as_object().unwrap();
        assert_eq!(reranked.len(), expected.len(), "{model}: queries");
        for (qid, docs) in expected {
            let got = &reranked[qid];
            assert_eq!(got.len(), docs.as_object().unwrap().len(), "{model} {qid}: the same top-k");
            for (doc, s) in got {
                let w = docs[doc].as_f64().unwrap_or_else(|| panic!("{model} {qid}: {doc} not in FlagEmbedding's top-k"));
                assert!((s - w).abs() < tol, "{model} {qid} {doc}: {s} vs {w}");
            }
        }
        let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
        check(&metrics["first_stage"], &want["first_stage"], "first stage");
        check(&metrics["reranked"], &want["models"][model]["metrics"], model);
    }
}

/// `mine` then `finetune`: BM25-mined training data from a judged split,
/// a short training run whose model scores through `crossrank score`, the
/// log, and the refusals (non-empty --out, a bad training line).
#[test]
fn mine_and_finetune_write_a_model_that_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = fixtures().join("eval/tiny-beir");
    let train = tmp.path().join("train.jsonl");
    let o = crossrank(
        &[
            "mine",
            "--dataset",
            ds.to_str().unwrap(),
            "--split",
            "test",
            "--range-for-sampling",
            "0-10",
            "--negative-number",
            "3",
            "--out",
            train.to_str().unwrap(),
        ],
        "",
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["examples"], 3, "{summary}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&train).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let q1 = lines.iter().find(|l| l["query"].as_str().unwrap().contains("panda")).expect("q1 mined");
    // q1's relevant documents (grades 2 and 1) are positives, never negatives.
    let pos: Vec<&str> = q1["pos"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(pos.len(), 2);
    assert!(q1["neg"].as_array().unwrap().iter().all(|n| !pos.contains(&n.as_str().unwrap())));

    let model = fixtures().join("bert-tiny");
    let out = tmp.path().join("model");
    let base = [
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--train",
        train.to_str().unwrap(),
        "--device",
        "cpu",
        "--train-group-size",
        "3",
        "--batch-size",
        "2",
        "--max-steps",
        "3",
        "--logging-steps",
        "1",
        "--learning-rate",
        "1e-3",
        "--warmup-ratio",
        "0.1",
        "--weight-decay",
        "0.01",
        "--out",
    ];
    let o = crossrank(&[&base[..], &[out.to_str().unwrap()]].concat(), "", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["steps"], 3, "{report}");
    assert!(report["pairs_per_second"].as_f64().unwrap() > 0.0);
    let log: Vec<serde_json::Value> =
        std::fs::read_to_string(out.join("train_log.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(log.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    // Warmup: ceil(0.1 × 3) = 1 step at rate 0, then linear decay from 1e-3.
    assert_eq!(log[0]["learning_rate"].as_f64().unwrap(), 0.0);
    assert!((log[1]["learning_rate"].as_f64().unwrap() - 1e-3).abs() < 1e-12);
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The trained model scores, and differently from the one it started from.
    let pairs = "{\"query\": \"what do pandas eat?\", \"passage\": \"Pandas eat bamboo.\"}\n";
    let before = crossrank(&["score", "--model", model.to_str().unwrap(), "--device", "cpu"], pairs, &[]);
    let after = crossrank(&["score", "--model", out.to_str().unwrap(), "--device", "cpu"], pairs, &[]);
    assert!(after.status.success(), "{}", String::from_utf8_lossy(&after.stderr));
    let (b, a): (Vec<f32>, Vec<f32>) = (serde_json::from_slice(&before.stdout).unwrap(), serde_json::from_slice(&after.stdout).unwrap());
    assert!(a[0].is_finite() && (a[0] - b[0]).abs() > 1e-4, "{b:?} → {a:?}");

    // A non-empty --out is refused; so is a bad training line (named).
    let o = crossrank(&[&base[..], &[out.to_str().unwrap()]].concat(), "", &[]);
    assert!(!o.status.success());
    assert!(one_line_error(&o).contains("not empty"), "{}", String::from_utf8_lossy(&o.stderr));
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\n{{\"query\": \"q\", \"pos\": []}}\n", serde_json::to_string(&lines[0]).unwrap())).unwrap();
    let fresh = tmp.path().join("fresh");
    let mut args = base.to_vec();
    args[4] = bad.to_str().unwrap();
    let o = crossrank(&[&args[..], &[fresh.to_str().unwrap()]].concat(), "", &[]);
    assert!(!o.status.success());
    assert!(one_line_error(&o).contains("line 2"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Ctrl-C on the real binary: SIGINT mid-run finishes the step, saves a
/// resumable `checkpoint-N`, reports `interrupted`, exits 0; resuming from
/// `last` reaches the step count the run was given.
#[cfg(unix)]
#[test]
fn finetune_interrupted_by_sigint_saves_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.jsonl");
    let line = |q: &str, p: &str| {
        serde_json::json!({"query": q, "pos": [p], "neg": ["Paris is the capital of France.", "Water boils at 100 degrees."]}).to_string()
    };
    std::fs::write(
        &train,
        [line("what do pandas eat?", "Pandas eat bamboo."), line("capital of japan", "Tokyo is the capital of Japan.")].join("\n"),
    )
    .unwrap();
    let model = fixtures().join("bert-tiny");
    let out = tmp.path().join("out");
    let steps = "400";
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "finetune",
            "--model",
            model.to_str().unwrap(),
            "--train",
            train.to_str().unwrap(),
            "--device",
            "cpu",
            "--train-group-size",
            "3",
            "--batch-size",
            "2",
            "--max-steps",
            steps,
            "--logging-steps",
            "1",
            "--save-steps",
            "100000",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(args(&[]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for training to be under way (a logged step), then Ctrl-C.
    let log = out.join("train_log.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&log).map(|s| s.lines().count()).unwrap_or(0) < 2 {
        assert!(started.elapsed().as_secs() < 120, "no training step logged");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["interrupted"], true, "{report}");
    let at = report["steps"].as_u64().unwrap();
    assert!(at >= 2 && at < 400, "{report}");
    let ck = out.join(format!("checkpoint-{at}"));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(ck.join("trainer_state.json")).unwrap()).unwrap();
    assert_eq!(state["global_step"].as_u64(), Some(at));
    assert!(ck.join("model.safetensors").is_file() && ck.join("optimizer.safetensors").is_file());
    assert!(!out.join("model.safetensors").exists(), "no final model from an interrupted run");

    let o = crossrank(&args(&["--resume-from-checkpoint", "last"]).iter().map(String::as_str).collect::<Vec<_>>(), "", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((report["steps"].as_u64(), report["interrupted"].as_bool()), (Some(400), Some(false)), "{report}");
    assert!(out.join("model.safetensors").is_file());
    let logged: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(logged.last(), Some(&400));
}

/// Qwen3 from the command line: `score` with an instruction (`--prompt`)
/// and `--normalize` gives the card's P(yes); `embed --prompt-name query`
/// the Qwen3-Embedding query vectors; `eval` reranks a dense first stage of
/// Qwen3-Embedding (queries with its instruction, documents plain).
#[test]
fn qwen3_reranks_embeds_and_evaluates_from_the_cli() {
    let rr = fixtures().join("qwen3-reranker-tiny");
    let exp: serde_json::Value = serde_json::from_slice(&std::fs::read(rr.join("expected.json")).unwrap()).unwrap();
    let case = &exp["cases"][3]; // max_length 80 with a custom instruction
    let pairs: Vec<(String, String)> = serde_json::from_value(exp["pairs"].clone()).unwrap();
    let input: String =
        pairs.iter().map(|(q, p)| serde_json::json!({"query": q, "passage": p}).to_string() + "\n").collect();
    let o = crossrank(
        &[
            "score",
            "--model",
            rr.to_str().unwrap(),
            "--device",
            "cpu",
            "--normalize",
            "--max-length",
            &case["options"]["max_length"].to_string(),
            "--prompt",
            case["options"]["prompt"].as_str().unwrap(),
        ],
        &input,
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<f64> = serde_json::from_slice(&o.stdout).unwrap();
    let want: Vec<f64> = serde_json::from_value(case["scores"].clone()).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4, "{g} vs {w}");
    }

    let emb = fixtures().join("qwen3-embedding-tiny");
    let e: serde_json::Value = serde_json::from_slice(&std::fs::read(emb.join("expected.json")).unwrap()).unwrap();
    let queries: Vec<String> = serde_json::from_value(e["queries"].clone()).unwrap();
    let input: String = queries.iter().map(|q| serde_json::json!({"text": q}).to_string() + "\n").collect();
    let o = crossrank(&["embed", "--model", emb.to_str().unwrap(), "--device", "cpu", "--prompt-name", "query"], &input, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<Vec<f32>> = serde_json::from_slice(&o.stdout).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(e["cases"][0]["queries"].clone()).unwrap();
    let err = got.iter().zip(&want).flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs())).fold(0f32, f32::max);
    assert!(err <= 1e-4, "embed --prompt-name query: {err}");

    use crossrank::eval::data;
    let ds_dir = fixtures().join("eval/tiny-beir");
    let out = tempfile::tempdir().unwrap();
    let spec = format!("dense:{}", emb.display());
    let o = crossrank(
        &[
            "eval",
            "--model",
            rr.to_str().unwrap(),
            "--device",
            "cpu",
            "--dataset",
            ds_dir.to_str().unwrap(),
            "--first-stage",
            &spec,
            "--top-k",
            "3",
            "--k-values",
            "1,3",
            "--out",
            out.path().to_str().unwrap(),
        ],
        "",
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ds = data::load(&ds_dir, "test").unwrap();
    let e = crossrank::Embedder::load(&crossrank::Checkpoint::dir(&emb), &crossrank::Device::flex()).unwrap();
    let docs = e.embed(ds.corpus.texts(), &Default::default()).unwrap();
    let query_opts = crossrank::EmbedOptions { prompt_name: Some("query".into()), ..Default::default() };
    let file = data::read_run(&out.path().join("first_stage.trec")).unwrap();
    for (qid, text) in &ds.queries {
        let qv = &e.embed(&[text.as_str()], &query_opts).unwrap()[0];
        let mut all: Vec<(String, f32)> =
            (0..ds.corpus.len()).map(|i| (ds.corpus.id(i).to_string(), qv.iter().zip(&docs[i]).map(|(a, b)| a * b).sum())).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got: Vec<&String> = file[qid].iter().map(|(d, _)| d).collect();
        assert_eq!(got, all.iter().take(got.len()).map(|(d, _)| d).collect::<Vec<_>>(), "{qid}");
    }
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["reranked"].as_object().is_some_and(|m| !m.is_empty()), "{metrics}");
}
