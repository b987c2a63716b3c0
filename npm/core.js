// crossrank's JavaScript API, shared by every entry point of the package
// (index.js for browsers, Node and Deno; workerd.js for Cloudflare Workers).
// Each entry hands `makeApi` a `backend(device, threads)` function that
// returns an initialised wasm-bindgen module (WasmReranker, WasmEmbedder, WasmDevice,
// checkDtype, build, memory): the full WebGPU + CPU build (./pkg), the slim
// CPU-only one (./pkg-cpu), or the threaded CPU build (./pkg-mt) run in a
// worker behind the same API (threads.js). Fetching lives in fetch.js, the
// panic guard in guard.js; this file is the API.
import { EMBEDDER_FILES, clearCache, isFilesObject, openCache, resolveFiles } from './fetch.js';
import { guarded } from './guard.js';
import { threadPlan } from './threads.js';

/** WebGPU's own name for its adapter (vendor, architecture), for display. */
async function webgpuAdapterName() {
  try {
    const info = (await globalThis.navigator?.gpu?.requestAdapter({ powerPreference: 'high-performance' }))?.info ?? {};
    return [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * A streaming quantizer for one weights file on backend `be`: `push(bytes)`,
 * `finish()` → the quantized file, `abort()`. The threaded backend runs it
 * in its worker; the others here, on the wasm-bindgen class.
 */
async function quantizer(be, file, dtype) {
  if (be.quantizer) return be.quantizer(file, dtype);
  let q = await guarded(() => new be.WasmQuantizer(file, dtype));
  const free = () => {
    q?.free();
    q = undefined;
  };
  return {
    push: (chunk) => guarded(() => q.push(chunk)),
    finish: () =>
      guarded(() => {
        try {
          return q.finish();
        } finally {
          free();
        }
      }),
    abort: free,
  };
}

/**
 * The package's API over `backend(device, threads) -> Promise<wasm module>`,
 * which picks and initialises one of the .wasm builds for the requested
 * device and thread count (see index.js, workerd.js).
 */
export function makeApi(backend) {
  /**
   * Load `source` as a `kind` ('WasmReranker' or 'WasmEmbedder') on a
   * backend: device and dtype checked and chosen first, then the files
   * downloaded (quantized as they arrive), then the model built.
   */
  async function loadModel(kind, source, { device = 'auto', dtype = 'f32', threads = 'auto', onProgress, cache = true, revision } = {}) {
    // How many CPU threads (threads.js: 'auto' takes the cores where the
    // page is cross-origin isolated, 1 elsewhere).
    const nThreads = threadPlan(threads);
    // The threaded backend counts its users (`retain` here, `release` on
    // a failed load or at dispose); the single-threaded ones have none.
    let be = await guarded(() => backend(String(device), nThreads));
    let inner, selected, reason;
    try {
      // Device and dtype are the core's to check and choose (crossrank::device:
      // a hardware adapter that passes the self-check, else the CPU), before
      // anything is downloaded.
      const weightDtype = await guarded(() => be.checkDtype(String(dtype)));
      selected = await guarded(() => be.WasmDevice.select(String(device)));
      if (nThreads > 1 && be.build === 'webgpu' && selected.kind === 'cpu') {
        // 'auto' found no usable adapter: the CPU it fell back to runs on
        // the threaded build; the core's reason is kept.
        reason = selected.reason;
        be = await guarded(() => backend('cpu', nThreads));
        selected = await guarded(() => be.WasmDevice.select('cpu'));
      }
      const owned = !isFilesObject(source);
      // Downloaded weights are quantized as they arrive (q8, q4, f16:
      // the core's StreamingQuantizer), so the f32 file is never held.
      const quantize = weightDtype === 'f32' ? undefined : (file) => quantizer(be, file, weightDtype);
      const extraFiles = kind === 'WasmEmbedder' ? EMBEDDER_FILES : [];
      const files = await resolveFiles(source, { onProgress, cache: await openCache(cache), revision, quantize, extraFiles });
      inner = await guarded(() => be[kind].load(files, selected, dtype, owned));
    } catch (e) {
      be.release?.();
      throw e;
    }
    return { inner, be, reason };
  }

  /** What a loaded reranker and embedder share: device facts, memory, dispose. */
  class Model {
    #memory;
    /** @internal */
    _inner;

    /** @internal */
    constructor({ inner, be, reason }) {
      this._inner = inner;
      this.device = inner.device;
      this.deviceReason = reason ?? inner.deviceReason;
      this.adapter = inner.adapter ?? null;
      this.build = be.build;
      this.threads = be.threads ?? 1;
      this.#memory = be.memory;
    }

    /** @internal wgpu in the browser may not see the adapter's name; WebGPU's own adapter info does. */
    async _nameAdapter() {
      if (this.adapter && !this.adapter.name) this.adapter = { ...this.adapter, name: await webgpuAdapterName() };
      return this;
    }

    /** @internal */
    _live(what) {
      if (!this._inner) throw new Error(`this ${what} was disposed`);
      return this._inner;
    }

    /**
     * Bytes of this model's wasm memory: the high-water mark of its .wasm
     * instance (linear memory never shrinks), shared with any other model
     * of the same build. Edge runtimes count it against their limit.
     */
    memoryBytes() {
      return this.#memory?.buffer.byteLength ?? 0;
    }

    /** Free the model's memory (GPU buffers included). */
    async dispose() {
      this._inner?.unload();
      this._inner?.free();
      this._inner = undefined;
    }
  }

  class Reranker extends Model {
    /**
     * Load a checkpoint: a Hub repo id, a base URL of a checkpoint directory,
     * or `{ 'config.json': bytes, 'model.safetensors': bytes, 'tokenizer.json': bytes, ... }`.
     */
    static async load(source, options = {}) {
      return new Reranker(await loadModel('WasmReranker', source, options))._nameAdapter();
    }

    /** Scores of `[[query, passage], ...]` in input order. */
    async computeScore(pairs, options = {}) {
      const inner = this._live('reranker');
      return guarded(() => inner.computeScore(pairs, options));
    }

    /**
     * `docs` ranked for `query` by the core's ranking (best first, ties in
     * input order, NaN last): `[{ index, score, document? }]`, at most `topK`.
     */
    async rerank(query, docs, { topK, returnDocuments = false, ...options } = {}) {
      const inner = this._live('reranker');
      const ranked = await guarded(() => inner.rerank(query, docs, topK ?? undefined, options));
      return returnDocuments ? ranked.map((r) => ({ ...r, document: docs[r.index] })) : ranked;
    }
  }

  class Embedder extends Model {
    /** Load an embedding checkpoint (sentence-transformers models, Qwen3-Embedding), as `Reranker.load` does. */
    static async load(source, options = {}) {
      return new Embedder(await loadModel('WasmEmbedder', source, options))._nameAdapter();
    }

    /**
     * One vector per text, in input order. Options: `promptName` ('query'
     * for Qwen3-Embedding's instruction) or `prompt`, `maxLength`,
     * `pooling`, `normalize`, `batchSize`.
     */
    async embed(texts, options = {}) {
      const inner = this._live('embedder');
      return guarded(() => inner.embed(texts, options));
    }

    /** The model's prompt named `name` ('query', 'document'), or undefined. */
    async prompt(name) {
      const inner = this._live('embedder');
      return (await guarded(() => inner.prompt(String(name)))) ?? undefined;
    }
  }

  return { Reranker, Embedder, clearCache };
}
