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

/// `v` scaled to unit length (a zero vector stays zero).
pub fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// The `k` rows of `vectors` with the largest dot product with `query`
/// (cosine similarity for unit-length vectors), best first, ties to the
/// earlier row: the ranking [`retrieve`] gives each query.
pub fn nearest(query: &[f32], vectors: &[Vec<f32>], k: usize) -> Vec<(usize, f32)> {
    let mut heap = BinaryHeap::with_capacity(k + 1);
    for (i, v) in vectors.iter().enumerate() {
        push(&mut heap, Scored(dot(query, v), i), k);
    }
    best_first(heap).into_iter().map(|Scored(s, i)| (i, s)).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Keep the `k` best in `heap` (a min-heap of the best so far).
fn push(heap: &mut BinaryHeap<Reverse<Scored>>, s: Scored, k: usize) {
    heap.push(Reverse(s));
    if heap.len() > k {
        heap.pop();
    }
}

fn best_first(heap: BinaryHeap<Reverse<Scored>>) -> Vec<Scored> {
    let mut best: Vec<Scored> = heap.into_iter().map(|Reverse(s)| s).collect();
    best.sort_by(|a, b| b.cmp(a));
    best
}

/// Each judged query's `k` nearest documents by cosine similarity.
/// `progress(done, total)` counts embedded documents.
pub fn retrieve(embedder: &Embedder, ds: &Dataset, k: usize, opts: &EmbedOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Run> {
    let queries: Vec<&str> = ds.queries.iter().map(|(_, t)| t.as_str()).collect();
    let q: Vec<Vec<f32>> = embedder.embed(&queries, &embedder.with_prompt_named(opts, "query"))?.into_iter().map(normalized).collect();
    let opts = &embedder.with_prompt_named(opts, "document");
    let mut heaps: Vec<BinaryHeap<Reverse<Scored>>> = (0..q.len()).map(|_| BinaryHeap::with_capacity(k + 1)).collect();
    let texts = ds.corpus.texts();
    progress(0, texts.len());
    for (c, chunk) in texts.chunks(CHUNK).enumerate() {
        let docs: Vec<Vec<f32>> = embedder.embed(chunk, opts)?.into_iter().map(normalized).collect();
        for (qv, heap) in q.iter().zip(heaps.iter_mut()) {
            for (j, dv) in docs.iter().enumerate() {
                push(heap, Scored(dot(qv, dv), c * CHUNK + j), k);
            }
        }
        progress((c * CHUNK + chunk.len()).min(texts.len()), texts.len());
    }
    let mut run = Run::new();
    for ((qid, _), heap) in ds.queries.iter().zip(heaps) {
        run.insert(qid.clone(), best_first(heap).into_iter().map(|Scored(s, i)| (ds.corpus.id(i).to_string(), s as f64)).collect());
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_is_the_k_best_by_dot_product_ties_to_the_earlier() {
        let v = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8], vec![1.0, 0.0]];
        assert_eq!(nearest(&[1.0, 0.0], &v, 2), [(0, 1.0), (3, 1.0)]);
        assert_eq!(nearest(&[0.0, 1.0], &v, 10).iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2, 0, 3]);
        assert!(nearest(&[1.0, 0.0], &v, 0).is_empty());
        assert_eq!(normalized(vec![3.0, 4.0]), [0.6, 0.8]);
        assert_eq!(normalized(vec![0.0, 0.0]), [0.0, 0.0]);
    }
}
