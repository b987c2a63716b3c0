// crossrank for Cloudflare Workers (workerd): the `workerd` export
// condition. Workers forbid compiling wasm from bytes at run time ("Wasm code
// generation disallowed by embedder"), so the slim CPU-only .wasm is
// imported as a module (wrangler/esbuild bundle it as a compiled
// `WebAssembly.Module`) and handed to the wasm-bindgen glue as it is.
// Workers have no WebGPU: this entry is CPU-only.
import wasmModule from './pkg-cpu/crossrank_wasm_bg.wasm';
import init, * as cpu from './pkg-cpu/crossrank_wasm.js';
import { makeApi } from './core.js';

let ready;
function backend(device) {
  if (device !== 'cpu' && device !== 'auto') {
    return Promise.reject(new Error(`device ${JSON.stringify(device)} is not available in Cloudflare Workers (no WebGPU there): use "cpu" or "auto"`));
  }
  ready ??= init({ module_or_path: wasmModule }).then((exports) => ({ ...cpu, build: 'cpu', memory: exports.memory }));
  return ready;
}

export function webgpuReachable() {
  return false;
}

export const { Reranker, Embedder, clearCache } = makeApi(backend);

/** Workers have no threads for wasm (no SharedArrayBuffer, no Worker). */
export function threadsAvailable() {
  return false;
}
