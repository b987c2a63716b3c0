// The dedicated worker that runs crossrank's threaded CPU build (./pkg-mt)
// for threads.js. Why a worker: rayon's calling thread blocks
// (`memory.atomic.wait`) until its pool finishes, and browsers forbid
// blocking the main thread. This worker owns the wasm instance and the
// pool (wasm-bindgen-rayon starts the pool's workers from here, sharing the
// instance's memory); the page talks to it by messages:
//
//   { seq, op, ...args }  →  { seq, value } | { seq, error }
//   and, once, { type: 'crashed', message } when the instance is lost.
//
// The operations mirror the wasm-bindgen API the single-threaded builds
// expose to core.js (checkDtype, WasmDevice.select, WasmReranker.load, WasmEmbedder.load,
// computeScore, rerank, embed, prompt, unload, and WasmQuantizer's push/finish), so
// core.js runs the same steps on both.
import init, * as mt from './pkg-mt/crossrank_wasm.js';

let crashed = false;
function crash(message) {
  if (crashed) return;
  crashed = true;
  postMessage({ type: 'crashed', message });
}
// The panic hook (crates/crossrank-wasm) calls this on this thread; panics
// on the pool's threads reach the page through the BroadcastChannel.
globalThis.__crossrankPanic = crash;

const rerankers = new Map();
const quantizers = new Map();
let nextId = 1;

function reranker(id) {
  const r = rerankers.get(id);
  if (!r) throw new Error('this reranker was disposed');
  return r;
}

const ops = {
  async init({ threads, channel }) {
    const exports = await init({ module_or_path: new URL('./pkg-mt/crossrank_wasm_bg.wasm', import.meta.url) });
    mt.setPanicChannel(channel);
    await mt.initThreadPool(threads);
    return { threads: mt.poolThreads(), memory: exports.memory };
  },
  checkDtype({ dtype }) {
    return mt.checkDtype(dtype);
  },
  async select({ device }) {
    // Selecting only checks the choice here: this build is CPU-only, and the
    // device object stays in this worker (the load below selects again).
    const d = await mt.WasmDevice.select(device);
    d.free();
  },
  async load({ files, device, dtype, kind = 'WasmReranker' }) {
    if (kind !== 'WasmReranker' && kind !== 'WasmEmbedder') throw new Error(`unknown model kind ${JSON.stringify(kind)}`);
    const selected = await mt.WasmDevice.select(device);
    const r = await mt[kind].load(files, selected, dtype);
    const id = nextId++;
    rerankers.set(id, r);
    return { id, device: r.device, deviceReason: r.deviceReason };
  },
  quantStart({ file, dtype }) {
    const id = nextId++;
    quantizers.set(id, new mt.WasmQuantizer(file, dtype));
    return id;
  },
  quantPush({ id, chunk }) {
    const q = quantizers.get(id);
    if (!q) throw new Error('this quantizer has finished');
    q.push(chunk);
  },
  quantFinish({ id }) {
    const q = quantizers.get(id);
    if (!q) throw new Error('this quantizer has finished');
    quantizers.delete(id);
    try {
      return q.finish();
    } finally {
      q.free();
    }
  },
  quantAbort({ id }) {
    quantizers.get(id)?.free();
    quantizers.delete(id);
  },
  computeScore({ id, pairs, options }) {
    return reranker(id).computeScore(pairs, options);
  },
  rerank({ id, query, docs, topK, options }) {
    return reranker(id).rerank(query, docs, topK, options);
  },
  embed({ id, texts, options }) {
    return reranker(id).embed(texts, options);
  },
  prompt({ id, name }) {
    return reranker(id).prompt(name);
  },
  dispose({ id }) {
    const r = rerankers.get(id);
    rerankers.delete(id);
    r?.unload();
    r?.free();
  },
};

// One operation at a time, in arrival order: each runs to completion on
// this thread anyway (the wasm calls block it), and a queue keeps a load's
// awaits from interleaving with another call.
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  const { seq, op } = data ?? {};
  queue = queue.then(async () => {
    if (crashed) return postMessage({ seq, error: 'crossrank crashed earlier in this worker' });
    try {
      if (!Object.hasOwn(ops, op)) throw new Error(`unknown operation ${JSON.stringify(op)}`);
      const value = await ops[op](data);
      // A quantized file moves to the page rather than being copied.
      postMessage({ seq, value }, value instanceof Uint8Array ? [value.buffer] : []);
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) {
        // A trap that bypassed the panic hook (out of memory aborts without
        // it): the instance is unusable.
        crash(`${e.message} (a WebAssembly trap: most often out of memory — try a smaller dtype such as q8 or q4, or fewer pairs per call)`);
        postMessage({ seq, error: e.message });
      } else {
        postMessage({ seq, error: e instanceof Error ? e.message : String(e) });
      }
    }
  });
};
