// crossrank: rerank (query, passage) pairs with BAAI bge-rerankers, in the
// browser (WebGPU or CPU wasm), Node, Deno and Service Workers, with
// FlagEmbedding's scores. Thin wrapper over the wasm-bindgen builds of
// crates/crossrank-wasm: ./pkg (WebGPU + CPU) and ./pkg-cpu (slim, CPU only).
//
// Both glue modules are imported statically (a few kB each; Service Workers
// forbid dynamic import()), and only the .wasm a reranker needs is fetched:
// the slim one when `device: 'cpu'` is asked or when WebGPU cannot be reached
// here at all, the full one otherwise; with threads on (a cross-origin
// isolated page, threads.js), a CPU runs the threaded build (./pkg-mt) in a
// worker instead. The device itself is still chosen by the core
// (crossrank::device) inside the build that was loaded.
import initFull, * as full from './pkg/crossrank_wasm.js';
import initCpu, * as cpu from './pkg-cpu/crossrank_wasm.js';
import { makeApi } from './core.js';
import { threadedBackend } from './threads.js';

/** Whether wgpu could reach WebGPU here: navigator.gpu in a page or a worker (not Deno, not workerd). */
export function webgpuReachable() {
  const g = globalThis;
  return !!g.navigator?.gpu && (g.Window !== undefined || g.WorkerGlobalScope !== undefined);
}

async function wasmSource(build) {
  const url = new URL(`./${build === 'cpu' ? 'pkg-cpu' : 'pkg'}/crossrank_wasm_bg.wasm`, import.meta.url);
  if (url.protocol === 'file:' && typeof process !== 'undefined' && process.versions?.node) {
    // Node (and Deno's Node compatibility) cannot fetch file: URLs.
    const { readFile } = await import('node:fs/promises');
    return readFile(url);
  }
  return url;
}

const ready = {};

/**
 * The threaded backend for `threads`, retained for one load (threads.js:
 * the worker ends when its last reranker is disposed). One worker per
 * thread count: a wasm instance's pool is built once.
 */
async function threaded(threads) {
  const key = `mt${threads}`;
  for (;;) {
    if (!ready[key]) {
      const started = threadedBackend(threads, () => ready[key] === started && delete ready[key]);
      ready[key] = started;
      started.catch(() => ready[key] === started && delete ready[key]);
    }
    const be = await ready[key];
    // A worker that ended while this load waited: start another.
    if (be.retain()) return be;
    if (ready[key] && (await ready[key]) === be) delete ready[key];
  }
}
function backend(device, threads = 1) {
  // An explicit 'webgpu' loads the full build even where WebGPU looks
  // unreachable, so the core says precisely why it is not available.
  const cpuOnly = device === 'cpu' || (device === 'auto' && !webgpuReachable());
  if (cpuOnly && threads > 1) return threaded(threads);
  const build = cpuOnly ? 'cpu' : 'webgpu';
  ready[build] ??= (async () => {
    const [init, mod] = build === 'cpu' ? [initCpu, cpu] : [initFull, full];
    const exports = await init({ module_or_path: await wasmSource(build) });
    return { ...mod, build, memory: exports.memory };
  })().catch((e) => {
    delete ready[build]; // a failed download can be retried
    throw e;
  });
  return ready[build];
}

export const { Reranker, Embedder, clearCache } = makeApi(backend);
export { threadsAvailable } from './threads.js';
