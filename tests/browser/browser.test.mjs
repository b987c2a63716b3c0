// The npm package in real Chromium: Debian's /usr/bin/chromium, headless,
// driven by playwright-core, WebGPU on SwiftShader. Scores the committed
// fixtures on webgpu and on cpu against FlagEmbedding 1.4.2, checks the
// Cache API and that errors reject, then drives the RAG demo (web/) and
// saves a screenshot. Needs npm/pkg (wasm-pack build; scripts/test.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { serve, root } from './server.mjs';

const CHROMIUM = process.env.CROSSRANK_CHROMIUM ?? '/usr/bin/chromium';
const REQUIRED = process.env.CROSSRANK_REQUIRE_BROWSER === '1';
const ARTIFACTS = process.env.CROSSRANK_ARTIFACTS ?? join(root, 'target', 'browser');
const available = existsSync(CHROMIUM) && existsSync(join(root, 'npm', 'pkg', 'crossrank_wasm_bg.wasm'));
if (!available && REQUIRED) throw new Error(`CROSSRANK_REQUIRE_BROWSER=1 but ${CHROMIUM} or npm/pkg is missing`);
const skip = available ? false : `needs ${CHROMIUM} and npm/pkg`;

let server, context, page;
const logs = [];

before(async () => {
  if (skip) return;
  server = await serve();
  context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'crossrank-chromium-')), {
    executablePath: CHROMIUM,
    headless: false, // the flags below ask for the new headless mode themselves
    args: [
      '--headless=new',
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await context.newPage();
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  await page.goto(`${server.url}/tests/browser/blank.html`);
});

after(async () => {
  await context?.close();
  await server?.close();
});

/** Run `fn(args)` in the page (or `on`, another tab) with the package imported as `crossrank`. */
function inPage(fn, args, on = page) {
  return on.evaluate(
    async ({ src, args }) => {
      const crossrank = await import('/npm/index.js');
      return (0, eval)(`(${src})`)(crossrank, args);
    },
    { src: fn.toString(), args },
  );
}

function expected(model) {
  return JSON.parse(readFileSync(join(root, 'tests', 'fixtures', model, 'expected.json'), 'utf8'));
}

const scoreCases = async ({ Reranker }, { model, device, cases, pairs, opts }) => {
  const t0 = performance.now();
  const r = await Reranker.load(`/tests/fixtures/${model}/`, { device, ...opts });
  const loadMs = performance.now() - t0;
  const out = [];
  for (const c of cases) {
    const t = performance.now();
    const got = await r.computeScore(pairs, {
      maxLength: c.options.max_length,
      queryMaxLength: c.options.query_max_length ?? undefined,
      batchSize: c.options.batch_size,
      normalize: c.options.normalize,
      prompt: c.options.prompt ?? undefined,
    });
    out.push({ name: c.name, got, ms: performance.now() - t });
  }
  const ranked = await r.rerank(pairs[0][0], pairs.map((p) => p[1]), { topK: 2 });
  const res = { device: r.device, reason: r.deviceReason, adapter: r.adapter, loadMs, out, ranked };
  Object.assign(res, { threads: r.threads, build: r.build, memory: r.memoryBytes() });
  await r.dispose();
  res.disposed = await r.computeScore(pairs).then(() => 'resolved', (e) => e.message);
  return res;
};

for (const model of ['xlmr-tiny', 'bert-tiny', 'gemma-tiny']) {
  for (const device of ['webgpu', 'cpu']) {
    test(`${model} on ${device} matches FlagEmbedding`, { skip, timeout: 600_000 }, async () => {
      const exp = expected(model);
      const cases = exp.cases.slice(0, device === 'webgpu' ? 2 : 3);
      const res = await inPage(scoreCases, { model, device, cases, pairs: exp.pairs });
      assert.equal(res.device, device, res.reason);
      if (device === 'webgpu') assert.ok(res.adapter?.name, 'adapter info on webgpu');
      for (const [i, c] of cases.entries()) {
        const want = Array.isArray(c.scores[0]) ? c.scores[0] : c.scores;
        const got = res.out[i].got;
        assert.equal(got.length, want.length);
        const err = Math.max(...got.map((g, j) => Math.abs(g - want[j])));
        console.log(
          `${model}/${device}/${c.name}: max abs err ${err.toExponential(2)}, ` +
            `${res.out[i].ms.toFixed(0)} ms for ${want.length} pairs (load ${res.loadMs.toFixed(0)} ms` +
            `${res.adapter ? `, ${res.adapter.name}` : ''})`,
        );
        assert.ok(err <= 1e-3, `${model}/${device}/${c.name}: ${err} > 1e-3`);
      }
    });
  }
}

