// Threads for the CPU in browsers: the one home of the thread policy
// (`threadPlan`: how many, and whether they are possible here) and the
// page side of the threaded build (`threadedBackend`), which runs
// ./pkg-mt in a dedicated worker (threads-worker.js) and offers core.js
// the same API the single-threaded wasm-bindgen modules do.
//
// Wasm threads share one memory, a SharedArrayBuffer, which browsers give
// only to cross-origin isolated pages and workers (served with
// `Cross-Origin-Opener-Policy: same-origin` and
// `Cross-Origin-Embedder-Policy: require-corp` or `credentialless`).

/** The most threads `threads: 'auto'` takes: past ~8 the products gain little and each worker costs a stack and an instance. */
const AUTO_MAX = 8;
/** The most threads one may ask for. */
const MAX = 64;

/** Deno: Web Workers and shared wasm memory without cross-origin isolation (a process, not a page). */
const isDeno = () => typeof globalThis.Deno?.version?.deno === 'string';

/** Whether threads are possible here: shared memory (a cross-origin isolated page, or Deno) and workers. */
export function threadsAvailable() {
  const g = globalThis;
  return (g.crossOriginIsolated === true || isDeno()) && typeof g.SharedArrayBuffer === 'function' && typeof g.Worker === 'function';
}

const ISOLATION =
  'threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages: serve the page with ' +
  '"Cross-Origin-Opener-Policy: same-origin" and "Cross-Origin-Embedder-Policy: require-corp" (or "credentialless")';

/**
 * The threads to use for `threads` ('auto' or a whole number): 'auto' takes
 * the cores the browser reports, up to 8, where threads are possible, and 1
 * elsewhere; an explicit number above 1 where they are not is an error
 * (a silent single thread would hide the missing headers). In Deno threads
 * are opt-in (an explicit number): a live worker keeps a Deno process from
 * exiting until the last threaded reranker is disposed, which a script
 * written for one thread would not expect.
 */
export function threadPlan(threads = 'auto') {
  if (threads === 'auto') {
    if (!threadsAvailable() || isDeno()) return 1;
    return Math.max(1, Math.min(AUTO_MAX, Number(globalThis.navigator?.hardwareConcurrency) || 1));
  }
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX) {
    throw new Error(`threads must be "auto" or a whole number from 1 to ${MAX}, not ${JSON.stringify(threads) ?? String(threads)}`);
  }
  if (threads > 1 && !threadsAvailable()) {
    const why = typeof globalThis.Worker !== 'function' ? 'this environment has no Web Workers' : globalThis.crossOriginIsolated === true ? 'no SharedArrayBuffer here' : ISOLATION;
    throw new Error(`threads: ${threads} is not available: ${why}; use threads: 1 or "auto"`);
  }
  return threads;
}

/** The module worker running threads-worker.js, also when the package is served from another origin (a CDN). */
function moduleWorker() {
  const url = new URL('./threads-worker.js', import.meta.url);
  if (globalThis.location && url.origin !== globalThis.location.origin) {
    // Worker scripts must be same-origin; a same-origin blob module may
    // import a cross-origin one (CORS).
    const blob = new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' });
    return new Worker(URL.createObjectURL(blob), { type: 'module', name: 'crossrank' });
  }
  // This literal form is the one bundlers recognise and rewrite.
  return new Worker(new URL('./threads-worker.js', import.meta.url), { type: 'module', name: 'crossrank' });
}

/**
 * Start the threaded build with `threads` threads in a worker. Resolves to
 * a backend for core.js (`checkDtype`, `WasmDevice.select`,
 * `WasmReranker.load`, `WasmEmbedder.load`, `build`, `memory`, `threads`,
 * `retain`, `release`).
 * `onLost` is called once when the worker ends: when its instance crashes
 * (every pending call is rejected with the panic's message, later calls
 * are refused) or when the last user releases it — each load retains the
 * backend, a failed load or a disposed reranker releases it, and at zero
 * the worker and its pool are terminated, which hands their memory back
 * (wasm memory never shrinks otherwise) and lets a Deno process exit. A
 * later load starts a fresh worker.
 */
