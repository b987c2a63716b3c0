// crossrank: rerank (query, passage) pairs with BAAI bge-rerankers, in the
// browser or Node, with FlagEmbedding's scores. Thin wrapper over the
// wasm-bindgen build in ./pkg (crates/crossrank-wasm).
import init, { WasmReranker } from './pkg/crossrank_wasm.js';

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

async function fetchFile(base, name, onProgress, optional) {
  const res = await fetch(new URL(name, base));
  if (!res.ok) {
    if (optional && res.status === 404) return undefined;
    throw new Error(`cannot fetch ${name} from ${base}: HTTP ${res.status}`);
  }
  const total = Number(res.headers.get('content-length')) || undefined;
  if (!res.body || !onProgress) return new Uint8Array(await res.arrayBuffer());
  const chunks = [];
  let loaded = 0;
  for await (const chunk of res.body) {
    chunks.push(chunk);
    loaded += chunk.length;
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

/** Resolve `source` (files object, base URL, or Hub repo id) to `{ name: Uint8Array }`. */
async function resolveFiles(source, onProgress) {
  if (source && typeof source === 'object' && !(source instanceof URL)) {
    const files = {};
    for (const [k, v] of Object.entries(source)) {
      files[k] = v instanceof Uint8Array ? v : new Uint8Array(v);
    }
    return files;
  }
  let base = String(source);
  if (!/^(https?|file):|^\.{0,2}\//.test(base)) {
    base = `https://huggingface.co/${base}/resolve/main/`;
  }
  if (!base.endsWith('/')) base += '/';
  base = new URL(base, globalThis.location?.href);
  const files = {};
  for (const f of REQUIRED) files[f] = await fetchFile(base, f, onProgress, false);
  for (const f of OPTIONAL) {
    const b = await fetchFile(base, f, onProgress, true);
    if (b) files[f] = b;
  }
  const single = await fetchFile(base, 'model.safetensors', onProgress, true);
  if (single) {
    files['model.safetensors'] = single;
  } else {
    const index = await fetchFile(base, 'model.safetensors.index.json', onProgress, false);
    files['model.safetensors.index.json'] = index;
    const shards = [...new Set(Object.values(JSON.parse(new TextDecoder().decode(index)).weight_map))];
    for (const s of shards) files[s] = await fetchFile(base, s, onProgress, false);
  }
  return files;
}

export class Reranker {
  #inner;

  /** @internal */
  constructor(inner, device, deviceReason) {
    this.#inner = inner;
    this.device = device;
    this.deviceReason = deviceReason;
  }

  /**
   * Load a checkpoint: a Hub repo id, a base URL of a checkpoint directory,
   * or `{ 'config.json': bytes, 'model.safetensors': bytes, 'tokenizer.json': bytes, ... }`.
   */
  static async load(source, { device = 'auto', onProgress } = {}) {
    await ensureInit();
    if (!['auto', 'cpu', 'webgpu'].includes(device)) {
      throw new Error(`unknown device ${JSON.stringify(device)} (expected auto, cpu or webgpu)`);
    }
    if (device === 'webgpu') {
      throw new Error('this build of crossrank runs on the CPU (wasm); WebGPU is not in it yet');
    }
    const files = await resolveFiles(source, onProgress);
    const inner = await WasmReranker.load(files, 'cpu');
    const reason = device === 'auto' ? 'auto: this build runs on the CPU (wasm)' : 'asked for cpu';
    return new Reranker(inner, inner.device, reason);
  }

  /** Scores of `[[query, passage], ...]` in input order. */
  async computeScore(pairs, options = {}) {
    return this.#inner.computeScore(pairs, options);
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

  /** Free the model's memory. */
  async dispose() {
    this.#inner?.free();
    this.#inner = undefined;
  }
}
