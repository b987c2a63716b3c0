// crossrank: rerank (query, passage) pairs with BAAI bge-rerankers, in the
// browser (WebGPU or CPU wasm) or Node, with FlagEmbedding's scores. Thin
// wrapper over the wasm-bindgen build in ./pkg (crates/crossrank-wasm).
import init, { WasmReranker, WasmDevice, checkDtype } from './pkg/crossrank_wasm.js';

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

/** WebGPU's own name for its adapter (vendor, architecture), for display. */
async function webgpuAdapterName() {
  try {
    const info = (await globalThis.navigator?.gpu?.requestAdapter({ powerPreference: 'high-performance' }))?.info ?? {};
    return [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown';
  } catch {
    return 'unknown';
  }
}

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
    await ensureInit();
    // Device and dtype are the core's to check and choose (crossrank::device:
    // a hardware adapter that passes the self-check, else the CPU), before
    // anything is downloaded.
    await guarded(() => checkDtype(String(dtype)));
    const selected = await guarded(() => WasmDevice.select(String(device)));
    const files = await resolveFiles(source, { onProgress, cache: await openCache(cache) });
    const inner = await guarded(() => WasmReranker.load(files, selected, dtype));
    const r = new Reranker(inner);
    // wgpu in the browser may not see the adapter's name; WebGPU's own
    // adapter info does.
    if (r.adapter && !r.adapter.name) r.adapter = { ...r.adapter, name: await webgpuAdapterName() };
    return r;
  }

  /** Scores of `[[query, passage], ...]` in input order. */
  async computeScore(pairs, options = {}) {
    if (!this.#inner) throw new Error('this reranker was disposed');
    return guarded(() => this.#inner.computeScore(pairs, options));
  }

  /**
   * `docs` ranked for `query` by the core's ranking (best first, ties in
   * input order, NaN last): `[{ index, score, document? }]`, at most `topK`.
   */
  async rerank(query, docs, { topK, returnDocuments = false, ...options } = {}) {
    if (!this.#inner) throw new Error('this reranker was disposed');
    const ranked = await guarded(() => this.#inner.rerank(query, docs, topK ?? undefined, options));
    return returnDocuments ? ranked.map((r) => ({ ...r, document: docs[r.index] })) : ranked;
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
