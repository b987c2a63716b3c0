// crossrank-wasm vs transformers.js (onnxruntime-web) in headless Chromium:
// the same bge-reranker-base-shaped model, the same pairs, the same batches.
//
//   (cd benches/browser && npm install --ignore-scripts)   # once; never in CI
//   ./benches/peers/run.sh                                  # makes the model, pairs.json, the ONNX files
//   ./scripts/build-wasm.sh
//   node benches/browser/bench.mjs [--pairs 16] [--gpu-pairs 2] [--threads N] [--only crossrank] [--run benches/models/run-64-60-180]
//
// Each system scores the pairs once untimed, then once timed: the steady
// state of a page that reranks more than once (a first pass also grows
// the wasm memory and tiers code up: 20% slower for crossrank in one
// A/B, 2026-12-07).
//
// Both run single-threaded on the CPU (a page without cross-origin isolation
// gets no SharedArrayBuffer, so onnxruntime-web cannot use threads either),
// then both with N threads on a cross-origin isolated page (COOP/COEP; N
// defaults to this machine's cores, at most 8; --threads 1 skips it), then
// both on WebGPU (SwiftShader here: functional, not a speed number).
import { existsSync, mkdirSync, symlinkSync, rmSync, readFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, availableParallelism } from 'node:os';
import { chromium } from 'playwright-core';
import { serve, root } from '../../tests/browser/server.mjs';

const arg = (k, d) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1] : d;
};
const run = arg('--run', 'benches/models/run-64-60-180');
const nPairs = Number(arg('--pairs', 16));
const gpuPairs = Number(arg('--gpu-pairs', 2));
const threads = Number(arg('--threads', Math.min(8, availableParallelism())));
const model = 'benches/models/bge-reranker-base-random';
const onnx = `${model}-onnx`;
const pairs = JSON.parse(readFileSync(join(root, run, 'pairs.json'), 'utf8')).slice(0, nPairs);

// transformers.js layout: <id>/{config.json, tokenizer*.json, onnx/model.onnx, onnx/model_quantized.onnx}
const tjs = join(root, 'benches/models/tjs/bge-reranker-base-random');
rmSync(tjs, { recursive: true, force: true });
mkdirSync(join(tjs, 'onnx'), { recursive: true });
for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) symlinkSync(join(root, model, f), join(tjs, f));
symlinkSync(join(root, onnx, 'model.onnx'), join(tjs, 'onnx/model.onnx'));
if (existsSync(join(root, onnx, 'model-int8.onnx'))) symlinkSync(join(root, onnx, 'model-int8.onnx'), join(tjs, 'onnx/model_quantized.onnx'));

const server = await serve();
const isolatedServer = await serve({ isolated: true });
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'crossrank-bench-')), {
  executablePath: process.env.CROSSRANK_CHROMIUM ?? '/usr/bin/chromium',
  headless: false,
  args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync', '--js-flags=--max-old-space-size=8192'],
});
const page = await context.newPage();
page.on('console', (m) => m.type() === 'error' && console.error(`[page] ${m.text()}`));
await page.goto(`${server.url}/tests/browser/blank.html`);
const ipage = await context.newPage();
ipage.on('console', (m) => m.type() === 'error' && console.error(`[isolated page] ${m.text()}`));
await ipage.goto(`${isolatedServer.url}/tests/browser/blank.html`);

// FlagReranker's batching: longest first, 32 per batch (the same for both).
const batches = (lens) => {
  const order = lens.map((_, i) => i).sort((a, b) => lens[b] - lens[a]);
  const out = [];
  for (let i = 0; i < order.length; i += 32) out.push(order.slice(i, i + 32));
  return out;
};

async function crossrank(device, dtype, ps, threads = 1) {
  return (threads > 1 ? ipage : page).evaluate(async ({ device, dtype, ps, model, threads }) => {
    const { Reranker } = await import('/npm/index.js');
    const t0 = performance.now();
    const r = await Reranker.load(`/${model}/`, { device, dtype, cache: false, threads });
    if (r.threads !== threads) throw new Error(`asked for ${threads} threads, got ${r.threads}`);
    const load = performance.now() - t0;
    await r.computeScore(ps, { batchSize: 32, maxLength: 512 });
    const t1 = performance.now();
    const scores = await r.computeScore(ps, { batchSize: 32, maxLength: 512 });
    const secs = (performance.now() - t1) / 1000;
    await r.dispose();
    return { load, secs, scores };
  }, { device, dtype, ps, model, threads });
}

