// The packed npm tarball, installed into a temporary project, scores the
// committed fixtures on the CPU in wasm and matches FlagEmbedding 1.4.2.
// Needs `wasm-pack build` into npm/pkg first (scripts/test.sh does it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { installPackage, root } from './pack.mjs';

const fixtures = join(root, 'tests', 'fixtures');

function files(model) {
  const dir = join(fixtures, model);
  const out = {};
  for (const f of readdirSync(dir)) {
    if (f !== 'expected.json') out[f] = new Uint8Array(readFileSync(join(dir, f)));
  }
  return out;
}

const { project, tarball } = installPackage();
const { Reranker, Embedder } = await import(pathToFileURL(join(project, 'node_modules', 'crossrank', 'index.js')).href);

test('tarball contains the wasm', () => {
  const list = execFileSync('tar', ['-tzf', tarball]).toString();
  assert.match(list, /package\/pkg\/crossrank_wasm_bg\.wasm/);
  assert.match(list, /package\/pkg-cpu\/crossrank_wasm_bg\.wasm/);
  assert.match(list, /package\/pkg-mt\/crossrank_wasm_bg\.wasm/);
  // wasm-bindgen-rayon's pool worker script, imported by the threaded glue.
  assert.match(list, /package\/pkg-mt\/snippets\/wasm-bindgen-rayon-[^/]+\/src\/workerHelpers\.no-bundler\.js/);
  assert.match(list, /package\/threads-worker\.js/);
  assert.match(list, /package\/workerd\.js/);
  assert.match(list, /package\/index\.d\.ts/);
});

test('Node gets the slim CPU-only build; an explicit webgpu says why not', async () => {
  const { webgpuReachable } = await import(pathToFileURL(join(project, 'node_modules', 'crossrank', 'index.js')).href);
  assert.equal(webgpuReachable(), false);
  const r = await Reranker.load(files('bert-tiny'));
  assert.equal(r.build, 'cpu');
  assert.equal(r.device, 'cpu');
  await r.dispose();
  // The full build is loaded for an explicit 'webgpu', and its core explains.
  await assert.rejects(Reranker.load(files('bert-tiny'), { device: 'webgpu' }), /WebGPU|navigator\.gpu/);
});

for (const model of ['xlmr-tiny', 'bert-tiny', 'gemma-tiny', 'modernbert-cls-tiny', 'modernbert-mean-tiny']) {
  test(`${model} matches FlagEmbedding on cpu wasm`, async () => {
    const expected = JSON.parse(readFileSync(join(fixtures, model, 'expected.json'), 'utf8'));
    const r = await Reranker.load(files(model), { device: 'auto' });
    assert.equal(r.device, 'cpu');
    const tol = model === 'gemma-tiny' ? 1e-3 : 1e-4;
    for (const c of expected.cases.slice(0, 3)) {
      const opts = {
        maxLength: c.options.max_length,
        queryMaxLength: c.options.query_max_length,
        batchSize: c.options.batch_size,
        normalize: c.options.normalize,
        prompt: c.options.prompt,
      };
      const got = await r.computeScore(expected.pairs, opts);
      const want = Array.isArray(c.scores[0]) ? c.scores[0] : c.scores;
      const err = Math.max(...got.map((g, i) => Math.abs(g - want[i])));
      console.log(`${model}/${c.name}: max abs err ${err.toExponential(2)}`);
      assert.ok(err <= tol, `${model}/${c.name}: ${err} > ${tol}`);
    }
    const ranked = await r.rerank(expected.pairs[0][0], expected.pairs.map((p) => p[1]), { topK: 3, returnDocuments: true });
    assert.equal(ranked.length, 3);
    assert.ok(ranked[0].score >= ranked[1].score && ranked[1].score >= ranked[2].score);
    assert.equal(typeof ranked[0].document, 'string');
    await r.dispose();
  });
}

const maxErr = (got, want) => Math.max(...got.map((g, i) => Math.abs(g - want[i])));

