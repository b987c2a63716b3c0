// crossrank: rerank (query, passage) pairs with BAAI bge-rerankers, in the
// browser (WebGPU or CPU wasm) or Node, with FlagEmbedding's scores. Thin
// wrapper over the wasm-bindgen build in ./pkg (crates/crossrank-wasm).
import init, { WasmReranker } from './pkg/crossrank_wasm.js';

// A Rust panic aborts the wasm instance (wasm32 has no unwinding): the panic
// hook in crates/crossrank-wasm calls this, every pending call is rejected
// with the panic message, and later calls are refused instead of hanging.
let crashed;
const pending = new Set();
globalThis.__crossrankPanic = (message) => {
  crashed = new Error(`crossrank crashed: ${message}`);
  for (const reject of pending) reject(crashed);
  pending.clear();
};

/** Run `f` so that a wasm panic rejects its promise instead of losing it. */
function guarded(f) {
  if (crashed) return Promise.reject(new Error(`${crashed.message} (reload to use crossrank again)`));
  return new Promise((resolve, reject) => {
    pending.add(reject);
    Promise.resolve()
      .then(f)
      .then(resolve, (e) => reject(e instanceof Error ? e : new Error(String(e))))
      .finally(() => pending.delete(reject));
  });
}

let ready;
function ensureInit() {
  ready ??= (async () => {
    const url = new URL('./pkg/crossrank_wasm_bg.wasm', import.meta.url);
    if (url.protocol === 'file:' && typeof process !== 'undefined' && process.versions?.node) {
      const { readFile } = await import('node:fs/promises');
      await init({ module_or_path: await readFile(url) });
    } else {
      await init({ module_or_path: url });
    }
  })();
  return ready;
}

const REQUIRED = ['config.json', 'tokenizer.json'];
const OPTIONAL = ['tokenizer_config.json', 'special_tokens_map.json'];
const CACHE_NAME = 'crossrank-models-v1';

/** The Cache API store, where the environment has one (browsers, secure contexts). */
async function openCache(enabled) {
  if (!enabled || !globalThis.caches) return undefined;
  try {
    return await globalThis.caches.open(CACHE_NAME);
  } catch {
    return undefined; // opaque origins, private modes: download every time
  }
}

async function readBody(res, name, onProgress) {
  const total = Number(res.headers.get('content-length')) || undefined;
  if (!res.body || !onProgress) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    onProgress?.({ file: name, loaded: bytes.length, total: bytes.length });
    return bytes;
  }
  const chunks = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress({ file: name, loaded, total });
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Fetch `name` under `base`, from the cache when it is there. Missing
 * optional files are cached as 404s too, so a reload makes no request.
 */
async function fetchFile(base, name, { onProgress, cache }, optional) {
  const url = new URL(name, base).href;
  let res = cache && (await cache.match(url));
  const hit = !!res;
  if (!res) {
    try {
      res = await fetch(url);
    } catch (e) {
      throw new Error(`cannot fetch ${name} from ${base}: ${e.message ?? e}`);
    }
  }
  if (!res.ok) {
    if (optional && res.status === 404) {
      if (cache && !hit) await cache.put(url, new Response(null, { status: 404 }));
      return undefined;
    }
    throw new Error(`cannot fetch ${name} from ${base}: HTTP ${res.status}`);
  }
  const bytes = await readBody(res, name, onProgress);
  if (cache && !hit) {
    await cache.put(url, new Response(bytes, { headers: { 'content-length': String(bytes.length) } }));
  }
  return bytes;
}

/** `org/name` or `org/name@revision` → the Hub's resolve URL. */
function hubBase(repo) {
  const [id, rev = 'main'] = repo.split('@');
  return `https://huggingface.co/${id}/resolve/${encodeURIComponent(rev)}/`;
}

