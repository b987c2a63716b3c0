// Memory a checkpoint needs in the slim CPU .wasm, per dtype: what an edge
// runtime's limit (Cloudflare Workers: 128 MB) is checked against by
// examples/cloudflare-worker. Run after scripts/build-wasm.sh:
//   [BATCH=32] [PAIRS=32] [MAX_LENGTH=512] node benches/edge/memory.mjs benches/models/minilm-l6-reranker[-q8|-q4|-f16] ...
//   node benches/edge/memory.mjs DIR:q8 DIR:q4 ...   (an f32/f16 checkpoint loaded at a dtype)
// For each checkpoint directory (and load dtype, default f32): weights file
// MB, wasm memory after load and after scoring 32 pairs of ~512 tokens
// (batch 32, the default), the ratio wasm / file, load + first-score times,
// and Node's peak RSS. A checkpoint loaded at a dtype runs twice: given as
// bytes (`files`, as the Worker's R2 path does: quantized at load) and as a
// directory path (`path`: each weights file quantized as it streams in).
// The wasm memory is the instance's high-water mark, so each run is a fresh
// Node process.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
if (process.argv[2] === '--one') {
  const dir = process.argv[3];
  const { Reranker } = await import(pathToFileURL(join(root, 'npm', 'index.js')).href);
  const [dtype = 'f32', source = 'files'] = process.argv.slice(4);
  const files = {};
  let weights = 0;
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.safetensors')) weights += statSync(join(dir, f)).size;
    if (source === 'files' || f === 'config.json') files[f] = new Uint8Array(readFileSync(join(dir, f)));
  }
  const cfg = JSON.parse(new TextDecoder().decode(files['config.json']));
  const t0 = performance.now();
  const r = await Reranker.load(source === 'files' ? files : dir, { device: 'cpu', dtype });
  const load = performance.now() - t0;
  const afterLoad = r.memoryBytes();
  const words = 'the of and to in a is that for it as was with be by on not he i this are or his from at which but have an they you were her she there one all we their'.split(' ');
  const long = Array.from({ length: Number(process.env.PAIRS ?? 32) }, (_, i) => ['what is item ' + i, Array.from({ length: 600 }, (_, k) => words[(k * 7 + i) % words.length]).join(' ')]);
  const t1 = performance.now();
  const maxLength = Math.min(Number(process.env.MAX_LENGTH ?? 512), cfg.max_position_embeddings ?? 512);
  await r.computeScore(long, { maxLength, batchSize: Number(process.env.BATCH ?? 32) });
  const score = performance.now() - t1;
  // Peak RSS in kB (Node's resourceUsage).
  console.log(JSON.stringify({ weights, afterLoad, afterScore: r.memoryBytes(), loadMs: load, scoreMs: score, rssPeak: process.resourceUsage().maxRSS * 1024 }));
} else {
  const n = `${process.env.PAIRS ?? 32}x${process.env.MAX_LENGTH ?? 512}`;
  console.log(`| checkpoint | load dtype | source | weights file MB | wasm MB after load | wasm MB after ${n} tokens, batch ${process.env.BATCH ?? 32} | wasm / file | load ms | ${n} score ms | Node peak RSS MB |`);
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const arg of process.argv.slice(2)) {
    const [dir, dtype = 'f32'] = arg.split(':');
    for (const source of dtype === 'f32' ? ['files'] : ['files', 'path']) {
      const out = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--one', dir, dtype, source]).toString().trim().split('\n').pop());
      const mb = (b) => (b / 1e6).toFixed(1);
      console.log(`| ${dir} | ${dtype} | ${source} | ${mb(out.weights)} | ${mb(out.afterLoad)} | ${mb(out.afterScore)} | ${(out.afterScore / out.weights).toFixed(2)} | ${out.loadMs.toFixed(0)} | ${out.scoreMs.toFixed(0)} | ${mb(out.rssPeak)} |`);
    }
  }
}