// Qwen3-Reranker in both forms against its card's code (transformers):
// P(yes) within 1e-4, the raw log-odds within 2e-3.
for (const model of ['qwen3-reranker-tiny', 'qwen3-seq-cls-tiny']) {
  test(`${model} matches the Qwen3-Reranker card on cpu wasm`, async () => {
    const expected = JSON.parse(readFileSync(join(fixtures, model, 'expected.json'), 'utf8'));
    const r = await Reranker.load(files(model));
    for (const c of expected.cases) {
      const opts = { maxLength: c.options.max_length, prompt: c.options.prompt };
      const p = await r.computeScore(expected.pairs, { ...opts, normalize: true });
      const raw = await r.computeScore(expected.pairs, opts);
      const [ep, er] = [maxErr(p, c.scores), maxErr(raw, c.raw)];
      console.log(`${model}/${c.name}: P(yes) max abs err ${ep.toExponential(2)}, raw ${er.toExponential(2)}`);
      assert.ok(ep <= 1e-4 && er <= 2e-3, `${model}/${c.name}: ${ep}, ${er}`);
    }
    await assert.rejects(r.computeScore([['q', 'd']], { maxLength: 20 }), /max_length 20 leaves no room/);
    await r.dispose();
  });
}

test('Embedder: Qwen3-Embedding matches its card (query instruction, last token, normalized)', async () => {
  const expected = JSON.parse(readFileSync(join(fixtures, 'qwen3-embedding-tiny', 'expected.json'), 'utf8'));
  const e = await Embedder.load(files('qwen3-embedding-tiny'), { dtype: 'f32' });
  assert.match(await e.prompt('query'), /^Instruct: Given a web search query.*\nQuery:$/s);
  for (const c of expected.cases) {
    const maxLength = c.options.max_length;
    const query = c.options.task ? { prompt: `Instruct: ${c.options.task}\nQuery:` } : { promptName: 'query' };
    const q = await e.embed(expected.queries, { ...query, maxLength });
    const d = await e.embed(expected.documents, { maxLength });
    const err = Math.max(...q.map((v, i) => maxErr(v, c.queries[i])), ...d.map((v, i) => maxErr(v, c.documents[i])));
    console.log(`qwen3-embedding/${c.name}: max abs err ${err.toExponential(2)}`);
    assert.ok(err <= 1e-4, `${c.name}: ${err}`);
  }
  await assert.rejects(e.embed(['x'], { promptName: 'passage' }), /no prompt named "passage"/);
  await assert.rejects(e.embed(['x'], { promptNmae: 'query' }), /promptNmae/);
  await e.dispose();
  await assert.rejects(e.embed(['x']), /disposed/);
});

test('threads: one where Node has no Web Workers; asking for more says why', async () => {
  const { threadsAvailable } = await import(pathToFileURL(join(project, 'node_modules', 'crossrank', 'index.js')).href);
  assert.equal(threadsAvailable(), false);
  const r = await Reranker.load(files('bert-tiny'), { device: 'cpu' });
  assert.equal(r.threads, 1);
  assert.equal(r.build, 'cpu');
  await r.dispose();
  await assert.rejects(Reranker.load(files('bert-tiny'), { device: 'cpu', threads: 4 }), /threads: 4 is not available: this environment has no Web Workers/);
  await assert.rejects(Reranker.load(files('bert-tiny'), { threads: 0 }), /threads must be "auto" or a whole number/);
  await assert.rejects(Reranker.load(files('bert-tiny'), { threads: 'many' }), /threads must be/);
  // One thread is always possible.
  const one = await Reranker.load(files('bert-tiny'), { device: 'cpu', threads: 1 });
  assert.equal(one.threads, 1);
  await one.dispose();
});

test('bad input rejects with a message', async () => {
  await assert.rejects(Reranker.load({ 'config.json': new TextEncoder().encode('{') }), /config\.json/);
  const r = await Reranker.load(files('bert-tiny'));
  await assert.rejects(r.computeScore([['only one']]), /pairs/);
  await assert.rejects(r.computeScore([['q', 'p']], { batchSize: 0 }), /batch_size/);
  await assert.rejects(Reranker.load(files('bert-tiny'), { device: 'tpu' }), /unknown device/);
});

