// The packed npm tarball (not the source tree) in the edge runtimes, each
// installed from npm by tests/edge/package.json (scripts/test.sh runs
// `npm ci` here):
// - Deno: `npm:crossrank` and a plain URL import score the fixtures like
//   FlagEmbedding (Node's tolerance), the Cache API keeps the model files, a
//   bad model URL is a rejection with a message;
// - Cloudflare workerd (wrangler dev): examples/cloudflare-worker answers
//   TEI's POST /rerank with the same scores, and HTTP errors with messages;
// - a Service Worker in headless Chromium scores on the CPU (and WebGPU
//   where the worker has it).
// Sizes and cold/warm times are printed for docs/npm.md's tables.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { installPackage, root } from '../node/pack.mjs';
import { startWorker as start, post } from './worker.mjs';
import { serve } from '../browser/server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = (name) => join(here, 'node_modules', '.bin', name);
const fixtures = join(root, 'tests', 'fixtures');
const CHROMIUM = process.env.CROSSRANK_CHROMIUM ?? '/usr/bin/chromium';
const REQUIRED = process.env.CROSSRANK_REQUIRE_BROWSER === '1';
const run = promisify(execFile);
const expected = (model) => JSON.parse(readFileSync(join(fixtures, model, 'expected.json'), 'utf8'));
const tol = (model) => (model === 'gemma-tiny' ? 1e-3 : 1e-4);

assert.ok(existsSync(bin('deno')) && existsSync(bin('wrangler')), 'run `npm ci` in tests/edge first');
const { pkgDir, project } = installPackage();
// Deno reads the package.json nearest the script: the script lives in the
// project that installed the tarball, as a user's would.
cpSync(join(here, 'deno-score.mjs'), join(project, 'deno-score.mjs'));
let server; // the repository (fixtures) on loopback, counting requests
let pkgServer; // the installed package, for plain URL imports

before(async () => {
  server = await serve();
  pkgServer = await serve({ dir: pkgDir });
});
after(async () => {
  await server?.close();
  await pkgServer?.close();
});

/** wasm-bindgen-rayon's pool worker script(s) in the installed package. */
function pkgMtSnippets() {
  const dir = join(pkgDir, 'pkg-mt', 'snippets');
  return readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.js')).map((f) => join('pkg-mt', 'snippets', f));
}

test('sizes of what a visitor downloads', () => {
  const size = (f) => {
    const b = readFileSync(f);
    return { raw: b.length, gzip: gzipSync(b, { level: 9 }).length };
  };
  const rows = {
    'glue JS (index.js + core.js + fetch.js + disk.js + guard.js + threads.js + both wasm-bindgen glues)': ['index.js', 'core.js', 'fetch.js', 'disk.js', 'guard.js', 'threads.js', 'pkg/crossrank_wasm.js', 'pkg-cpu/crossrank_wasm.js'],
    'full .wasm (WebGPU + CPU)': ['pkg/crossrank_wasm_bg.wasm'],
    'slim .wasm (CPU only)': ['pkg-cpu/crossrank_wasm_bg.wasm'],
    'threaded .wasm (CPU, cross-origin isolated pages)': ['pkg-mt/crossrank_wasm_bg.wasm'],
    'threaded glue (worker + wasm-bindgen glue + pool worker)': ['threads-worker.js', 'pkg-mt/crossrank_wasm.js', ...pkgMtSnippets()],
  };
  for (const [what, files] of Object.entries(rows)) {
    const s = files.map((f) => size(join(pkgDir, f))).reduce((a, b) => ({ raw: a.raw + b.raw, gzip: a.gzip + b.gzip }));
    console.log(`# size: ${what}: ${s.raw} bytes raw, ${s.gzip} gzipped`);
    if (what.startsWith('slim') || what.startsWith('threaded .wasm')) assert.ok(s.gzip <= 2.5e6, `${what} ${s.gzip} bytes gzipped > 2.5 MB`);
    if (what.startsWith('full')) assert.ok(s.gzip <= 4e6, `full .wasm ${s.gzip} bytes gzipped > 4 MB`);
  }
});

// ---------------------------------------------------------------- Deno

