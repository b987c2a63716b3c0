//! The crate's layering (docs/ARCHITECTURE.md), checked on its source:
//! module imports form no circle, and model and layer code never asks what
//! the device is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`nn/linear.rs` → `nn`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The source without comments (so prose naming a module is no edge) and
/// without `#[cfg(test)]` modules (tests may reach across layers).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every `crate::NAME` a file uses (paths and `use crate::{...}` groups).
fn uses(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if modules.contains(&name) {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if modules.contains(&name) {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn module_imports_form_no_circle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).filter(|m| m != "lib").collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        if m == "lib" {
            continue;
        }
        let deps = uses(&code(&std::fs::read_to_string(f).unwrap()), &modules);
        graph.entry(m.clone()).or_default().extend(deps.into_iter().filter(|d| *d != m));
    }
    // Depth-first search for a back edge, reporting the circle it closes.
    fn visit(m: &str, graph: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            panic!("module imports form a circle: {} -> {m}", stack[i..].join(" -> "));
        }
        stack.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            visit(d, graph, stack, done);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    // The parse sees the edges the layering is made of.
    for (from, to) in [("weights", "checkpoint"), ("weights", "quant"), ("nn", "kernels"), ("models", "nn"), ("rerank", "models")] {
        assert!(graph[from].contains(to), "{from} -> {to} not found: {graph:?}");
    }
    // The bottom floors stay at the bottom.
    for (low, forbidden) in
        [("kernels", ["nn", "models", "quant", "weights", "device"]), ("quant", ["nn", "models", "weights", "device", "checkpoint"])]
    {
        let deps = &graph[low];
        for f in forbidden {
            assert!(!deps.contains(f), "{low} must not use {f} (it uses {deps:?})");
        }
    }
    assert!(!graph["checkpoint"].contains("weights"), "checkpoint must not use weights");
    // Models are built from layers; what runs on which device is below nn.
    assert!(!graph["models"].contains("kernels") && !graph["models"].contains("device"), "models use {:?}", graph["models"]);
}

#[test]
fn models_and_layers_never_ask_what_the_device_is() {
    for dir in ["models", "nn", "quant"] {
        let mut files = Vec::new();
        rust_files(&src().join(dir), &mut files);
        assert!(!files.is_empty());
        for f in files {
            let text = code(&std::fs::read_to_string(&f).unwrap());
            for needle in ["cfg(target_arch", "cfg(target_family", "Device::flex", "is_cpu", "on_host", "supports_dtype", "DeviceKind"] {
                assert!(!text.contains(needle), "{} contains {needle:?}: device choices belong in kernels/ or device/", f.display());
            }
        }
    }
}
