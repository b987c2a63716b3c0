//! The window: settings (folder, models, device, dtype), the query box, the
//! ranked passages with the window that scored highlighted, and a status
//! line. All work happens on the engine thread; this only draws and sends
//! (`--self-test` drives it through `self_test.rs`).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui::{self, Color32, RichText, text::LayoutJob};

use crate::Args;
use crate::corpus;
use crate::engine::{self, Command, DeviceMode, Event, ModelSpec, Results};
use crate::self_test::SelfTest;

/// Typing pauses this long before a search is sent.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// The matched window's highlight.
pub const HIGHLIGHT: Color32 = Color32::from_rgb(255, 214, 10);
const DTYPES: [&str; 5] = ["f32", "f16", "q8", "q4", "q4-all"];

pub struct SearchApp {
    pub(crate) args: Args,
    tx: Sender<Command>,
    rx: Receiver<Event>,
    /// The window's wgpu handles, to lend the models on request.
    render: Option<eframe::egui_wgpu::RenderState>,
    shared: Option<(crossrank::Device, String)>,
    pub(crate) folder: String,
    pub(crate) reranker: String,
    pub(crate) embedder: String,
    pub(crate) device: DeviceMode,
    pub(crate) dtype: String,
    pub(crate) query: String,
    pub(crate) edited_at: Option<Instant>,
    sent_query: Option<String>,
    pub(crate) generation: u64,
    pub(crate) status: String,
    pub(crate) device_reason: String,
    pub(crate) error: Option<String>,
    download: Option<(String, u64, Option<u64>)>,
    indexing: Option<(usize, usize, &'static str)>,
    loading: bool,
    pub(crate) loaded: bool,
    pub(crate) indexed: Option<(usize, usize, usize, f64)>,
    pub(crate) results: Option<Results>,
    pub(crate) self_test: Option<SelfTest>,
    /// The folder chooser, when open.
    browser: Option<Browser>,
    pub(crate) outcome: Arc<Mutex<Option<Result<(), String>>>>,
}

impl SearchApp {
    pub fn new(cc: &eframe::CreationContext<'_>, args: Args, outcome: Arc<Mutex<Option<Result<(), String>>>>) -> Self {
        let ctx = cc.egui_ctx.clone();
        let (tx, rx) = engine::spawn(move || ctx.request_repaint());
        let self_test = args.self_test.clone().map(|query| SelfTest::new(query, Duration::from_secs(args.timeout)));
        let mut app = SearchApp {
            tx,
            rx,
            render: cc.wgpu_render_state.clone(),
            shared: None,
            folder: args.folder.as_ref().map(|f| f.display().to_string()).unwrap_or_default(),
            reranker: args.reranker.clone(),
            embedder: args.embedder.clone().unwrap_or_default(),
            device: args.device,
            dtype: args.dtype.clone(),
            query: String::new(),
            edited_at: None,
            sent_query: None,
            generation: 0,
            status: "starting".into(),
            device_reason: String::new(),
            error: None,
            download: None,
            indexing: None,
            loading: false,
            loaded: false,
            indexed: None,
            results: None,
            self_test,
            browser: None,
            outcome,
            args,
        };
        app.load();
        if !app.folder.is_empty() {
            app.index();
        }
        app
    }

    /// The window's device as a crossrank device, registered once.
    fn shared_device(&mut self) -> Option<(crossrank::Device, String)> {
        if self.shared.is_none() {
            let rs = self.render.as_ref()?;
            match crossrank::device::from_wgpu(rs.instance.clone(), rs.adapter.clone(), rs.device.clone(), rs.queue.clone()) {
                Ok(sel) => self.shared = Some((sel.device, sel.reason)),
                Err(e) => {
                    self.error = Some(format!("cannot share the window's GPU device: {e}"));
                    return None;
                }
            }
        }
        self.shared.clone()
    }