async function deno(spec, model, { denoDir, dtype = 'f32', device = 'auto', url, threads = 'auto' } = {}) {
  const { stdout, stderr } = await run(
    bin('deno'),
    ['run', '-A', '--node-modules-dir=manual', join(project, 'deno-score.mjs'), spec, url ?? `${server.url}/tests/fixtures/${model}/`, join(fixtures, model, 'expected.json'), dtype, device, String(threads)],
    { cwd: project, env: { ...process.env, DENO_DIR: denoDir, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' }, timeout: 120_000 },
  );
  const line = stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`deno printed no JSON:\n${stdout}\n${stderr}`);
  }
}

const modelRequests = (model) => [...server.counts].filter(([p]) => p.startsWith(`/tests/fixtures/${model}/`)).reduce((n, [, c]) => n + c, 0);

for (const model of ['bert-tiny', 'xlmr-tiny', 'gemma-tiny']) {
  test(`Deno: npm:crossrank scores ${model} like FlagEmbedding; the Cache API keeps the files`, async () => {
    const denoDir = mkdtempSync(join(tmpdir(), 'crossrank-deno-'));
    const before = modelRequests(model);
    const cold = await deno('npm:crossrank', model, { denoDir });
    assert.ok(!cold.error, cold.error);
    // Deno has WebGPU (navigator.gpu, Window): `auto` loads the full build,
    // whose core takes a hardware adapter and leaves a software one (here
    // Mesa's llvmpipe) for the CPU.
    assert.equal(cold.build, 'webgpu');
    assert.equal(cold.device, 'cpu');
    assert.match(cold.reason, /software/);
    for (const [name, err] of Object.entries(cold.errors)) assert.ok(err <= tol(model), `${model}/${name}: ${err}`);
    const fetched = modelRequests(model) - before;
    assert.ok(fetched >= 3, `cold run fetched ${fetched} files`);
    const warm = await deno('npm:crossrank', model, { denoDir });
    assert.deepEqual(warm.errors, cold.errors);
    assert.ok(cold.caches, 'Deno has the Cache API');
    assert.equal(modelRequests(model) - before, fetched, 'the warm run must read the model from the Cache API');
    console.log(`# Deno ${model}: cold first score ${cold.firstScoreMs.toFixed(0)} ms (load ${cold.loadMs.toFixed(0)}), warm ${warm.firstScoreMs.toFixed(0)} ms (load ${warm.loadMs.toFixed(0)}); max err ${Math.max(...Object.values(cold.errors)).toExponential(2)}`);
  });
}

test("Deno: a plain URL import works too; device 'cpu' downloads the slim .wasm only", async () => {
  const out = await deno(`${pkgServer.url}/index.js`, 'bert-tiny', { denoDir: mkdtempSync(join(tmpdir(), 'crossrank-deno-')), device: 'cpu' });
  assert.ok(!out.error, out.error);
  assert.equal(out.build, 'cpu');
  for (const [name, err] of Object.entries(out.errors)) assert.ok(err <= 1e-4, `${name}: ${err}`);
  assert.ok(pkgServer.counts.get('/pkg-cpu/crossrank_wasm_bg.wasm') >= 1, `the slim .wasm was fetched over HTTP: ${JSON.stringify([...pkgServer.counts])}`);
  assert.ok(!pkgServer.counts.get('/pkg/crossrank_wasm_bg.wasm'), 'the full .wasm was not downloaded');
});

test("Deno: device 'webgpu' runs on Deno's own WebGPU (here Mesa's software adapter)", { timeout: 300_000 }, async () => {
  const out = await deno('npm:crossrank', 'bert-tiny', { denoDir: mkdtempSync(join(tmpdir(), 'crossrank-deno-')), device: 'webgpu' });
  assert.ok(!out.error, out.error);
  assert.equal(out.device, 'webgpu');
  assert.equal(out.build, 'webgpu');
  for (const [name, err] of Object.entries(out.errors)) assert.ok(err <= 1e-3, `${name}: ${err}`);
  console.log(`# Deno bert-tiny webgpu: first score ${out.firstScoreMs.toFixed(0)} ms, max err ${Math.max(...Object.values(out.errors)).toExponential(2)}`);
});