for (const model of ['modernbert-cls-tiny', 'modernbert-mean-tiny']) {
  for (const device of ['webgpu', 'cpu']) {
    test(`${model} on ${device} matches FlagEmbedding (sliding window)`, { skip, timeout: 600_000 }, async () => {
      const exp = expected(model);
      const cases = exp.cases.slice(0, 2);
      const res = await inPage(scoreCases, { model, device, cases, pairs: exp.pairs });
      assert.equal(res.device, device, res.reason);
      for (const [i, c] of cases.entries()) {
        const err = Math.max(...res.out[i].got.map((g, j) => Math.abs(g - c.scores[j])));
        console.log(`${model}/${device}/${c.name}: max abs err ${err.toExponential(2)}`);
        assert.ok(err <= 1e-4, `${model}/${device}/${c.name}: ${err} > 1e-4`);
      }
    });
  }
}

const qwen3Cases = async ({ Reranker, Embedder }, { model, device, cases, pairs, embed }) => {
  const r = await Reranker.load(`/tests/fixtures/${model}/`, { device });
  const out = [];
  for (const c of cases) {
    const opts = { maxLength: c.options.max_length ?? undefined, prompt: c.options.prompt ?? undefined };
    out.push({ p: await r.computeScore(pairs, { ...opts, normalize: true }), raw: await r.computeScore(pairs, opts) });
  }
  const res = { device: r.device, reason: r.deviceReason, out };
  await r.dispose();
  if (embed) {
    const e = await Embedder.load('/tests/fixtures/qwen3-embedding-tiny/', { device });
    res.queries = await e.embed(embed.queries, { promptName: 'query' });
    res.documents = await e.embed(embed.documents);
    await e.dispose();
  }
  return res;
};

for (const device of ['webgpu', 'cpu']) {
  test(`Qwen3-Reranker (both forms) and Qwen3-Embedding on ${device} match their cards`, { skip, timeout: 600_000 }, async () => {
    const emb = expected('qwen3-embedding-tiny');
    for (const model of ['qwen3-reranker-tiny', 'qwen3-seq-cls-tiny']) {
      const exp = expected(model);
      const cases = exp.cases.slice(0, device === 'webgpu' ? 2 : 4);
      const embed = model === 'qwen3-reranker-tiny' ? { queries: emb.queries, documents: emb.documents } : undefined;
      const res = await inPage(qwen3Cases, { model, device, cases, pairs: exp.pairs, embed });
      assert.equal(res.device, device, res.reason);
      for (const [i, c] of cases.entries()) {
        const ep = Math.max(...res.out[i].p.map((g, j) => Math.abs(g - c.scores[j])));
        const er = Math.max(...res.out[i].raw.map((g, j) => Math.abs(g - c.raw[j])));
        console.log(`${model}/${device}/${c.name}: P(yes) max abs err ${ep.toExponential(2)}, raw ${er.toExponential(2)}`);
        assert.ok(ep <= 1e-4 && er <= 2e-3, `${model}/${device}/${c.name}: ${ep}, ${er}`);
      }
      if (embed) {
        const c = emb.cases[0];
        const err = Math.max(
          ...res.queries.flatMap((v, i) => v.map((x, k) => Math.abs(x - c.queries[i][k]))),
          ...res.documents.flatMap((v, i) => v.map((x, k) => Math.abs(x - c.documents[i][k]))),
        );
        console.log(`qwen3-embedding/${device}/${c.name}: max abs err ${err.toExponential(2)}`);
        assert.ok(err <= 1e-4, `qwen3-embedding/${device}: ${err}`);
      }
    }
  });
}