/**
 * A fake network (and Cache API) for the package's downloader: `table` maps
 * URL → bytes; everything else is a 404. Returns the URLs asked for.
 */
function fakeNetwork(table) {
  const seen = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url) => {
    const u = String(url);
    seen.push(u);
    const body = table[u];
    return body === undefined ? new Response(null, { status: 404 }) : new Response(body);
  };
  return { seen, restore: () => (globalThis.fetch = realFetch) };
}

/** A Map-backed stand-in for `caches` (Node has no Cache API). */
function fakeCaches() {
  const store = new Map();
  const cache = {
    async match(req) {
      const r = store.get(String(req?.url ?? req));
      return r?.clone();
    },
    async put(req, res) {
      store.set(String(req?.url ?? req), new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers }));
    },
    async delete(req) {
      return store.delete(String(req?.url ?? req));
    },
    async keys() {
      return [...store.keys()].map((url) => ({ url }));
    },
  };
  globalThis.caches = { open: async () => cache, delete: async () => store.clear() };
  return { store, restore: () => delete globalThis.caches };
}

test('a shard index cannot point outside the checkpoint', async () => {
  const base = 'https://models.example/org/bert/';
  for (const bad of ['/etc/x.safetensors', '../other-org/x.safetensors', 'https://elsewhere.example/x.safetensors', 'a//x.safetensors', 'x.bin']) {
    const table = {};
    for (const [k, v] of Object.entries(files('bert-tiny'))) table[base + k] = v;
    const index = JSON.parse(new TextDecoder().decode(table[base + 'model.safetensors.index.json']));
    index.weight_map['classifier.bias'] = bad;
    table[base + 'model.safetensors.index.json'] = new TextEncoder().encode(JSON.stringify(index));
    const net = fakeNetwork(table);
    try {
      await assert.rejects(Reranker.load(base, { cache: false }), /model\.safetensors\.index\.json/, bad);
    } finally {
      net.restore();
    }
    assert.ok(!net.seen.some((u) => u.includes('x.safetensors') || u.includes('x.bin') || u.includes('elsewhere')), `${bad}: ${net.seen}`);
  }
  // `__proto__` is a key like any other: its shard is checked (and here refused), not dropped.
  const table = {};
  for (const [k, v] of Object.entries(files('bert-tiny'))) table[base + k] = v;
  const text = new TextDecoder().decode(table[base + 'model.safetensors.index.json']).replace('"weight_map": {', '"weight_map": {"__proto__": "../x.safetensors", ');
  assert.ok(text.includes('__proto__'));
  table[base + 'model.safetensors.index.json'] = new TextEncoder().encode(text);
  const net = fakeNetwork(table);
  try {
    await assert.rejects(Reranker.load(base, { cache: false }), /\.\.\/x\.safetensors/);
  } finally {
    net.restore();
  }
});

test('Hub revisions load by commit; cached 404s expire and a failed load forgets them', async () => {
  const sha = '0123456789abcdef0123456789abcdef01234567';
  const base = `https://huggingface.co/org/bert/resolve/${sha}/`;
  const table = { 'https://huggingface.co/api/models/org/bert/revision/main': new TextEncoder().encode(JSON.stringify({ sha })) };
  for (const [k, v] of Object.entries(files('bert-tiny'))) table[base + k] = v;
  const fake = fakeCaches();
  let net = fakeNetwork(table);
  try {
    const r = await Reranker.load('org/bert');
    assert.equal((await r.computeScore([['q', 'p']])).length, 1);
    assert.ok(net.seen.every((u) => u.startsWith('https://huggingface.co/api/') || u.startsWith(base)), net.seen.join('\n'));
    // model.safetensors is absent (sharded): cached as missing, with a time.
    const miss = fake.store.get(base + 'model.safetensors');
    assert.equal(miss?.status, 404);
    // An hour later that answer is stale and the file is asked for again.
    fake.store.set(base + 'model.safetensors', new Response(null, { status: 404, headers: { 'x-crossrank-cached-at': String(Date.now() - 2 * 3600e3) } }));
    net.restore();
    net = fakeNetwork(table);
    await Reranker.load('org/bert');
    assert.ok(net.seen.includes(base + 'model.safetensors'), net.seen.join('\n'));
    // A load that fails drops the cached 404s of that checkpoint.
    net.restore();
    delete table[base + 'model-00002-of-00002.safetensors'];
    fake.store.delete(base + 'model-00002-of-00002.safetensors');
    net = fakeNetwork(table);
    await assert.rejects(Reranker.load('org/bert'), /model-00002-of-00002/);
    assert.ok(![...fake.store.values()].some((r) => r.status === 404), '404s forgotten');
    // Repo ids and revisions are checked before any request.
    await assert.rejects(Reranker.load('org/../bert'), /not a Hugging Face repo id/);
    await assert.rejects(Reranker.load('org/bert@../main'), /not a revision/);
  } finally {
    net.restore();
    fake.restore();
  }
});