test('Deno: threads: 2 runs the threaded build in workers with the same scores, and the process exits after dispose', async () => {
  const denoDir = mkdtempSync(join(tmpdir(), 'crossrank-deno-'));
  const one = await deno('npm:crossrank', 'xlmr-tiny', { denoDir, device: 'cpu', dtype: 'q8' });
  // `deno()` fails if the process has not exited within its timeout.
  const two = await deno('npm:crossrank', 'xlmr-tiny', { denoDir, device: 'cpu', dtype: 'q8', threads: 2 });
  assert.ok(!two.error, two.error);
  assert.deepEqual([one.build, one.threads], ['cpu', 1], "'auto' is one thread in Deno");
  assert.deepEqual([two.build, two.threads, two.device], ['cpu-mt', 2, 'cpu']);
  assert.deepEqual(two.errors, one.errors, 'two threads score as one does');
  console.log(`# Deno xlmr-tiny q8, 2 threads: first score ${two.firstScoreMs.toFixed(0)} ms (1 thread: ${one.firstScoreMs.toFixed(0)} ms)`);
});

test('Deno: a bad model URL rejects with a message', async () => {
  const out = await deno('npm:crossrank', 'bert-tiny', { denoDir: mkdtempSync(join(tmpdir(), 'crossrank-deno-')), url: `${server.url}/no/such/model/` });
  assert.match(out.error ?? '', /config\.json.*HTTP 404/);
});

// ---------------------------------------------------------------- workerd

const startWorker = (vars, opts) => start(pkgDir, vars, opts);


/** Every query of the fixture through /rerank: raw and sigmoid scores vs FlagEmbedding's. */
async function rerankMatches(w, model) {
  const e = expected(model);
  const raw = e.cases.find((c) => c.name === 'default').scores;
  const norm = e.cases.find((c) => c.name === 'normalize').scores;
  let first;
  for (const q of [...new Set(e.pairs.map((p) => p[0]))]) {
    const idx = e.pairs.map((p, i) => [p, i]).filter(([p]) => p[0] === q).map(([, i]) => i);
    const texts = idx.map((i) => e.pairs[i][1]);
    const t = Date.now();
    for (const [rawScores, want] of [[true, raw], [false, norm]]) {
      const res = await post(`${w.url}/rerank`, { query: q, texts, raw_scores: rawScores, return_text: true });
      assert.equal(res.status, 200, await res.clone().text());
      const ranked = await res.json();
      assert.equal(ranked.length, texts.length);
      for (let k = 1; k < ranked.length; k++) assert.ok(ranked[k - 1].score >= ranked[k].score);
      for (const r of ranked) {
        assert.equal(r.text, texts[r.index]);
        assert.ok(Math.abs(r.score - want[idx[r.index]]) <= 1e-4, `${q} #${r.index}: ${r.score} vs ${want[idx[r.index]]}`);
      }
    }
    first ??= Date.now() - t;
  }
  return first;
}

for (const model of ['bert-tiny', 'xlmr-tiny']) {
  test(`workerd: the example Worker answers /rerank for ${model} with FlagEmbedding's scores`, { timeout: 240_000 }, async () => {
    const w = await startWorker({ MODEL_URL: `${server.url}/tests/fixtures/${model}/`, MODEL_DTYPE: 'f32' });
    try {
      const first = await rerankMatches(w, model);
      console.log(`# workerd ${model}: first /rerank (cold: download + load + score) ${first} ms`);
    } finally {
      await w.stop();
    }
  });
}

test('workerd: the model can come from an R2 binding (a sharded checkpoint)', { timeout: 240_000 }, async () => {
  const w = await startWorker({ MODEL_PREFIX: 'bert-tiny/', MODEL_DTYPE: 'f32' }, { r2: { prefix: 'bert-tiny/', from: join(fixtures, 'bert-tiny') } });
  try {
    await rerankMatches(w, 'bert-tiny');
    const health = await (await fetch(`${w.url}/health`)).json();
    assert.equal(health.build, 'cpu');
    assert.ok(health.wasm_memory_bytes > 0);
  } finally {
    await w.stop();
  }
});

