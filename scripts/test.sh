#!/usr/bin/env bash
# Run every test of the workspace: unit, parity (CPU + wgpu), errors, CLI,
# Hub download, real all-MiniLM-L6-v2 weights, and the wasm32 build check.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"

# The core crate must keep compiling for the browser.
if rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  echo "== cargo check (wasm32-unknown-unknown, crossrank without native features)"
  cargo check -q -p crossrank --no-default-features --target wasm32-unknown-unknown
else
  echo "wasm32-unknown-unknown target missing: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi

# The integer kernels for other CPUs, alone, bit for bit against the scalar
# reference under emulators (tests/int8-cross: wasm32 SIMD128 under Node's
# WASI; aarch64 NEON and dot-product kernels under qemu-user).
./tests/int8-cross/run.sh

echo "== cargo test --workspace"
# One test binary at a time keeps peak memory and lavapipe contention low.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"  # silences Mesa's warning
cargo test --workspace -- --test-threads=1

echo "== Python package (crates/crossrank-py: pytest on the workspace build's extension)"
./scripts/python-test.sh

echo "== wasm-pack build (crates/crossrank-wasm -> npm/pkg)"
./scripts/build-wasm.sh

echo "== npm package (Node, CPU wasm), browser tests (headless Chromium: WebGPU + CPU, Cache API, demo),"
echo "   edge runtimes from npm (Deno, workerd via wrangler, a Service Worker in Chromium)"
# (tests/browser/node_modules is installed by build-wasm.sh)
(cd tests/edge && npm ci --silent --no-audit --no-fund)
node --test --test-concurrency=1 tests/node/ tests/browser/ tests/edge/
