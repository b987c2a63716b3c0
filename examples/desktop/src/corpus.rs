//! A folder as passages: the text files (walked with the `ignore` crate,
//! so `.gitignore`d files stay out), each split into passages of about
//! [`PASSAGE_BYTES`] along paragraphs and headings.

use std::path::{Path, PathBuf};

/// Files larger than this are not indexed (logs, dumps).
const MAX_FILE_BYTES: u64 = 4 << 20;
/// A passage grows paragraph by paragraph up to about this many bytes (a
/// section of a note); longer ones are scored window by window (maxp), so
/// nothing is cut off.
const PASSAGE_BYTES: usize = 2000;
const EXTENSIONS: &[&str] = &["md", "markdown", "txt", "text", "rst", "org", "adoc", "asciidoc", "tex"];

/// A passage of a file.
#[derive(Debug)]
pub struct Passage {
    /// The file's index in [`Folder::files`].
    pub file: usize,
    /// The passage's position in its file (0-based).
    pub index: usize,
    pub text: String,
}

/// An indexed folder's text.
#[derive(Debug)]
pub struct Folder {
    /// Files with text, relative to the folder.
    pub files: Vec<PathBuf>,
    pub passages: Vec<Passage>,
    /// Files left out: too large, or not UTF-8.
    pub skipped: usize,
}

/// The folder's text files (relative paths, sorted) and their passages,
/// and how many files were skipped (too large, not UTF-8). The walk skips
/// hidden entries and what `.gitignore` / `.ignore` files exclude (the
/// `ignore` crate, as ripgrep walks), does not follow links into
/// directories (no cycles) and stops 32 levels down.
pub fn read_folder(dir: &Path) -> Result<Folder, String> {
    let mut found = Vec::new();
    let mut skipped = 0;
    let walk = ignore::WalkBuilder::new(dir).hidden(true).require_git(false).follow_links(false).max_depth(Some(33)).build();
    for entry in walk.flatten() {
        let Some(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if !(kind.is_file() || kind.is_symlink() && path.is_file()) || !is_text_file(path) {
            continue;
        }
        if entry.metadata().map_or(true, |m| m.len() > MAX_FILE_BYTES) {
            skipped += 1;
            continue;
        }
        if let Ok(rel) = path.strip_prefix(dir) {
            found.push(rel.to_path_buf());
        }
    }
    found.sort();
    let (mut files, mut passages) = (Vec::new(), Vec::new());
    for rel in found {
        let Ok(text) = std::fs::read_to_string(dir.join(&rel)) else {
            skipped += 1; // not UTF-8 text
            continue;
        };
        let file = files.len();
        let before = passages.len();
        for (index, text) in split_passages(&text).into_iter().enumerate() {
            passages.push(Passage { file, index, text });
        }
        if passages.len() > before {
            files.push(rel);
        }
    }
    if passages.is_empty() {
        return Err(format!("no text files ({}) with text in {}", EXTENSIONS.join(", "), dir.display()));
    }
    Ok(Folder { files, passages, skipped })
}

/// Whether the index reads this file (by its extension).
pub fn is_text_file(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    EXTENSIONS.contains(&ext.as_str())
}

/// Paragraphs (blank-line separated) gathered into passages of about
/// `PASSAGE_BYTES`; a Markdown heading starts a new passage, and a
/// paragraph longer than two passages (a file without blank lines) is cut
/// at whitespace into passages of that size, so no passage costs hundreds
/// of windows.
pub fn split_passages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let paragraphs = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .flat_map(|p| if p.len() > 2 * PASSAGE_BYTES { cut(p, PASSAGE_BYTES) } else { vec![p] });
    for para in paragraphs {
        let heading = para.starts_with('#');
        if !cur.is_empty() && (heading || cur.len() + para.len() > PASSAGE_BYTES) {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(para);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `text` in pieces of at most about `size` bytes, cut after whitespace
/// (or anywhere on a char boundary when a piece has none).
fn cut(mut text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    while text.len() > size {
        let mut end = size;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let at = text[..end].rfind(char::is_whitespace).filter(|&i| i > size / 2).map_or(end, |i| i + 1);
        out.push(text[..at].trim());
        text = text[at..].trim_start();
    }
    if !text.is_empty() {
        out.push(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_skips_ignored_hidden_large_and_binary_files() {
        let dir = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &[u8]| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("notes/a.md", b"# A\n\nbread dough");
        put("notes/b.txt", b"rye");
        put("build/out.md", b"generated");
        put(".hidden/c.md", b"secret");
        put("d.rs", b"fn main() {}");
        put("e.md", &[0xff, 0xfe, 0x00]);
        put("big.txt", &vec![b'a'; (MAX_FILE_BYTES + 1) as usize]);
        put(".gitignore", b"build/\n");
        let f = read_folder(dir.path()).unwrap();
        assert_eq!(f.files, [PathBuf::from("notes/a.md"), PathBuf::from("notes/b.txt")]);
        assert_eq!(f.skipped, 2); // big.txt (size), e.md (not UTF-8)
        assert_eq!(f.passages.iter().map(|p| (p.file, p.index, p.text.as_str())).collect::<Vec<_>>(), [
            (0, 0, "# A\n\nbread dough"),
            (1, 0, "rye")
        ]);
        // A folder with no text file is an error that says so.
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(read_folder(&dir.path().join("empty")).unwrap_err().contains("no text files"));
    }

    #[test]
    fn passages_follow_paragraphs_and_headings() {
        let text = "# Title\n\nFirst para.\n\nSecond para.\n\n## Next\n\nThird.";
        assert_eq!(split_passages(text), ["# Title\n\nFirst para.\n\nSecond para.", "## Next\n\nThird."]);
        let long = format!("{}\n\n{}", "a".repeat(1500), "b".repeat(1500));
        assert_eq!(split_passages(&long).len(), 2);
        assert!(split_passages("  \n\n  ").is_empty());
        // One huge paragraph: cut at whitespace into passages of about PASSAGE_BYTES.
        let words = "lorem ipsum dolor sit amet ".repeat(1000);
        let parts = split_passages(&words);
        assert!(parts.len() >= 10 && parts.iter().all(|p| p.len() <= PASSAGE_BYTES && !p.ends_with(' ')), "{}", parts.len());
        assert_eq!(parts.concat().replace(' ', ""), words.replace(' ', ""));
        // Multi-byte text without whitespace is cut on char boundaries.
        assert!(split_passages(&"ü".repeat(5000)).iter().all(|p| p.chars().all(|c| c == 'ü')));
    }
}