    fn load(&mut self) {
        let dtype = match self.dtype.parse::<crossrank::WeightDtype>() {
            Ok(d) => d,
            Err(e) => {
                self.error = Some(e.to_string());
                return;
            }
        };
        let hardware_window = self.render.as_ref().is_some_and(|rs| rs.adapter.get_info().device_type != eframe::wgpu::DeviceType::Cpu);
        let shared = match self.device {
            DeviceMode::Shared => self.shared_device(),
            // auto: share the window's GPU when it is a real one.
            DeviceMode::Auto if hardware_window => self.shared_device(),
            _ => None,
        };
        let embedder = Some(self.embedder.trim().to_string()).filter(|e| !e.is_empty());
        self.loading = true;
        self.loaded = false;
        self.error = None;
        let _ = self.tx.send(Command::Load(ModelSpec {
            reranker: self.reranker.trim().to_string(),
            embedder,
            dtype,
            device: self.device,
            shared,
        }));
    }

    fn index(&mut self) {
        self.indexed = None;
        self.error = None;
        let _ = self.tx.send(Command::Index(PathBuf::from(self.folder.trim())));
    }

    fn search_now(&mut self) {
        self.generation += 1;
        self.sent_query = Some(self.query.clone());
        self.edited_at = None;
        let _ = self.tx.send(Command::Search { query: self.query.clone(), generation: self.generation });
    }

    fn drain_events(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            match ev {
                Event::Status(s) => self.status = s,
                Event::Download { file, bytes, total } => {
                    self.status = format!("downloading {file}");
                    self.download = Some((file, bytes, total));
                }
                Event::Loaded { device, seconds } => {
                    self.loading = false;
                    self.loaded = true;
                    self.download = None;
                    self.status = format!("models loaded in {seconds:.1} s");
                    self.device_reason = device;
                    self.refresh();
                }
                Event::Indexing { done, total, what } => {
                    self.status = format!("indexing: {what}");
                    self.indexing = Some((done, total, what));
                }
                Event::Indexed { files, passages, skipped, seconds } => {
                    self.indexing = None;
                    self.indexed = Some((files, passages, skipped, seconds));
                    self.status = format!("indexed {files} files, {passages} passages in {seconds:.1} s");
                    self.refresh();
                }
                Event::Results(r) => {
                    if r.generation == self.generation {
                        self.status = format!("{} candidates reranked in {:.0} ms", r.candidates, r.millis);
                        self.results = Some(r);
                    }
                }
                Event::Error(e) => {
                    self.loading = false;
                    self.indexing = None;
                    self.download = None;
                    self.error = Some(e);
                }
            }
        }
    }

    /// Run the current query again (models or index changed).
    fn refresh(&mut self) {
        if !self.query.trim().is_empty() {
            self.search_now();
        }
    }

