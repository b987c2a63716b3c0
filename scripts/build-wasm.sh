#!/usr/bin/env bash
# Build the npm package's wasm (crates/crossrank-wasm -> npm/pkg) and print
# its size raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
wasm-pack build crates/crossrank-wasm --target web --out-dir ../../npm/pkg --release
WASM=npm/pkg/crossrank_wasm_bg.wasm
echo "wasm: $(stat -c %s "$WASM") bytes raw, $(gzip -9c "$WASM" | wc -c) bytes gzipped"