test('topK must be a non-negative integer', async () => {
  const r = await Reranker.load(files('bert-tiny'));
  await assert.rejects(r.rerank('q', ['a', 'b', 'c'], { topK: -1 }), /topK/);
  await assert.rejects(r.rerank('q', ['a', 'b', 'c'], { topK: 1.5 }), /topK/);
  assert.equal((await r.rerank('q', ['a', 'b', 'c'], { topK: 2 })).length, 2);
  assert.equal((await r.rerank('q', ['a', 'b', 'c'], { topK: 0 })).length, 0);
  assert.equal((await r.rerank('q', ['a', 'b', 'c'])).length, 3);
});

test('longPassages maxp: best window with JavaScript string indices', async () => {
  const r = await Reranker.load(files('bert-tiny'));
  // Emoji are two UTF-16 units each: indices in bytes or code points would cut wrongly.
  const long = '🐼 bamboo forest notes and kernel run queues. '.repeat(80) + 'Pandas eat bamboo.';
  const short = 'Pandas eat bamboo.';
  const q = 'what do pandas eat';
  const truncate = await r.computeScore([[q, long], [q, short]]);
  const maxp = await r.computeScore([[q, long], [q, short]], { longPassages: 'maxp', passageStride: 64 });
  assert.ok(maxp[0] >= truncate[0] - 1e-6, `${maxp[0]} < ${truncate[0]}`);
  assert.equal(maxp[1], truncate[1], 'a passage that fits scores as truncate');
  const ranked = await r.rerank(q, [long, short], { longPassages: 'maxp', passageStride: 64 });
  for (const x of ranked) {
    const doc = [long, short][x.index];
    assert.ok(x.window.windows >= 1 && x.window.start < x.window.end && x.window.end <= doc.length, JSON.stringify(x));
    const piece = doc.slice(x.window.start, x.window.end);
    assert.ok(!/[\uD800-\uDBFF]$/.test(piece) && !/^[\uDC00-\uDFFF]/.test(piece), 'window cuts a surrogate pair');
    if (x.index === 1) assert.deepEqual(x.window, { start: 0, end: short.length, windows: 1 });
    else assert.ok(x.window.windows > 1);
  }
  assert.equal((await r.rerank(q, [short]))[0].window, undefined);
  await assert.rejects(r.computeScore([[q, long]], { longPassages: 'firstp' }), /firstp|longPassages|variant/);
  await r.dispose();
});

