//! The JSON Lines inputs of the CLI (and of anyone scoring files): one
//! `{"query": ..., "passage": ...}` per line for scoring, one string or
//! `{"text": ...}` per line for embedding. Blank lines are skipped; a bad
//! line is a typed error naming its number.

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Deserialize)]
struct PairLine {
    query: String,
    passage: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextLine {
    Plain(String),
    Object { text: String },
}

/// Non-blank lines with their 1-based numbers: every JSON Lines reader's rule.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(n, l)| (n + 1, l)).filter(|(_, l)| !l.trim().is_empty())
}

/// (query, passage) pairs, one JSON object per line.
pub fn pairs(text: &str) -> Result<Vec<(String, String)>> {
    lines(text)
        .map(|(n, line)| {
            serde_json::from_str::<PairLine>(line)
                .map(|p| (p.query, p.passage))
                .map_err(|e| Error::InvalidInput(format!("line {n}: expected {{\"query\": ..., \"passage\": ...}}: {e}")))
        })
        .collect()
}

/// Texts, one JSON string or `{"text": ...}` per line.
pub fn texts(text: &str) -> Result<Vec<String>> {
    lines(text)
        .map(|(n, line)| match serde_json::from_str::<TextLine>(line) {
            Ok(TextLine::Plain(s) | TextLine::Object { text: s }) => Ok(s),
            Err(_) => Err(Error::InvalidInput(format!("line {n}: expected a JSON string or {{\"text\": ...}}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_and_texts_and_names_bad_lines() {
        let p = pairs("{\"query\": \"q\", \"passage\": \"p\"}\n\n  \n{\"passage\": \"b\", \"query\": \"a\"}\n").unwrap();
        assert_eq!(p, vec![("q".into(), "p".into()), ("a".into(), "b".into())]);
        let e = pairs("{\"query\": \"q\", \"passage\": \"p\"}\n{\"query\": 1}\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(texts("\"a\"\n{\"text\": \"b\"}\n").unwrap(), vec!["a".to_string(), "b".to_string()]);
        assert!(texts("\"a\"\n3\n").unwrap_err().to_string().contains("line 2"));
    }
}
