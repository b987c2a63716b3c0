//! The desktop app for real: under Xvfb with Mesa's lavapipe (a Vulkan
//! device), started on the fixture reranker and the fixture folder, it
//! types one query, draws the ranked list, screenshots its window and
//! exits. The screenshot must show the list (not a blank window), the
//! ranked order must equal `crossrank rerank`'s for the same query and
//! passages, and the screenshot stays under target/ as a CI artifact.
//!
//! Skipped when Xvfb is missing, unless CROSSRANK_REQUIRE_WGPU=1 (CI).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const QUERY: &str = "how do I keep bread dough from sticking";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A private X server; killed on drop.
struct Xvfb(Child, String);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn xvfb() -> Option<Xvfb> {
    let mut child = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "1280x900x24", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?).read_line(&mut line).ok()?;
    let n: u32 = line.trim().parse().ok()?;
    Some(Xvfb(child, format!(":{n}")))
}

#[test]
fn self_test_under_xvfb_draws_the_ranked_list_in_the_clis_order() {
    let required = std::env::var("CROSSRANK_REQUIRE_WGPU").is_ok_and(|v| v == "1");
    let Some(x) = xvfb() else {
        assert!(!required, "Xvfb is required (CROSSRANK_REQUIRE_WGPU=1): apt-get install xvfb");
        eprintln!("skipped: no Xvfb");
        return;
    };
    let app = PathBuf::from(env!("CARGO_BIN_EXE_crossrank-desktop"));
    let bin_dir = app.parent().expect("bin dir").to_path_buf();
    let target = bin_dir.parent().expect("target dir").to_path_buf();
    let shot = target.join("desktop-self-test.png");
    let _ = std::fs::remove_file(&shot);
    let tmp = tempfile::tempdir().unwrap();
    let report_path = tmp.path().join("report.json");
    let fixtures = workspace().join("tests/fixtures");
    let model = fixtures.join("bert-tiny");
    let runtime = tmp.path().join("xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    let out = Command::new(&app)
        .args(["--folder", fixtures.join("desktop-notes").to_str().unwrap(), "--reranker", model.to_str().unwrap()])
        .args(["--device", "shared", "--self-test", QUERY, "--timeout", "240"])
        .args(["--screenshot", shot.to_str().unwrap(), "--report", report_path.to_str().unwrap()])
        .env("DISPLAY", &x.1)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert!(out.status.success(), "app failed: {}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    eprintln!(
        "device: {}; {} files, {} passages; search {:.0} ms; memory {}",
        report["device"], report["files"], report["passages"], report["search_ms"], report["memory_mib"]
    );
    // The models ran on the window's own device, and the folder was read
    // as it should be: 7 notes (not the hidden one, not the .png).
    assert_eq!(report["device_mode"], "shared");
    assert!(report["device"].as_str().unwrap().contains("shared"), "{}", report["device"]);
    assert_eq!(report["files"], 7, "{report}");
    let hits = report["results"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| !h["file"].as_str().unwrap().contains("private")));

    // The same query over the same passages through the CLI, on the CPU:
    // the same order, the same scores, the same windows.
    let cli = bin_dir.join(if cfg!(windows) { "crossrank.exe" } else { "crossrank" });
    assert!(cli.is_file(), "{} missing: run the workspace's tests (cargo test --workspace)", cli.display());
    // One document per line for the CLI; the tokenizers read a newline as
    // the space it becomes (same bytes, so windows keep their offsets).
    let docs: String = hits.iter().map(|h| h["text"].as_str().unwrap().replace('\n', " ") + "\n").collect();
    let mut child = Command::new(&cli)
        .args(["rerank", "--model", model.to_str().unwrap(), "--device", "cpu", "--query", QUERY])
        .args(["--long-passages", "maxp", "--max-length", "256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), docs.as_bytes()).unwrap();
    let cli_out = child.wait_with_output().unwrap();
    assert!(cli_out.status.success(), "{}", String::from_utf8_lossy(&cli_out.stderr));
    let ranked: Vec<serde_json::Value> = serde_json::from_slice(&cli_out.stdout).unwrap();
    let order: Vec<u64> = ranked.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(order, (0..hits.len() as u64).collect::<Vec<_>>(), "the CLI ranks the app's list in the app's order");
    for (r, h) in ranked.iter().zip(hits) {
        let (cli, app) = (r["score"].as_f64().unwrap(), h["score"].as_f64().unwrap());
        assert!((cli - app).abs() < 1e-3, "score {app} (app, shared GPU) vs {cli} (CLI, CPU)");
        if let (Some(w), Some(span)) = (r.get("window").filter(|w| !w.is_null()), h["window"].as_array()) {
            let text = h["text"].as_str().unwrap();
            let chars = |b: u64| text[..b as usize].chars().count() as u64;
            assert_eq!(
                (w["start"].as_u64().unwrap(), w["end"].as_u64().unwrap()),
                (chars(span[0].as_u64().unwrap()), chars(span[1].as_u64().unwrap())),
                "the highlighted window is the CLI's"
            );
        }
    }

    // The screenshot shows the list: the window's size, text everywhere
    // below the query box, and the highlighted windows drawn.
    let img = image::open(&shot).unwrap().to_rgba8();
    let (w, h) = img.dimensions();
    assert!(w >= 800 && h >= 600, "{w}x{h}");
    let background = *img.get_pixel(w - 2, h / 2);
    let below = (h / 4)..(h * 9 / 10);
    let total = (below.end - below.start) as usize * w as usize;
    let inked = below.clone().flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| *img.get_pixel(x, y) != background).count();
    let highlighted = img.pixels().filter(|p| p.0[..3] == [255, 214, 10]).count();
    let colors: std::collections::HashSet<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    eprintln!(
        "screenshot {w}x{h}: {:.1} % of the list area drawn, {highlighted} highlight pixels, {} colours",
        100.0 * inked as f64 / total as f64,
        colors.len()
    );
    assert!(inked * 100 > total * 3, "the list area is (nearly) blank: {inked} of {total} pixels");
    // bread.md's long section is read in several windows: its best is highlighted.
    assert!(hits.iter().any(|h| h["windows"].as_u64().unwrap() > 1), "no passage needed windows");
    assert!(highlighted > 500, "no highlighted window drawn ({highlighted} pixels)");
    assert!(colors.len() > 16, "a flat image ({} colours)", colors.len());
    eprintln!("screenshot: {}", shot.display());
}
