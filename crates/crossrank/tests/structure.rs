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
/// without `#[cfg(test)]` modules (tests may reach across layers) — the
/// whole file otherwise, code after a test module included.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if let Some(after) = rest.strip_prefix("#[cfg(test)]")
            && test_module_follows(after)
        {
            i = block_end(text, i + rest.find('{').unwrap());
        } else if let Some(end) = comment_end(text, i) {
            i = end;
        } else if let Some(end) = literal_end(text, i) {
            out.push_str(&text[i..end]);
            i = end;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Whether `rest` (after `#[cfg(test)]`) opens a module: `mod NAME {`.
fn test_module_follows(rest: &str) -> bool {
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
    rest.strip_prefix("mod ").is_some_and(|r| {
        let name_end = r.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(r.len());
        r[name_end..].trim_start().starts_with('{')
    })
}

/// The end of a `//` or `/* */` comment starting at `i`.
fn comment_end(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    if rest.starts_with("//") {
        Some(i + rest.find('\n').unwrap_or(rest.len()))
    } else if rest.starts_with("/*") {
        Some(i + rest.find("*/").map_or(rest.len(), |e| e + 2))
    } else {
        None
    }
}

/// The end of a string, raw string or character literal starting at `i`
/// (not of a lifetime).
fn literal_end(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let after_ident = text[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_');
    if !after_ident && let Some(raw) = rest.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        if raw[hashes..].starts_with('"') {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 1 + hashes + 1;
            return Some(i + body + rest[body..].find(&close).map_or(rest.len() - body, |e| e + close.len()));
        }
    }
    if rest.starts_with('"') {
        let mut escaped = false;
        for (k, c) in rest.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return Some(i + k + 1),
                _ => {}
            }
        }
        return Some(text.len());
    }
    if let Some(lit) = rest.strip_prefix('\'') {
        if lit.starts_with('\\') {
            return Some(i + 3 + lit[2..].find('\'').map_or(lit.len() - 2, |e| e + 1));
        }
        let c = lit.chars().next()?;
        if lit[c.len_utf8()..].starts_with('\'') {
            return Some(i + 1 + c.len_utf8() + 1);
        }
    }
    None
}

/// The byte after the `}` closing the block opened at `open`; braces in
/// strings, character literals and comments do not count.
fn block_end(text: &str, open: usize) -> usize {
    let (mut depth, mut i) = (0usize, open);
    while i < text.len() {
        if let Some(end) = comment_end(text, i).or_else(|| literal_end(text, i)) {
            i = end;
            continue;
        }
        match text.as_bytes()[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    text.len()
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
    // Layers sit below the tokenizer: what they take (a padded batch,
    // packed lengths) is defined under them.
    assert!(!graph["nn"].contains("tokenize"), "nn must not use tokenize (it uses {:?})", graph["nn"]);
    // Models are built from layers; what runs on which device is below nn.
    assert!(!graph["models"].contains("kernels") && !graph["models"].contains("device"), "models use {:?}", graph["models"]);
}

#[test]
fn code_skips_comments_and_test_modules_but_reads_past_them() {
    let text = "use crate::a; // crate::b\n/* crate::b */\n#[cfg(test)]\nmod tests {\n    use crate::c;\n    fn f<'a>() { let x = ['{', '\\'', '\"']; let s = \"}\"; let r = r#\"}\"#; }\n}\nfn g() { crate::d::h(); }\n";
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    let used: Vec<String> = uses(&code(text), &modules).into_iter().collect();
    assert_eq!(used, ["a", "d"]);
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