    fn settings(&mut self, ui: &mut egui::Ui) {
        egui::Grid::new("settings").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
            ui.label("Folder");
            ui.horizontal(|ui| {
                let edit = ui.add(egui::TextEdit::singleline(&mut self.folder).hint_text("/path/to/notes").desired_width(560.0));
                let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.button("Browse…").clicked() {
                    let start = Some(PathBuf::from(self.folder.trim()))
                        .filter(|p| p.is_dir())
                        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
                        .unwrap_or_else(|| PathBuf::from("/"));
                    self.browser = Some(Browser::at(start));
                }
                if ui.add_enabled(self.indexing.is_none(), egui::Button::new("Index")).clicked() || enter {
                    self.index();
                }
            });
            ui.end_row();
            ui.label("Reranker");
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut self.reranker).hint_text("directory or BAAI/bge-reranker-base").desired_width(300.0),
                );
                ui.label("Embedder");
                ui.add(egui::TextEdit::singleline(&mut self.embedder).hint_text("optional: dense retrieval").desired_width(250.0));
            });
            ui.end_row();
            ui.label("Device");
            ui.horizontal(|ui| {
                egui::ComboBox::from_id_salt("device").selected_text(self.device.label()).show_ui(ui, |ui| {
                    for m in DeviceMode::ALL {
                        ui.selectable_value(&mut self.device, m, m.label());
                    }
                });
                ui.label("Weights");
                egui::ComboBox::from_id_salt("dtype").selected_text(self.dtype.clone()).show_ui(ui, |ui| {
                    for d in DTYPES {
                        ui.selectable_value(&mut self.dtype, d.to_string(), d);
                    }
                });
                if ui.add_enabled(!self.loading, egui::Button::new("Load models")).clicked() {
                    self.load();
                }
            });
            ui.end_row();
        });
    }

    /// The folder chooser (a small window: no system dialog library, whose
    /// Linux backends would pull in a D-Bus or GTK stack).
    fn browse(&mut self, ctx: &egui::Context) {
        let Some(b) = &mut self.browser else { return };
        let mut open = true;
        let mut chosen = None;
        egui::Window::new("Choose a folder to index").open(&mut open).collapsible(false).default_width(520.0).show(ctx, |ui| {
            ui.horizontal(|ui| {
                if ui.add_enabled(b.dir.parent().is_some(), egui::Button::new("⬆ Up")).clicked() {
                    if let Some(p) = b.dir.parent().map(PathBuf::from) {
                        *b = Browser::at(p);
                    }
                }
                ui.label(RichText::new(b.dir.display().to_string()).strong());
            });
            ui.label(RichText::new(format!("{} text files here (not counting subfolders)", b.text_files)).weak());
            ui.separator();
            let mut enter = None;
            egui::ScrollArea::vertical().max_height(360.0).show(ui, |ui| {
                if b.subdirs.is_empty() {
                    ui.label(RichText::new("no subfolders").weak());
                }
                for name in &b.subdirs {
                    if ui.selectable_label(false, format!("📁 {name}")).clicked() {
                        enter = Some(b.dir.join(name));
                    }
                }
            });
            if let Some(p) = enter {
                *b = Browser::at(p);
            }
            ui.separator();
            if ui.button("Index this folder").clicked() {
                chosen = Some(b.dir.clone());
            }
        });
        if let Some(dir) = chosen {
            self.folder = dir.display().to_string();
            self.browser = None;
            self.index();
        } else if !open {
            self.browser = None;
        }
    }

    fn status_line(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(e) = &self.error {
                ui.colored_label(ui.visuals().error_fg_color, e);
                return;
            }
            if let Some((file, bytes, total)) = &self.download {
                let frac = total.map_or(0.0, |t| *bytes as f32 / t.max(1) as f32);
                let text = match total {
                    Some(t) => format!("{file}: {:.1} / {:.1} MB", *bytes as f64 / 1e6, *t as f64 / 1e6),
                    None => format!("{file}: {:.1} MB", *bytes as f64 / 1e6),
                };
                ui.add(egui::ProgressBar::new(frac).desired_width(320.0).text(text));
            } else if let Some((done, total, what)) = self.indexing {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32).desired_width(320.0).text(format!("{what}: {done}/{total}")),
                );
            } else if self.loading {
                ui.spinner();
            }
            ui.label(&self.status);
            if !self.device_reason.is_empty() {
                ui.separator();
                ui.label(RichText::new(&self.device_reason).small());
            }
            if let Some((rss, _)) = engine::memory_mib() {
                ui.separator();
                ui.label(RichText::new(format!("{rss:.0} MiB")).small());
            }
        });
    }

    fn results(&self, ui: &mut egui::Ui) {
        let Some(r) = &self.results else {
            let hint = match (self.loaded, self.indexed) {
                (_, None) if self.folder.trim().is_empty() => "Choose a folder and press Index.",
                (false, _) => "Loading the models…",
                (_, None) => "Indexing…",
                _ => "Type a query.",
            };
            ui.label(RichText::new(hint).weak());
            return;
        };
        if r.hits.is_empty() {
            ui.label(RichText::new("Nothing matched.").weak());
            return;
        }
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            for (i, h) in r.hits.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(format!("{}.", i + 1)).strong());
                    ui.label(RichText::new(format!("{:+.3}", h.score)).monospace());
                    ui.label(RichText::new(h.file.display().to_string()).strong());
                    ui.label(RichText::new(format!("§{}", h.passage + 1)).weak());
                    if h.windows > 1 {
                        ui.label(RichText::new(format!("best of {} windows", h.windows)).weak().small());
                    }
                });
                // A passage read whole needs no highlight; a long one shows
                // the window that scored.
                ui.label(passage_job(ui, &h.text, h.span.filter(|_| h.windows > 1)));
                ui.separator();
            }
        });
    }
}