export async function threadedBackend(threads, onLost) {
  const worker = moduleWorker();
  const channelName = `crossrank-panic-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const channel = new BroadcastChannel(channelName);
  const calls = new Map();
  let seq = 0;
  let lost; // why new calls are refused (a crash, or the last user left)

  let users = 0;
  let ended = false; // the worker is terminated
  const end = () => {
    if (ended) return;
    ended = true;
    worker.terminate(); // its pool's workers with it
    channel.close();
    onLost?.();
  };
  const crash = (message) => {
    if (ended) return;
    lost = new Error(`crossrank crashed: ${message}`);
    for (const { reject } of calls.values()) reject(lost);
    calls.clear();
    end();
  };
  channel.onmessage = ({ data }) => crash(String(data));
  worker.onerror = (e) => {
    e.preventDefault?.();
    crash(e.message || 'the threads worker failed to start (is threads-worker.js served next to index.js?)');
  };
  worker.onmessage = ({ data }) => {
    if (data?.type === 'crashed') return crash(data.message);
    const call = calls.get(data?.seq);
    if (!call) return;
    calls.delete(data.seq);
    if (data.error === undefined) call.resolve(data.value);
    else call.reject(new Error(data.error));
  };

  const call = (op, args = {}, transfer = []) => {
    if (lost) return Promise.reject(new Error(`${lost.message} (load the model again to restart crossrank's threads)`));
    const id = ++seq;
    const entry = {};
    // `entry.settled`: the call's own promise, which release() waits for.
    entry.settled = new Promise((resolve, reject) => {
      Object.assign(entry, { resolve, reject });
      calls.set(id, entry);
      try {
        worker.postMessage({ ...args, seq: id, op }, transfer);
      } catch (e) {
        // A value structured clone cannot copy (a function, a symbol).
        calls.delete(id);
        reject(new Error(`invalid arguments: ${e.message}`));
      }
    });
    return entry.settled;
  };

  let started;
  try {
    started = await call('init', { threads, channel: channelName });
  } catch (e) {
    crash(e.message);
    throw new Error(`cannot start crossrank's threads: ${e.message}`);
  }

  class RemoteReranker {
    #id;
    constructor({ id, device, deviceReason }) {
      this.#id = id;
      this.device = device;
      this.deviceReason = deviceReason;
      this.adapter = null;
    }
    computeScore(pairs, options) {
      if (this.#id === undefined) return Promise.reject(new Error('this reranker was disposed'));
      return call('computeScore', { id: this.#id, pairs, options });
    }
    rerank(query, docs, topK, options) {
      if (this.#id === undefined) return Promise.reject(new Error('this reranker was disposed'));
      return call('rerank', { id: this.#id, query, docs, topK, options });
    }
    embed(texts, options) {
      if (this.#id === undefined) return Promise.reject(new Error('this embedder was disposed'));
      return call('embed', { id: this.#id, texts, options });
    }
    prompt(name) {
      if (this.#id === undefined) return Promise.reject(new Error('this embedder was disposed'));
      return call('prompt', { id: this.#id, name });
    }
    unload() {
      if (this.#id === undefined) return;
      // Free it in the worker (other rerankers may share it), then let go.
      if (!lost) call('dispose', { id: this.#id }).catch(() => {});
      this.#id = undefined;
      release();
    }
    free() {}
  }

  /** `owned`: the files' buffers are crossrank's (downloaded), so they move to the worker instead of being copied. */
  async function remoteLoad(kind, files, device, dtype, owned) {
    const transfer = owned ? [...new Set(Object.values(files).map((b) => b.buffer))] : [];
    return new RemoteReranker(await call('load', { files, device, dtype, kind }, transfer));
  }

  /** One more user (a load in progress or a loaded reranker); false once the worker has ended. */
  const retain = () => {
    if (lost) return false;
    users++;
    return true;
  };
  /** One user fewer: the last one ends the worker (after the calls already sent). */
  function release() {
    if (lost || --users > 0) return;
    lost = new Error('crossrank: the threads worker was closed');
    // The calls already sent settle first (a crash meanwhile still rejects them).
    Promise.allSettled([...calls.values()].map((c) => c.settled)).then(end);
  }

  return {
    build: 'cpu-mt',
    retain,
    release,
    threads: started.threads,
    memory: started.memory,
    checkDtype: (dtype) => call('checkDtype', { dtype }),
    /** A streaming quantizer in the worker (core.js's `quantizer`): each chunk moves there, the quantized file moves back. */
    quantizer: async (file, dtype) => {
      const id = await call('quantStart', { file, dtype });
      let open = true;
      return {
        push: (chunk) => call('quantPush', { id, chunk }, [chunk.buffer]),
        finish: () => {
          open = false;
          return call('quantFinish', { id });
        },
        abort: () => {
          if (open && !lost) call('quantAbort', { id }).catch(() => {});
          open = false;
        },
      };
    },
    WasmDevice: { select: (device) => call('select', { device }).then(() => device) },
    WasmReranker: { load: (files, device, dtype, owned) => remoteLoad('WasmReranker', files, device, dtype, owned) },
    WasmEmbedder: { load: (files, device, dtype, owned) => remoteLoad('WasmEmbedder', files, device, dtype, owned) },
  };
}