/** Resolve `source` (files object, base URL, or Hub repo id) to `{ name: Uint8Array }`. */
async function resolveFiles(source, ctx) {
  if (source && typeof source === 'object' && !(source instanceof URL)) {
    const files = {};
    for (const [k, v] of Object.entries(source)) {
      files[k] = v instanceof Uint8Array ? v : new Uint8Array(v);
    }
    return files;
  }
  let base = String(source);
  if (!/^(https?|file):|^\.{0,2}\//.test(base)) base = hubBase(base);
  if (!base.endsWith('/')) base += '/';
  base = new URL(base, globalThis.location?.href);
  const files = {};
  for (const f of REQUIRED) files[f] = await fetchFile(base, f, ctx, false);
  for (const f of OPTIONAL) {
    const b = await fetchFile(base, f, ctx, true);
    if (b) files[f] = b;
  }
  const single = await fetchFile(base, 'model.safetensors', ctx, true);
  if (single) {
    files['model.safetensors'] = single;
  } else {
    const index = await fetchFile(base, 'model.safetensors.index.json', ctx, false);
    files['model.safetensors.index.json'] = index;
    const shards = [...new Set(Object.values(JSON.parse(new TextDecoder().decode(index)).weight_map))];
    for (const s of shards) files[s] = await fetchFile(base, s, ctx, false);
  }
  return files;
}

/**
 * Whether this environment exposes a WebGPU adapter. Checked here, before
 * wasm asks wgpu, so that a missing `navigator.gpu` is a reason, not a crash.
 */
async function webgpuAdapter() {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) return { ok: false, why: 'this environment has no WebGPU (navigator.gpu is missing)' };
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { ok: false, why: 'navigator.gpu.requestAdapter() returned no adapter' };
    const info = adapter.info ?? {};
    const software = info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
    return { ok: true, software, name: [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown' };
  } catch (e) {
    return { ok: false, why: `requestAdapter failed: ${e.message ?? e}` };
  }
}

const DTYPES = ['f32', 'f16', 'q8', 'q4', 'q4-all'];

export class Reranker {
  #inner;

  /** @internal */
  constructor(inner) {
    this.#inner = inner;
    this.device = inner.device;
    this.deviceReason = inner.deviceReason;
    this.adapter = inner.adapter ?? null;
  }

  /**
   * Load a checkpoint: a Hub repo id, a base URL of a checkpoint directory,
   * or `{ 'config.json': bytes, 'model.safetensors': bytes, 'tokenizer.json': bytes, ... }`.
   */
  static async load(source, { device = 'auto', dtype = 'f32', onProgress, cache = true } = {}) {
    if (!['auto', 'cpu', 'webgpu'].includes(device)) {
      throw new Error(`unknown device ${JSON.stringify(device)} (expected auto, cpu or webgpu)`);
    }
    if (!DTYPES.includes(dtype)) {
      throw new Error(`unknown dtype ${JSON.stringify(dtype)} (expected ${DTYPES.join(', ')})`);
    }
    await ensureInit();
    let wasmDevice = device;
    let reason;
    let probe;
    if (device !== 'cpu') {
      probe = await webgpuAdapter();
      if (!probe.ok && device === 'webgpu') throw new Error(`device 'webgpu' is not available: ${probe.why}`);
      if (!probe.ok) {
        wasmDevice = 'cpu';
        reason = `auto: ${probe.why}; using the CPU`;
      } else if (device === 'auto' && probe.software) {
        // A software adapter (SwiftShader) runs WebGPU on the CPU, slower
        // than the wasm CPU path; 'webgpu' still takes it when asked.
        wasmDevice = 'cpu';
        reason = `auto: the WebGPU adapter (${probe.name}) is a software fallback adapter, slower than the CPU path; using the CPU`;
      }
    }
    const files = await resolveFiles(source, { onProgress, cache: await openCache(cache) });
    const inner = await guarded(() => WasmReranker.load(files, wasmDevice, dtype));
    const r = new Reranker(inner);
    if (reason) r.deviceReason = reason;
    // wgpu in the browser does not see the adapter's name; WebGPU's own
    // adapter info does.
    if (r.adapter && !r.adapter.name && probe?.name) r.adapter = { ...r.adapter, name: probe.name };
    return r;
  }

  /** Scores of `[[query, passage], ...]` in input order. */
  async computeScore(pairs, options = {}) {
    if (!this.#inner) throw new Error('this reranker was disposed');
    return guarded(() => this.#inner.computeScore(pairs, options));
  }

  /** `docs` ranked for `query`, best first: `[{ index, score, document? }]`. */
  async rerank(query, docs, { topK, returnDocuments = false, ...options } = {}) {
    const scores = await this.computeScore(docs.map((d) => [query, d]), options);
    if (scores.length && Array.isArray(scores[0])) {
      throw new Error('rerank needs a single score list: pass one cutoffLayers value');
    }
    const ranked = scores
      .map((score, index) => ({ index, score, ...(returnDocuments ? { document: docs[index] } : {}) }))
      .sort((a, b) => b.score - a.score || a.index - b.index);
    return topK === undefined ? ranked : ranked.slice(0, topK);
  }

  /** Free the model's memory (GPU buffers included). */
  async dispose() {
    this.#inner?.unload();
    this.#inner?.free();
    this.#inner = undefined;
  }
}

/** Remove every model file crossrank cached with the Cache API. */
export async function clearCache() {
  if (globalThis.caches) await globalThis.caches.delete(CACHE_NAME);
}
