// Memory a checkpoint needs in the slim CPU .wasm, per dtype: what an edge
// runtime's limit (Cloudflare Workers: 128 MB) is checked against by
// examples/cloudflare-worker. Run after scripts/build-wasm.sh:
//   [BATCH=32] node benches/edge/memory.mjs benches/models/minilm-l6-reranker[-q8|-q4|-f16] ...
// For each checkpoint directory: weights file MB, wasm memory after load and
// after scoring 32 pairs of ~512 tokens (batch 32, the default), the ratio
// wasm / file, and load + first-score times. Model files are given as bytes
// (as the Worker's R2 path does); the wasm memory is the instance's high-water
// mark, so each checkpoint runs in a fresh Node process.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
if (process.argv[2] === '--one') {
  const dir = process.argv[3];
  const { Reranker } = await import(pathToFileURL(join(root, 'npm', 'index.js')).href);
  const files = {};
  let weights = 0;
  for (const f of readdirSync(dir)) {
    files[f] = new Uint8Array(readFileSync(join(dir, f)));
    if (f.endsWith('.safetensors')) weights += files[f].length;
  }
  const cfg = JSON.parse(new TextDecoder().decode(files['config.json']));
  const t0 = performance.now();
  const r = await Reranker.load(files, { device: 'cpu', dtype: process.argv[4] ?? 'f32' });
  const load = performance.now() - t0;
  const afterLoad = r.memoryBytes();
  const words = 'the of and to in a is that for it as was with be by on not he i this are or his from at which but have an they you were her she there one all we their'.split(' ');
  const long = Array.from({ length: 32 }, (_, i) => ['what is item ' + i, Array.from({ length: 600 }, (_, k) => words[(k * 7 + i) % words.length]).join(' ')]);
  const t1 = performance.now();
  await r.computeScore(long, { maxLength: Math.min(512, cfg.max_position_embeddings ?? 512), batchSize: Number(process.env.BATCH ?? 32) });
  const score = performance.now() - t1;
  console.log(JSON.stringify({ weights, afterLoad, afterScore: r.memoryBytes(), loadMs: load, scoreMs: score, rssAfter: process.memoryUsage().rss }));
} else {
  console.log(`| checkpoint | weights file MB | wasm MB after load | wasm MB after 32x512 tokens, batch ${process.env.BATCH ?? 32} | wasm / file | load ms | 32x512 score ms | Node RSS MB |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const dir of process.argv.slice(2)) {
    const out = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--one', dir]).toString().trim().split('\n').pop());
    const mb = (b) => (b / 1e6).toFixed(1);
    console.log(`| ${dir} | ${mb(out.weights)} | ${mb(out.afterLoad)} | ${mb(out.afterScore)} | ${(out.afterScore / out.weights).toFixed(2)} | ${out.loadMs.toFixed(0)} | ${out.scoreMs.toFixed(0)} | ${mb(out.rssAfter)} |`);
  }
}