/** Scores of the bert-tiny fixture's pairs under its first case, and the error to FlagEmbedding's. */
test("dtype 'int8': q8's weights with 8-bit activations (wasm SIMD128 on i8 panels) — FlagEmbedding's scores within 8-bit rounding, not q8's", async () => {
  const expected = JSON.parse(readFileSync(join(fixtures, 'xlmr-tiny', 'expected.json'), 'utf8'));
  const c = expected.cases[0];
  const opts = { maxLength: c.options.max_length, normalize: c.options.normalize };
  const want = Array.isArray(c.scores[0]) ? c.scores[0] : c.scores;
  const score = async (dtype) => {
    const r = await Reranker.load(files('xlmr-tiny'), { dtype });
    try {
      return await r.computeScore(expected.pairs, opts);
    } finally {
      await r.dispose();
    }
  };
  const [q8, int8] = [await score('q8'), await score('int8')];
  const err = (v) => Math.max(...v.map((g, i) => Math.abs(g - want[i])));
  assert.notDeepEqual(int8, q8, 'int8 scored as q8');
  // Natively xlmr-tiny int8 is within 4.6e-2 of FlagEmbedding over every case (q8 2.2e-2).
  assert.ok(err(int8) <= 0.1 && err(q8) <= 0.05, `int8 ${err(int8)}, q8 ${err(q8)}`);
});

async function bertTinyError(r) {
  const expected = JSON.parse(readFileSync(join(fixtures, 'bert-tiny', 'expected.json'), 'utf8'));
  const c = expected.cases[0];
  const got = await r.computeScore(expected.pairs, { maxLength: c.options.max_length, queryMaxLength: c.options.query_max_length, normalize: c.options.normalize });
  const want = Array.isArray(c.scores[0]) ? c.scores[0] : c.scores;
  return Math.max(...got.map((g, i) => Math.abs(g - want[i])));
}

test('Node loads a local directory path and a file: URL, and scores like FlagEmbedding', async () => {
  const dir = join(fixtures, 'bert-tiny');
  for (const source of [dir, `${dir}/`, pathToFileURL(dir).href, pathToFileURL(dir)]) {
    const events = [];
    const r = await Reranker.load(source, { device: 'wasm', onProgress: (p) => events.push(p) });
    const err = await bertTinyError(r);
    assert.ok(err <= 1e-4, `${source}: ${err}`);
    assert.ok(events.some((e) => e.status === 'done' && e.file === 'config.json' && e.loaded > 0 && e.name === String(source)), JSON.stringify(events));
    await r.dispose();
  }
  await assert.rejects(Reranker.load(join(fixtures, 'no-such-model')), /not a directory/);
});

