//! A BM25 first stage on tantivy (feature `bm25`; native only).
//!
//! Why tantivy and not the `bm25` crate (measured on the man-page benchmark,
//! `benches/bm25_compare.rs`, numbers in the README's Evaluation section):
//! tantivy is the maintained Rust search library (Lucene's design: block-max
//! WAND top-k over compressed postings, Lucene's BM25 with k1 = 1.2,
//! b = 0.75), and its index lives in a temporary directory, memory-mapped, so
//! a large corpus is not held a second time in memory. The `bm25` crate keeps
//! every document's sparse vector plus a hash set of documents per token in
//! memory, scores every document that shares a token with the query (no
//! top-k pruning), and hashes tokens into u32 (collisions merge words).
//!
//! Analysis follows BEIR's BM25 baseline (Elasticsearch's `english`
//! analyzer): words split on non-alphanumerics, lower-cased, Lucene's English
//! stop words removed, English Snowball stemming. `bm25:LANGUAGE` picks
//! another Snowball language (its stop list where tantivy has one);
//! `bm25:none` only lower-cases. The query is the bag of its analysed terms
//! (a repeated term counts again, as in Elasticsearch's `match` query); no
//! query syntax is parsed, so any text is a valid query.

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, Term, doc};

use super::data::Corpus;
use super::metrics::Run;
use crate::error::{Error, Result};

const ANALYZER: &str = "crossrank";
/// Indexing memory per writer thread (tantivy's minimum is 15 MB).
const HEAP_PER_THREAD: usize = 64 << 20;

fn bm25_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("BM25 index: {e}"))
}

/// The languages `bm25:LANGUAGE` accepts (lower-case English names).
pub const LANGUAGES: &[&str] = &[
    "none",
    "arabic",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
];

fn language(name: &str) -> Option<Option<Language>> {
    use Language::*;
    Some(Some(match name.to_ascii_lowercase().as_str() {
        "none" => return Some(None),
        "arabic" => Arabic,
        "danish" => Danish,
        "dutch" => Dutch,
        "english" => English,
        "finnish" => Finnish,
        "french" => French,
        "german" => German,
        "greek" => Greek,
        "hungarian" => Hungarian,
        "italian" => Italian,
        "norwegian" => Norwegian,
        "portuguese" => Portuguese,
        "romanian" => Romanian,
        "russian" => Russian,
        "spanish" => Spanish,
        "swedish" => Swedish,
        "tamil" => Tamil,
        "turkish" => Turkish,
        _ => return None,
    }))
}

fn analyzer(lang: Option<Language>) -> TextAnalyzer {
    let base = TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser);
    match lang {
        None => base.build(),
        Some(l) => match StopWordFilter::new(l) {
            Some(stop) => base.filter(stop).filter(Stemmer::new(l)).build(),
            None => base.filter(Stemmer::new(l)).build(),
        },
    }
}

/// A BM25 index over a corpus: document `i` of the corpus is stored by its
/// index, so results map back without keeping ids twice.
pub struct Bm25Index {
    index: Index,
    reader: IndexReader,
    text: Field,
}

impl Bm25Index {
    /// Index every document of `corpus` with `language`'s analyzer
    /// ("english" is BEIR's; see [`LANGUAGES`]). `progress(done, total)`
    /// counts documents handed to the indexer.
    pub fn build(corpus: &Corpus, language_name: &str, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        let lang = language(language_name)
            .ok_or_else(|| Error::InvalidInput(format!("unknown BM25 language {language_name:?}; one of: {}", LANGUAGES.join(", "))))?;
        let mut schema = Schema::builder();
        let text = schema.add_text_field(
            "text",
            TextOptions::default()
                .set_indexing_options(TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs)),
        );
        let ix = schema.add_u64_field("ix", FAST);
        let index = Index::create_from_tempdir(schema.build()).map_err(bm25_error)?;
        index.tokenizers().register(ANALYZER, analyzer(lang));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let mut writer: IndexWriter = index.writer_with_num_threads(threads, threads * HEAP_PER_THREAD).map_err(bm25_error)?;
        let total = corpus.len();
        progress(0, total);
        for i in 0..total {
            writer.add_document(doc!(text => corpus.text(i), ix => i as u64)).map_err(bm25_error)?;
            if (i + 1) % 4096 == 0 {
                progress(i + 1, total);
            }
        }
        writer.commit().map_err(bm25_error)?;
        writer.wait_merging_threads().map_err(bm25_error)?;
        progress(total, total);
        let reader = index.reader().map_err(bm25_error)?;
        Ok(Self { index, reader, text })
    }

    /// Document indices and BM25 scores of `query`'s `k` best, best first.
    /// A query with no indexed term (empty, or only stop words) matches
    /// nothing.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(usize, f32)>> {
        let mut analyzer = self.index.tokenizer_for_field(self.text).map_err(bm25_error)?;
        let mut stream = analyzer.token_stream(query);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        while let Some(token) = stream.next() {
            let term = Term::from_field_text(self.text, &token.text);
            clauses.push((Occur::Should, Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))));
        }
        if clauses.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(k).order_by_score()).map_err(bm25_error)?;
        let mut columns = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let column = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(searcher.segment_reader(addr.segment_ord).fast_fields().u64("ix").map_err(bm25_error)?)
                }
            };
            let i = column.first(addr.doc_id).ok_or_else(|| bm25_error("a document without its index"))?;
            out.push((i as usize, score));
        }
        Ok(out)
    }

    /// Each query's `k` best documents, as a run keyed by query id.
    pub fn retrieve(&self, corpus: &Corpus, queries: &[(String, String)], k: usize) -> Result<Run> {
        let mut run = Run::new();
        for (qid, text) in queries {
            let hits = self.search(text, k)?;
            run.insert(qid.clone(), hits.into_iter().map(|(i, s)| (corpus.id(i).to_string(), s as f64)).collect());
        }
        Ok(run)
    }
}
