//! A dense first stage: exact cosine top-k with an embedding checkpoint
//! (FlagEmbedding evaluates dense retrievers with an exact inner-product
//! index over normalized embeddings; this is the same ranking).
//!
//! The corpus is embedded in chunks and each query keeps a bounded heap of
//! its k best, so memory is queries × dim + one chunk, not corpus × dim.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::data::Dataset;
use super::metrics::Run;
use crate::embed::{EmbedOptions, Embedder};
use crate::error::Result;

/// Documents embedded per chunk.
const CHUNK: usize = 512;

#[derive(PartialEq)]
struct Scored(f32, usize);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    // Higher score first; on a tie the earlier document.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// Each judged query's `k` nearest documents by cosine similarity.
/// `progress(done, total)` counts embedded documents.
pub fn retrieve(embedder: &Embedder, ds: &Dataset, k: usize, opts: &EmbedOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Run> {
    let queries: Vec<&str> = ds.queries.iter().map(|(_, t)| t.as_str()).collect();
    let q: Vec<Vec<f32>> = embedder.embed(&queries, opts)?.into_iter().map(normalized).collect();
    let mut heaps: Vec<BinaryHeap<Reverse<Scored>>> = (0..q.len()).map(|_| BinaryHeap::with_capacity(k + 1)).collect();
    let texts = ds.corpus.texts();
    progress(0, texts.len());
    for (c, chunk) in texts.chunks(CHUNK).enumerate() {
        let docs: Vec<Vec<f32>> = embedder.embed(chunk, opts)?.into_iter().map(normalized).collect();
        for (qv, heap) in q.iter().zip(heaps.iter_mut()) {
            for (j, dv) in docs.iter().enumerate() {
                let s: f32 = qv.iter().zip(dv).map(|(a, b)| a * b).sum();
                heap.push(Reverse(Scored(s, c * CHUNK + j)));
                if heap.len() > k {
                    heap.pop();
                }
            }
        }
        progress((c * CHUNK + chunk.len()).min(texts.len()), texts.len());
    }
    let mut run = Run::new();
    for ((qid, _), heap) in ds.queries.iter().zip(heaps) {
        let mut best: Vec<Scored> = heap.into_iter().map(|Reverse(s)| s).collect();
        best.sort_by(|a, b| b.cmp(a));
        run.insert(qid.clone(), best.into_iter().map(|Scored(s, i)| (ds.corpus.id(i).to_string(), s as f64)).collect());
    }
    Ok(run)
}