test('a Hub model is kept in the Hugging Face cache on disk: the second load makes no request', async () => {
  const { createServer } = await import('node:http');
  const { mkdtempSync, lstatSync, readlinkSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const commit = 'a'.repeat(40);
  const dir = join(fixtures, 'bert-tiny');
  const hits = [];
  // A local mirror of the Hub's two endpoints (HF_ENDPOINT points at it).
  const server = createServer((req, res) => {
    hits.push(req.url);
    if (req.url === '/api/models/fixture/bert-tiny/revision/main') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ sha: commit }));
    }
    const m = req.url.match(/^\/fixture\/bert-tiny\/resolve\/([0-9a-f]{40})\/([\w.-]+)$/);
    let bytes;
    try {
      bytes = m && m[1] === commit && m[2] !== 'expected.json' ? readFileSync(join(dir, m[2])) : undefined;
    } catch {}
    if (!bytes) {
      res.statusCode = 404;
      return res.end();
    }
    res.setHeader('content-length', bytes.length);
    res.end(bytes);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const home = mkdtempSync(join(tmpdir(), 'crossrank-hf-'));
  const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, HF_HOME: process.env.HF_HOME, HF_HUB_CACHE: process.env.HF_HUB_CACHE };
  process.env.HF_ENDPOINT = `http://127.0.0.1:${server.address().port}`;
  process.env.HF_HOME = home;
  delete process.env.HF_HUB_CACHE;
  try {
    const first = await Reranker.load('fixture/bert-tiny', { dtype: 'fp32' });
    assert.ok(hits.length >= 5, `the first load downloads: ${hits}`);
    assert.ok((await bertTinyError(first)) <= 1e-4);
    await first.dispose();
    // huggingface_hub's layout: refs, blobs, snapshot links, .no_exist.
    const repo = join(home, 'hub', 'models--fixture--bert-tiny');
    assert.equal(readFileSync(join(repo, 'refs', 'main'), 'utf8'), commit);
    const snap = join(repo, 'snapshots', commit, 'config.json');
    assert.ok(lstatSync(snap).isSymbolicLink() && readlinkSync(snap).startsWith('../../blobs/'));
    assert.deepEqual(readFileSync(snap), readFileSync(join(dir, 'config.json')));
    assert.ok(lstatSync(join(repo, '.no_exist', commit, 'model.safetensors')).isFile()); // sharded: no single file
    const before = hits.length;
    const second = await Reranker.load('fixture/bert-tiny');
    assert.equal(hits.length, before, `the second load made requests: ${hits.slice(before)}`);
    assert.ok((await bertTinyError(second)) <= 1e-4);
    await second.dispose();
    // cache: false asks the Hub again.
    const third = await Reranker.load('fixture/bert-tiny', { cache: false });
    assert.ok(hits.length > before);
    await third.dispose();
    // A q8 load downloads and quantizes as the bytes stream in; the cache
    // keeps the original file (shared with Python), each blob named by its
    // SHA-256, and a second q8 load quantizes from it without a request.
    rmSync(join(home, 'hub'), { recursive: true, force: true });
    const q8 = await Reranker.load('fixture/bert-tiny', { dtype: 'q8' });
    const atLoad = await Reranker.load(files('bert-tiny'), { dtype: 'q8' });
    const pairs = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).pairs;
    assert.deepEqual(await q8.computeScore(pairs), await atLoad.computeScore(pairs));
    await atLoad.dispose();
    await q8.dispose();
    const { createHash } = await import('node:crypto');
    for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      const original = readFileSync(join(dir, shard));
      const link = join(repo, 'snapshots', commit, shard);
      assert.deepEqual(readFileSync(link), original, shard);
      assert.ok(readlinkSync(link).endsWith(createHash('sha256').update(original).digest('hex')), readlinkSync(link));
    }
    const before2 = hits.length;
    const again = await Reranker.load('fixture/bert-tiny', { dtype: 'q8' });
    assert.equal(hits.length, before2);
    await again.dispose();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    server.close();
    rmSync(home, { recursive: true, force: true });
  }
});

test('loading at q8/int8/q4/f16 from a directory or the Hub quantizes the weights as they stream in: the scores of quantizing at load, bit for bit', async () => {
  const pairs = JSON.parse(readFileSync(join(fixtures, 'xlmr-tiny', 'expected.json'), 'utf8')).pairs;
  // xlmr-tiny: one weights file; bert-tiny: two shards and an index.
  for (const model of ['xlmr-tiny', 'bert-tiny']) {
    for (const dtype of ['q8', 'int8', 'q4', 'f16']) {
      const atLoad = await Reranker.load(files(model), { dtype });
      const want = await atLoad.computeScore(pairs);
      await atLoad.dispose();
      const events = [];
      const streamed = await Reranker.load(join(fixtures, model), { dtype, onProgress: (e) => events.push(e) });
      assert.deepEqual(await streamed.computeScore(pairs), want, `${model} ${dtype}`);
      await streamed.dispose();
      // Progress counts the bytes downloaded, not the quantized ones.
      const shards = readdirSync(join(fixtures, model)).filter((f) => f.endsWith('.safetensors'));
      for (const f of shards) {
        const last = events.filter((e) => e.file === f && e.status === 'progress').pop();
        assert.equal(last.loaded, readFileSync(join(fixtures, model, f)).length, `${model} ${f}`);
      }
    }
  }
  // A file cut short is an error that names it, not a hang or a crash.
  const { mkdtempSync, cpSync, truncateSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'crossrank-cut-'));
  try {
    cpSync(join(fixtures, 'xlmr-tiny'), dir, { recursive: true });
    truncateSync(join(dir, 'model.safetensors'), 100000);
    await assert.rejects(Reranker.load(dir, { dtype: 'q8' }), /model\.safetensors.*truncated/);
    const r = await Reranker.load(join(fixtures, 'xlmr-tiny'), { dtype: 'q8' });
    await r.dispose(); // the instance is still sound
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