/** Spearman rank correlation. */
function spearman(a, b) {
  const rank = (v) => {
    const idx = v.map((_, i) => i).sort((i, j) => v[i] - v[j]);
    const r = new Array(v.length);
    idx.forEach((i, k) => (r[i] = k));
    return r;
  };
  const [ra, rb] = [rank(a), rank(b)];
  const n = a.length;
  const d2 = ra.reduce((acc, x, i) => acc + (x - rb[i]) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}

for (const [dtype, minRho, maxErr] of [
  // f16: WebGPU without shader-f16 (SwiftShader) holds the weights as
  // packed f16 words, the CPU as native f16 tensors; both widen exactly, and
  // xlmr-tiny is an f16 checkpoint, so the scores are FlagEmbedding's.
  ['f16', 0.99, 1e-4],
  ['q8', 0.99],
  ['q4', 0.95],
]) {
  test(`xlmr-tiny ${dtype}: webgpu agrees with cpu, the ranking stays FlagEmbedding's`, { skip, timeout: 600_000 }, async () => {
    const exp = expected('xlmr-tiny');
    const run = (device, cases) =>
      inPage(
        async ({ Reranker }, { device, dtype, cases, pairs }) => {
          const r = await Reranker.load('/tests/fixtures/xlmr-tiny/', { device, dtype });
          const out = [];
          for (const c of cases) {
            out.push(
              await r.computeScore(pairs, {
                maxLength: c.options.max_length,
                queryMaxLength: c.options.query_max_length ?? undefined,
                batchSize: c.options.batch_size,
                normalize: c.options.normalize,
              }),
            );
          }
          await r.dispose();
          return { device: r.device, out };
        },
        { device, dtype, cases, pairs: exp.pairs },
      );
    const cpu = await run('cpu', exp.cases);
    const gpu = await run('webgpu', exp.cases.slice(0, 1));
    assert.equal(gpu.device, 'webgpu');
    const diff = Math.max(...gpu.out[0].map((g, i) => Math.abs(g - cpu.out[0][i])));
    const rho = spearman(cpu.out.flat(), exp.cases.flatMap((c) => c.scores));
    console.log(`xlmr-tiny ${dtype}: webgpu vs cpu max abs diff ${diff.toExponential(2)}, Spearman vs FlagEmbedding f32 ${rho.toFixed(4)}`);
    assert.ok(diff <= 1e-3, `webgpu vs cpu ${diff}`);
    assert.ok(rho >= minRho, `Spearman ${rho} < ${minRho}`);
    if (maxErr !== undefined) {
      const want = exp.cases.flatMap((c) => c.scores);
      const err = Math.max(...cpu.out.flat().map((g, i) => Math.abs(g - want[i])), ...gpu.out[0].map((g, i) => Math.abs(g - exp.cases[0].scores[i])));
      console.log(`xlmr-tiny ${dtype}: max abs err vs FlagEmbedding ${err.toExponential(2)} (cpu all cases, webgpu first)`);
      assert.ok(err <= maxErr, `max abs err ${err} > ${maxErr}`);
    }
  });
}

test('threads: a cross-origin isolated page runs the CPU on the threaded build, with the same scores', { skip, timeout: 600_000 }, async () => {
  // Without isolation (the page above): 'auto' is one thread, more is an error that names the headers.
  const plain = await inPage(async ({ Reranker, threadsAvailable }) => {
    const r = await Reranker.load('/tests/fixtures/bert-tiny/', { device: 'cpu' });
    const out = { available: threadsAvailable(), threads: r.threads, build: r.build };
    await r.dispose();
    out.error = await Reranker.load('/tests/fixtures/bert-tiny/', { device: 'cpu', threads: 2 }).then(() => 'resolved', (e) => e.message);
    return out;
  });
  assert.deepEqual({ ...plain, error: undefined }, { available: false, threads: 1, build: 'cpu', error: undefined });
  assert.match(plain.error, /threads: 2 is not available: .*Cross-Origin-Opener-Policy: same-origin.*Cross-Origin-Embedder-Policy: require-corp/);

  const isolated = await serve({ isolated: true });
  const tab = await context.newPage();
  tab.on('console', (m) => logs.push(`[isolated ${m.type()}] ${m.text()}`));
  tab.on('pageerror', (e) => logs.push(`[isolated pageerror] ${e.message}`));
  try {
    await tab.goto(`${isolated.url}/tests/browser/blank.html`);
    const exp = expected('xlmr-tiny');
    const score = (opts) => inPage(scoreCases, { model: 'xlmr-tiny', device: 'cpu', cases: exp.cases, pairs: exp.pairs, opts }, tab);
    const res = {
      f32: { two: await score({ threads: 2 }), one: await score({ threads: 1 }) },
      q8: { two: await score({ threads: 2, dtype: 'q8' }), one: await score({ threads: 1, dtype: 'q8' }) },
      auto: await score({}),
      ...(await inPage(
        async ({ Reranker, threadsAvailable }) => ({
          isolated: globalThis.crossOriginIsolated,
          available: threadsAvailable(),
          cores: navigator.hardwareConcurrency,
          badPairs: await Reranker.load('/tests/fixtures/bert-tiny/', { device: 'cpu', threads: 2 }).then(async (r) => {
            const m = await r.computeScore([['only one']]).then(() => 'resolved', (e) => e.message);
            const after = (await r.computeScore([['q', 'p']])).length;
            await r.dispose();
            return { m, after };
          }),
        }),
        undefined,
        tab,
      )),
    };
    assert.equal(res.isolated, true);
    assert.equal(res.available, true);
    for (const dtype of ['f32', 'q8']) {
      const { two, one } = res[dtype];
      assert.deepEqual([two.build, two.threads, two.device], ['cpu-mt', 2, 'cpu']);
      assert.deepEqual([one.build, one.threads], ['cpu', 1]);
      assert.ok(two.memory > 0, 'memoryBytes of the threaded instance');
      assert.match(two.disposed, /disposed/);
      assert.deepEqual(two.ranked, one.ranked);
      // The same kernels cut into the same blocks per thread: equal scores.
      const diff = Math.max(...two.out.flatMap((o, i) => o.got.map((g, j) => Math.abs(g - one.out[i].got[j]))));
      const want = exp.cases.flatMap((c) => c.scores);
      const err = Math.max(...two.out.flatMap((o) => o.got).map((g, i) => Math.abs(g - want[i])));
      const ms = (x) => x.out.reduce((a, o) => a + o.ms, 0).toFixed(0);
      console.log(`threads xlmr-tiny ${dtype}: 2 threads vs 1 max abs diff ${diff.toExponential(2)}, vs FlagEmbedding ${err.toExponential(2)}; ${ms(two)} ms vs ${ms(one)} ms (${res.cores} cores, tiny model: not a speed number)`);
      assert.ok(diff <= 1e-6, `2 threads vs 1: ${diff}`);
      if (dtype === 'f32') assert.ok(err <= 1e-3, `vs FlagEmbedding: ${err}`);
    }
    const autoThreads = Math.min(res.cores, 8);
    assert.equal(res.auto.threads, autoThreads);
    assert.equal(res.auto.build, autoThreads > 1 ? 'cpu-mt' : 'cpu');
    assert.match(res.badPairs.m, /pairs/);
    assert.equal(res.badPairs.after, 1, 'an error in the worker leaves it working');
    assert.ok(!logs.some((l) => l.startsWith('[isolated warning]')), `no console warnings: ${logs.filter((l) => l.startsWith('[isolated warning]'))}`);

    // The demo on an isolated origin: crossrank in the demo's worker, the
    // threaded build in a nested worker, its pool nested once more.
    const demo = await context.newPage();
    try {
      await demo.goto(`${isolated.url}/web/?model=/tests/fixtures/xlmr-tiny/&device=cpu`);
      await demo.fill('#query', 'what is a panda?');
      await demo.click('#search');
      await demo.waitForSelector('#results li', { timeout: 300_000 });
      const status = await demo.textContent('#status');
      console.log(`isolated demo: ${status}`);
      assert.match(status, autoThreads > 1 ? new RegExp(`device cpu \\(${autoThreads} threads\\)`) : /device cpu ·/);
    } finally {
      await demo.close();
    }
  } finally {
    await tab.close();
    await isolated.close();
  }
});

/** The native CLI, built by `cargo test` (scripts/test.sh runs that first). */
function cli() {
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache', 'crossrank', 'target');
  const bin = join(target, 'debug', 'crossrank');
  return existsSync(bin) ? bin : undefined;
}

test('a `crossrank quantize` q4 checkpoint (calibrated) downloads small and scores in the browser as natively', { skip: skip || (!cli() && !REQUIRED && 'needs the crossrank binary'), timeout: 600_000 }, async () => {
  const bin = cli();
  assert.ok(bin, 'the crossrank binary (cargo build) is needed');
  const out = join(ARTIFACTS, 'xlmr-tiny-q4');
  rmSync(out, { recursive: true, force: true });
  execFileSync(bin, ['quantize', '--model', join(root, 'tests', 'fixtures', 'xlmr-tiny'), '--dtype', 'q4', '--out', out]);
  const size = (d) => statSync(join(d, 'model.safetensors')).size;
  const original = size(join(root, 'tests', 'fixtures', 'xlmr-tiny'));
  console.log(`xlmr-tiny: model.safetensors ${original} bytes (f16) -> ${size(out)} bytes (q4)`);
  assert.ok(size(out) < original / 2);
  const rel = `/${out.slice(root.length + 1)}/`;
  const pairs = expected('xlmr-tiny').pairs;
  const res = await inPage(
    async ({ Reranker }, { rel, pairs }) => {
      const fromFile = await Reranker.load(rel, { device: 'webgpu' });
      const a = await fromFile.computeScore(pairs);
      await fromFile.dispose();
      return { a };
    },
    { rel, pairs },
  );
  // The calibrated file (GPTQ 4-bit linears) scores otherwise than
  // quantizing at load; the browser must read it as the native CLI does.
  // WebGPU multiplies f32 activations, the CPU's integer kernels 16-bit
  // ones: xlmr-tiny's q4 CPU vs GPU measured 1.7e-4 (tests/quant.rs).
  const input = pairs.map((p) => JSON.stringify(Array.isArray(p) ? { query: p[0], passage: p[1] } : p)).join('\n') + '\n';
  const native = JSON.parse(execFileSync(bin, ['score', '--model', out, '--device', 'cpu', '--input', '-'], { input }).toString());
  assert.equal(native.length, res.a.length);
  const diff = Math.max(...res.a.map((x, i) => Math.abs(x - native[i])));
  assert.ok(diff <= 2e-3, `browser vs native scores of the calibrated q4 file: ${diff}`);
});

test('auto checks the adapter and says why', { skip, timeout: 300_000 }, async () => {
  const res = await inPage(async ({ Reranker }) => {
    const info = await (await navigator.gpu.requestAdapter())?.info;
    const r = await Reranker.load('/tests/fixtures/bert-tiny/', { device: 'auto' });
    const out = { device: r.device, reason: r.deviceReason, fallback: info?.isFallbackAdapter ?? null, vendor: info?.vendor };
    await r.dispose();
    return out;
  });
  console.log(`auto: ${JSON.stringify(res)}`);
  if (res.fallback) {
    assert.equal(res.device, 'cpu');
    assert.match(res.reason, /software/);
  } else {
    assert.equal(res.device, 'webgpu');
    assert.match(res.reason, /self-check/);
  }
});

test('a reload is served from the Cache API: no request for model files', { skip, timeout: 300_000 }, async () => {
  const prefix = '/tests/fixtures/bert-tiny/';
  const requests = () => [...server.counts].filter(([p]) => p.startsWith(prefix)).reduce((n, [, c]) => n + c, 0);
  await inPage(({ clearCache }) => clearCache());
  const before = requests();
  const load = ({ Reranker }, base) =>
    Reranker.load(base, { device: 'cpu', onProgress: (p) => (globalThis.lastProgress = p) }).then(async (r) => {
      const s = await r.computeScore([['q', 'p']]);
      await r.dispose();
      return s[0];
    });
  const first = await inPage(load, prefix);
  const afterFirst = requests();
  assert.ok(afterFirst - before >= 5, `the first load downloads (got ${afterFirst - before} requests)`);
  await page.reload();
  const second = await inPage(load, prefix);
  assert.equal(requests(), afterFirst, 'the second load made no request for the model files');
  assert.equal(second, first);
  const progress = await page.evaluate(() => globalThis.lastProgress);
  assert.ok(progress.file && progress.loaded > 0, 'onProgress reports files');
});

test('errors reject with messages, on webgpu too', { skip, timeout: 300_000 }, async () => {
  const res = await inPage(async ({ Reranker }) => {
    const msg = (p) => p.then(() => 'resolved', (e) => String(e.message ?? e));
    const r = await Reranker.load('/tests/fixtures/bert-tiny/', { device: 'webgpu' });
    const out = {
      badConfig: await msg(Reranker.load({ 'config.json': new TextEncoder().encode('{') }, { device: 'webgpu' })),
      missing: await msg(Reranker.load('/tests/fixtures/nowhere/', { device: 'cpu' })),
      badPairs: await msg(r.computeScore([['only one']])),
      badBatch: await msg(r.computeScore([['q', 'p']], { batchSize: 0 })),
      badBudget: await msg(r.computeScore([['q', 'p']], { maxBatchTokens: 0 })),
      budgeted: await r.computeScore([['q', 'p'], ['q', 'a longer passage']], { maxBatchTokens: 1 }),
      unbudgeted: await r.computeScore([['q', 'p'], ['q', 'a longer passage']]),
      badDtype: await msg(Reranker.load('/tests/fixtures/bert-tiny/', { dtype: 'q3' })),
      stillWorks: (await r.computeScore([['q', 'p']])).length,
    };
    await r.dispose();
    out.disposed = await msg(r.computeScore([['q', 'p']]));
    return out;
  });
  assert.match(res.badConfig, /config\.json/);
  assert.match(res.missing, /HTTP 404/);
  assert.match(res.badPairs, /pairs/);
  assert.match(res.badBatch, /batch_size/);
  assert.match(res.badBudget, /max_batch_tokens/);
  // One pair per pass under a 1-token budget: the same scores.
  assert.equal(res.budgeted.length, 2);
  res.budgeted.forEach((s, i) => assert.ok(Math.abs(s - res.unbudgeted[i]) < 1e-5, `${s} vs ${res.unbudgeted[i]}`));
  assert.match(res.badDtype, /dtype/);
  assert.equal(res.stillWorks, 1);
  assert.match(res.disposed, /disposed/);
});

test('the RAG demo ranks documents and shows them', { skip, timeout: 600_000 }, async () => {
  const demo = await context.newPage();
  demo.on('console', (m) => logs.push(`[demo ${m.type()}] ${m.text()}`));
  await demo.goto(`${server.url}/web/?model=/tests/fixtures/xlmr-tiny/&device=webgpu`);
  await demo.fill('#query', 'what is a panda?');
  await demo.click('#search');
  await demo.waitForSelector('#results li', { timeout: 300_000 });
  const items = await demo.$$eval('#results li', (lis) => lis.map((li) => li.textContent));
  const status = await demo.textContent('#status');
  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, 'demo.png');
  await demo.screenshot({ path: shot, fullPage: true });
  console.log(`demo: ${items.length} results; status: ${status}; screenshot ${shot}`);
  assert.ok(items.length >= 3, 'the ranked list is shown');
  assert.match(items[0], /-?\d+\.\d+/, 'each result shows its score');
  assert.match(status, /webgpu/);
  const scores = await demo.$$eval('#results li .score', (s) => s.map((e) => Number(e.textContent)));
  for (let i = 1; i < scores.length; i++) assert.ok(scores[i - 1] >= scores[i], 'sorted by score');
  await demo.close();
});