test('workerd: errors are HTTP statuses with messages', { timeout: 240_000 }, async () => {
  const w = await startWorker({ MODEL_URL: `${server.url}/no/such/model/`, MODEL_DTYPE: 'f32' });
  try {
    let res = await post(`${w.url}/rerank`, { query: 'q', texts: ['a'] });
    assert.equal(res.status, 503);
    assert.match((await res.json()).error, /HTTP 404/);
    res = await post(`${w.url}/rerank`, '{not json');
    assert.equal(res.status, 422);
    assert.match((await res.json()).error, /invalid JSON/);
    res = await post(`${w.url}/rerank`, { query: 'q', texts: [1, 2] });
    assert.equal(res.status, 422);
    assert.match((await res.json()).error, /texts/);
    res = await post(`${w.url}/rerank`, { query: 'q', texts: [] });
    assert.equal(res.status, 422);
    res = await fetch(`${w.url}/rerank`);
    assert.equal(res.status, 405);
  } finally {
    await w.stop();
  }
  // A model that cannot fit the limit is refused before it is downloaded.
  const small = await startWorker({ MODEL_URL: `${server.url}/tests/fixtures/xlmr-tiny/`, MODEL_DTYPE: 'f32', MEMORY_LIMIT_MB: '30' });
  try {
    const before = server.counts.get('/tests/fixtures/xlmr-tiny/tokenizer.json') ?? 0;
    const res = await post(`${small.url}/rerank`, { query: 'q', texts: ['a'] });
    assert.equal(res.status, 507);
    assert.match((await res.json()).error, /needs about \d+ MB .* this Worker has 30 MB/);
    assert.equal(server.counts.get('/tests/fixtures/xlmr-tiny/tokenizer.json') ?? 0, before, 'nothing but a HEAD was sent');
  } finally {
    await small.stop();
  }
});

// ---------------------------------------------------------------- Service Worker

test('Service Worker in Chromium: scores on the CPU, and on WebGPU where the worker has it', { skip: !existsSync(CHROMIUM) && !REQUIRED && `needs ${CHROMIUM}`, timeout: 240_000 }, async () => {
  const { chromium } = await import('playwright-core');
  // One origin: the page and sw.js at /, the package at /crossrank/, fixtures at /fixtures/.
  const site = mkdtempSync(join(tmpdir(), 'crossrank-sw-'));
  cpSync(join(here, 'sw'), site, { recursive: true });
  symlinkSync(pkgDir, join(site, 'crossrank'));
  symlinkSync(fixtures, join(site, 'fixtures'));
  const web = await serve({ dir: site });
  const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'crossrank-chromium-')), {
    executablePath: CHROMIUM,
    headless: false,
    args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    await page.goto(`${web.url}/index.html`);
    await page.evaluate(() => window.swReady);
    const ask = (q) => page.evaluate(async (q) => (await fetch(`/sw-score?${q}`)).json(), q);
    for (const model of ['bert-tiny', 'gemma-tiny']) {
      const out = await ask(`model=${model}&device=cpu`);
      assert.ok(!out.error, out.error);
      assert.equal(out.device, 'cpu');
      assert.equal(out.build, 'cpu');
      for (const [name, err] of Object.entries(out.errors)) assert.ok(err <= tol(model), `${model}/${name}: ${err}`);
      console.log(`# Service Worker ${model} cpu: first score ${out.firstScoreMs.toFixed(0)} ms (load ${out.loadMs.toFixed(0)}), max err ${Math.max(...Object.values(out.errors)).toExponential(2)}`);
    }
    const gpu = await ask('model=bert-tiny&device=webgpu');
    if (gpu.webgpuReachable) {
      assert.ok(!gpu.error, gpu.error);
      assert.equal(gpu.device, 'webgpu');
      assert.equal(gpu.build, 'webgpu');
      for (const [name, err] of Object.entries(gpu.errors)) assert.ok(err <= 1e-3, `webgpu/${name}: ${err}`);
      console.log(`# Service Worker bert-tiny webgpu: first score ${gpu.firstScoreMs.toFixed(0)} ms, max err ${Math.max(...Object.values(gpu.errors)).toExponential(2)}`);
    } else {
      assert.match(gpu.error, /WebGPU|navigator\.gpu/);
      console.log('# Service Worker: this Chromium exposes no navigator.gpu to service workers');
    }
    assert.ok(web.counts.get('/crossrank/pkg-cpu/crossrank_wasm_bg.wasm') >= 1);
  } finally {
    await context.close();
    await web.close();
  }
});
