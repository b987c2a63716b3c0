// The demo's Web Worker: loads the reranker and scores off the main thread,
// so the page stays responsive while a model downloads or a batch runs.
import { Reranker } from '../npm/index.js';
import { Bm25 } from './bm25.js';

let reranker;
let loadedKey;
let index;
let indexedDocs;

async function load(model, device, dtype = 'f32') {
  const key = `${model}|${device}|${dtype}`;
  if (reranker && loadedKey === key) return;
  await reranker?.dispose();
  reranker = undefined;
  const t0 = performance.now();
  reranker = await Reranker.load(model, {
    device,
    dtype,
    onProgress: (p) => postMessage({ type: 'progress', ...p }),
  });
  loadedKey = key;
  postMessage({
    type: 'loaded',
    device: reranker.device,
    reason: reranker.deviceReason,
    adapter: reranker.adapter?.name ?? null,
    // More than 1 where the page is cross-origin isolated (the demo server
    // sends COOP/COEP) and the model runs on the CPU.
    threads: reranker.threads,
    ms: performance.now() - t0,
  });
}

async function search({ query, docs, k, maxLength }) {
  const key = docs.join('\u0000');
  if (indexedDocs !== key) {
    index = new Bm25(docs);
    indexedDocs = key;
  }
  const t0 = performance.now();
  const candidates = index.search(query, k);
  const t1 = performance.now();
  const ranked = await reranker.rerank(
    query,
    candidates.map((c) => docs[c.index]),
    { maxLength },
  );
  const t2 = performance.now();
  return {
    bm25Ms: t1 - t0,
    rerankMs: t2 - t1,
    results: ranked.map((r, rank) => ({
      rank,
      index: candidates[r.index].index,
      bm25Rank: r.index,
      bm25: candidates[r.index].score,
      score: r.score,
    })),
  };
}

onmessage = async ({ data }) => {
  try {
    if (data.type === 'load') {
      await load(data.model, data.device, data.dtype);
    } else if (data.type === 'search') {
      await load(data.model, data.device, data.dtype);
      postMessage({ type: 'results', id: data.id, device: reranker.device, threads: reranker.threads, ...(await search(data)) });
    }
  } catch (e) {
    postMessage({ type: 'error', message: String(e.message ?? e) });
  }
};
