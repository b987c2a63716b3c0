// The panic guard: one home for what happens when the wasm instance dies.
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

/**
 * Run `f` so that a wasm panic rejects its promise instead of losing it.
 * A trap that bypasses the panic hook — out of memory aborts without it —
 * arrives here as a `WebAssembly.RuntimeError`: the instance is unusable
 * after one, so it is treated as a crash too and every pending call is
 * rejected with a message.
 */
export function guarded(f) {
  if (crashed) return Promise.reject(new Error(`${crashed.message} (reload to use crossrank again)`));
  return new Promise((resolve, reject) => {
    pending.add(reject);
    Promise.resolve()
      .then(f)
      .then(resolve, (e) => {
        if (globalThis.WebAssembly && e instanceof WebAssembly.RuntimeError) {
          globalThis.__crossrankPanic(`${e.message} (a WebAssembly trap: most often out of memory — try a smaller dtype such as q8 or q4, or fewer pairs per call)`);
          reject(crashed);
        } else {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      })
      .finally(() => pending.delete(reject));
  });
}