/// One directory of the folder chooser: its visible subfolders (sorted)
/// and how many files here the index would read.
struct Browser {
    dir: PathBuf,
    subdirs: Vec<String>,
    text_files: usize,
}

impl Browser {
    fn at(dir: PathBuf) -> Self {
        let mut subdirs = Vec::new();
        let mut text_files = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let path = e.path();
                if path.is_dir() {
                    subdirs.push(name);
                } else if corpus::is_text_file(&path) {
                    text_files += 1;
                }
            }
        }
        subdirs.sort_by_key(|n| n.to_lowercase());
        Browser { dir, subdirs, text_files }
    }
}

/// The passage, or an excerpt around its scoring window when long, with
/// the window highlighted.
fn passage_job(ui: &egui::Ui, text: &str, span: Option<(usize, usize)>) -> LayoutJob {
    const CONTEXT: usize = 240;
    let (a, b) = span.unwrap_or((0, 0));
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (from, to) =
        if text.len() <= 900 { (0, text.len()) } else { (floor(a.saturating_sub(CONTEXT)), floor((b + CONTEXT).max(900.min(text.len())))) };
    let (a, b) = (floor(a.clamp(from, to)), floor(b.clamp(from, to)));
    let font = egui::TextStyle::Body.resolve(ui.style());
    let plain = egui::TextFormat { font_id: font.clone(), color: ui.visuals().text_color(), ..Default::default() };
    let marked = egui::TextFormat { font_id: font, color: Color32::BLACK, background: HIGHLIGHT, ..Default::default() };
    let mut job = LayoutJob::default();
    if from > 0 {
        job.append("… ", 0.0, plain.clone());
    }
    job.append(&text[from..a], 0.0, plain.clone());
    job.append(&text[a..b], 0.0, marked);
    job.append(&text[b..to], 0.0, plain.clone());
    if to < text.len() {
        job.append(" …", 0.0, plain);
    }
    job.wrap.max_width = ui.available_width();
    job
}

impl eframe::App for SearchApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain_events();
        if let Some(at) = self.edited_at {
            let waited = at.elapsed();
            if waited >= DEBOUNCE {
                if self.sent_query.as_deref() != Some(self.query.as_str()) {
                    self.search_now();
                } else {
                    self.edited_at = None;
                }
            } else {
                ctx.request_repaint_after(DEBOUNCE - waited);
            }
        }
        self.self_test_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.browse(&ctx);
        egui::Panel::top("settings").show(ui, |ui| {
            ui.add_space(6.0);
            self.settings(ui);
            ui.add_space(4.0);
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.add_space(2.0);
            self.status_line(ui);
            ui.add_space(2.0);
        });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            let edit = egui::TextEdit::singleline(&mut self.query)
                .hint_text("Search the folder…")
                .font(egui::TextStyle::Heading)
                .desired_width(f32::INFINITY);
            if ui.add(edit).changed() {
                self.edited_at = Some(Instant::now());
            }
            ui.add_space(8.0);
            self.results(ui);
        });
    }
}
