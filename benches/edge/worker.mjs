// examples/cloudflare-worker under workerd (wrangler dev) with a real-size
// model: cold and warm time to the first /rerank, the Worker's wasm memory,
// and whether the memory check refuses what cannot fit 128 MB.
//   (cd tests/edge && npm ci) && node benches/edge/worker.mjs [CHECKPOINT_DIR DTYPE]...
// Default: the all-MiniLM-L6-v2 reranker of benches/models (server-load.sh
// makes it; `crossrank quantize` its q8/q4 copies) as q8, q4 and f32. Uses
// the source tree's npm/ (built by scripts/build-wasm.sh).
import { join, resolve } from 'node:path';
import { serve, root } from '../../tests/browser/server.mjs';
import { startWorker, post } from '../../tests/edge/worker.mjs';

const args = process.argv.slice(2);
const runs = [];
for (let i = 0; i + 1 < args.length; i += 2) runs.push([args[i], args[i + 1]]);
if (!runs.length) {
  for (const d of ['q8', 'q4']) runs.push([`benches/models/minilm-l6-reranker-${d}`, d]);
  runs.push(['benches/models/minilm-l6-reranker', 'f32']);
}
const server = await serve();
const docs = Array.from({ length: 20 }, (_, i) => `document ${i}: ` + 'the reranker reads every word of this passage and scores it against the query '.repeat(6));
console.log('| checkpoint | dtype | status | cold first /rerank ms (download + load + 20 docs) | warm /rerank ms | wasm memory MB |');
console.log('|---|---|---|---|---|---|');
for (const [dir, dtype] of runs) {
  const rel = resolve(dir).slice(root.length);
  const w = await startWorker(join(root, 'npm'), { MODEL_URL: `${server.url}${rel}/`, MODEL_DTYPE: dtype });
  try {
    let t = Date.now();
    const res = await post(`${w.url}/rerank`, { query: 'how does the reranker score a passage', texts: docs });
    const cold = Date.now() - t;
    const body = await res.json();
    if (res.status !== 200) {
      console.log(`| ${dir} | ${dtype} | ${res.status}: ${body.error} | | | |`);
      continue;
    }
    t = Date.now();
    await post(`${w.url}/rerank`, { query: 'how does the reranker score a passage', texts: docs });
    const warm = Date.now() - t;
    const health = await (await fetch(`${w.url}/health`)).json();
    console.log(`| ${dir} | ${dtype} | 200 | ${cold} | ${warm} | ${(health.wasm_memory_bytes / 1e6).toFixed(1)} |`);
  } finally {
    await w.stop();
  }
}
await server.close();
