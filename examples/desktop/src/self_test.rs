//! `--self-test QUERY`: the app drives itself as a person would — waits for
//! the models and the folder, types the query, waits for its results to
//! be drawn, screenshots the window, writes the report (ranked passages,
//! timings, memory) and closes with the outcome. tests/self_test.rs runs
//! it under Xvfb.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;

use crate::app::SearchApp;
use crate::engine;

pub struct SelfTest {
    query: String,
    deadline: Instant,
    phase: Phase,
    shot: Arc<Mutex<Option<Arc<egui::ColorImage>>>>,
}

impl SelfTest {
    /// A run that types `query` once the models and folder are ready and
    /// fails after `timeout`.
    pub fn new(query: String, timeout: Duration) -> Self {
        SelfTest { query, deadline: Instant::now() + timeout, phase: Phase::WaitingForIndex, shot: Arc::new(Mutex::new(None)) }
    }
}

#[derive(PartialEq)]
enum Phase {
    WaitingForIndex,
    Typed,
    /// Results drawn for this many frames.
    Shown(u32),
    Shooting,
}

impl SearchApp {
    /// One frame of the self-test: type the query when ready, wait for its
    /// results, let them draw, screenshot, report, close.
    pub(crate) fn self_test_step(&mut self, ctx: &egui::Context) {
        let Some(t) = &mut self.self_test else { return };
        ctx.request_repaint();
        if let Some(e) = &self.error {
            let e = e.clone();
            self.finish(ctx, Err(e));
            return;
        }
        if Instant::now() > t.deadline {
            let why = format!("timed out (status: {})", self.status);
            self.finish(ctx, Err(why));
            return;
        }
        match t.phase {
            Phase::WaitingForIndex if self.loaded && self.indexed.is_some() => {
                // As if typed: the query box gets the text, the debounce
                // sends it.
                self.query = t.query.clone();
                self.edited_at = Some(Instant::now());
                t.phase = Phase::Typed;
            }
            Phase::Typed if self.results.as_ref().is_some_and(|r| r.query == t.query.trim() && r.generation == self.generation) => {
                t.phase = Phase::Shown(0);
            }
            // A few frames so the list is laid out and presented.
            Phase::Shown(n) if n < 3 => t.phase = Phase::Shown(n + 1),
            Phase::Shown(_) => {
                let slot = t.shot.clone();
                let wake = ctx.clone();
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::ScreenshotCallback::new(move |img| {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(img);
                    }
                    wake.request_repaint();
                })));
                t.phase = Phase::Shooting;
            }
            Phase::Shooting => {
                let img = t.shot.lock().ok().and_then(|mut s| s.take());
                if let Some(img) = img {
                    let result = self.write_self_test(&img);
                    self.finish(ctx, result);
                }
            }
            _ => {}
        }
    }

    fn write_self_test(&self, img: &egui::ColorImage) -> Result<(), String> {
        let [w, h] = img.size;
        if let Some(path) = &self.args.screenshot {
            let rgba: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_srgba_unmultiplied()).collect();
            let buf = image::RgbaImage::from_raw(w as u32, h as u32, rgba).ok_or("screenshot: wrong pixel count")?;
            let tmp = path.with_extension("png.partial");
            buf.save_with_format(&tmp, image::ImageFormat::Png).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let r = self.results.as_ref().ok_or("no results")?;
        let (files, passages, _, index_seconds) = self.indexed.unwrap_or_default();
        let memory = engine::memory_mib();
        let report = serde_json::json!({
            "query": r.query,
            "device_mode": format!("{:?}", self.device).to_lowercase(),
            "device": self.device_reason,
            "dtype": self.dtype,
            "reranker": self.reranker,
            "embedder": self.embedder,
            "folder": self.folder,
            "files": files,
            "passages": passages,
            "index_seconds": index_seconds,
            "candidates": r.candidates,
            "search_ms": r.millis,
            "results": r.hits.iter().enumerate().map(|(i, h)| serde_json::json!({
                "rank": i + 1,
                "file": h.file.display().to_string(),
                "passage": h.passage,
                "score": h.score,
                "text": h.text,
                "window": h.span.map(|(a, b)| [a, b]),
                "windows": h.windows,
            })).collect::<Vec<_>>(),
            "memory_mib": memory.map(|(rss, peak)| serde_json::json!({"rss": rss, "peak": peak})),
            "screenshot": {"width": w, "height": h, "path": self.args.screenshot},
        });
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        match &self.args.report {
            Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
            None => {
                println!("{text}");
                Ok(())
            }
        }
    }

    fn finish(&mut self, ctx: &egui::Context, result: Result<(), String>) {
        if let Ok(mut o) = self.outcome.lock() {
            *o = Some(result);
        }
        self.self_test = None;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }
}