async function transformersJs(device, dtype, ps, threads = 1) {
  return (threads > 1 ? ipage : page).evaluate(async ({ device, dtype, ps, batchesSrc, threads }) => {
    const { AutoTokenizer, AutoModelForSequenceClassification, env } = await import('/benches/browser/node_modules/@huggingface/transformers/dist/transformers.min.js');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = '/benches/models/tjs/';
    env.useBrowserCache = false;
    env.backends.onnx.wasm.wasmPaths = '/benches/browser/node_modules/onnxruntime-web/dist/';
    env.backends.onnx.wasm.numThreads = threads;
    if (threads > 1 && !crossOriginIsolated) throw new Error('the page is not cross-origin isolated');
    const t0 = performance.now();
    const tok = await AutoTokenizer.from_pretrained('bge-reranker-base-random');
    const model = await AutoModelForSequenceClassification.from_pretrained('bge-reranker-base-random', { dtype, device });
    const load = performance.now() - t0;
    const batches = (0, eval)(`(${batchesSrc})`);
    const score = async (subset) => {
      const lens = subset.map(([q, p]) => tok(q, { text_pair: p, truncation: true, max_length: 512 }).input_ids.dims[1]);
      const out = new Array(subset.length);
      for (const idx of batches(lens)) {
        const inputs = tok(idx.map((i) => subset[i][0]), { text_pair: idx.map((i) => subset[i][1]), padding: true, truncation: true, max_length: 512 });
        const { logits } = await model(inputs);
        const data = logits.data;
        idx.forEach((i, k) => (out[i] = data[k]));
      }
      return out;
    };
    await score(ps);
    const t1 = performance.now();
    const scores = await score(ps);
    const secs = (performance.now() - t1) / 1000;
    await model.dispose?.();
    return { load, secs, scores };
  }, { device, dtype, ps, batchesSrc: batches.toString(), threads });
}

const rows = [];
// `--only crossrank` (or `transformers.js`): that system's rows only (A/B
// runs of one side; the ratios then need both in one run).
const only = arg('--only', '');
async function bench(name, f, ps) {
  if (only && !name.startsWith(only)) return;
  try {
    const r = await f();
    rows.push({ name, pps: ps.length / r.secs, load: r.load / 1000, n: ps.length, scores: r.scores });
    console.log(`| ${name} | ${ps.length} | ${(r.load / 1000).toFixed(1)} | ${(ps.length / r.secs).toFixed(3)} |`);
  } catch (e) {
    console.log(`| ${name} | ${ps.length} | failed: ${String(e.message ?? e).split('\n')[0]} | |`);
  }
}

console.log('| system (Chromium, wasm; single-threaded unless marked) | pairs | load s | pairs/s |\n|---|---|---|---|');
await bench('crossrank-wasm CPU f32', () => crossrank('cpu', 'f32', pairs), pairs);
await bench('crossrank-wasm CPU q8', () => crossrank('cpu', 'q8', pairs), pairs);
await bench('crossrank-wasm CPU int8', () => crossrank('cpu', 'int8', pairs), pairs);
await bench('transformers.js wasm fp32', () => transformersJs('wasm', 'fp32', pairs), pairs);
await bench('transformers.js wasm q8', () => transformersJs('wasm', 'q8', pairs), pairs);
const t = ` ${threads} threads`;
if (threads > 1) {
  await bench(`crossrank-wasm CPU f32${t}`, () => crossrank('cpu', 'f32', pairs, threads), pairs);
  await bench(`crossrank-wasm CPU q8${t}`, () => crossrank('cpu', 'q8', pairs, threads), pairs);
  await bench(`crossrank-wasm CPU int8${t}`, () => crossrank('cpu', 'int8', pairs, threads), pairs);
  await bench(`transformers.js wasm fp32${t}`, () => transformersJs('wasm', 'fp32', pairs, threads), pairs);
  await bench(`transformers.js wasm q8${t}`, () => transformersJs('wasm', 'q8', pairs, threads), pairs);
}
const gp = pairs.slice(0, gpuPairs);
if (gp.length) {
  await bench('crossrank WebGPU f32 (SwiftShader)', () => crossrank('webgpu', 'f32', gp), gp);
  await bench('transformers.js WebGPU fp32 (SwiftShader)', () => transformersJs('webgpu', 'fp32', gp), gp);
}

const find = (n) => rows.find((r) => r.name === n);
const [cf, tf] = [find('crossrank-wasm CPU f32'), find('transformers.js wasm fp32')];
if (cf && tf) {
  const err = Math.max(...cf.scores.map((s, i) => Math.abs(s - tf.scores[i])));
  console.log(`\ncrossrank-wasm f32 / transformers.js fp32: ${(cf.pps / tf.pps).toFixed(2)}x; max abs score difference ${err.toExponential(2)}`);
}
const [cq, tq] = [find('crossrank-wasm CPU q8'), find('transformers.js wasm q8')];
if (cq && tq) console.log(`crossrank-wasm q8 / transformers.js q8: ${(cq.pps / tq.pps).toFixed(2)}x`);
const ci = find('crossrank-wasm CPU int8');
if (ci && tq) console.log(`crossrank-wasm int8 / transformers.js q8: ${(ci.pps / tq.pps).toFixed(2)}x`);
for (const d of ['f32', 'q8', 'int8']) {
  const peer = { f32: 'fp32', q8: 'q8', int8: 'q8' }[d];
  const [c1, cn, tn] = [find(`crossrank-wasm CPU ${d}`), find(`crossrank-wasm CPU ${d}${t}`), find(`transformers.js wasm ${peer}${t}`)];
  if (c1 && cn) console.log(`crossrank-wasm ${d}${t} / 1 thread: ${(cn.pps / c1.pps).toFixed(2)}x; max abs score difference ${Math.max(...cn.scores.map((s, i) => Math.abs(s - c1.scores[i]))).toExponential(2)}`);
  if (cn && tn) console.log(`crossrank-wasm ${d}${t} / transformers.js ${peer}${t}: ${(cn.pps / tn.pps).toFixed(2)}x`);
}
await context.close();
await server.close();
await isolatedServer.close();