test('the RAG demo suggests Qwen3-Reranker with its download size and reranks with a Qwen3 model', { skip, timeout: 600_000 }, async () => {
  const demo = await context.newPage();
  demo.on('console', (m) => logs.push(`[demo ${m.type()}] ${m.text()}`));
  await demo.goto(`${server.url}/web/`);
  const suggestions = await demo.$$eval('#models option', (o) => o.map((x) => x.value));
  assert.equal(suggestions[1], 'Qwen/Qwen3-Reranker-0.6B', 'the second suggestion');
  await demo.fill('#model', 'Qwen/Qwen3-Reranker-0.6B');
  await demo.dispatchEvent('#model', 'input');
  assert.match(await demo.textContent('#size'), /download 1\.19 GB/);
  assert.equal(await demo.inputValue('#dtype'), 'q8');
  // The Qwen3-Reranker fixture (the architecture; random weights) at q8.
  await demo.goto(`${server.url}/web/?model=/tests/fixtures/qwen3-reranker-tiny/&device=cpu&dtype=q8`);
  await demo.fill('#query', 'what is a panda?');
  await demo.click('#search');
  await demo.waitForSelector('#results li', { timeout: 300_000 });
  const status = await demo.textContent('#status');
  const scores = await demo.$$eval('#results li .score', (s) => s.map((e) => Number(e.textContent)));
  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, 'demo-qwen3.png');
  await demo.screenshot({ path: shot, fullPage: true });
  console.log(`demo (Qwen3): ${scores.length} results; status: ${status}; screenshot ${shot}`);
  assert.ok(scores.length >= 3);
  for (let i = 1; i < scores.length; i++) assert.ok(scores[i - 1] >= scores[i], 'sorted by score');
  await demo.close();
});

after(() => {
  const bad = logs.filter((l) => /panicked|RuntimeError|unreachable/.test(l));
  if (bad.length) console.log(bad.join('\n'));
});
