#!/usr/bin/env bash
# Build the npm package's wasm (crates/crossrank-wasm -> npm/pkg): cargo
# profile `wasm-release` (opt-level s, LTO, one codegen unit), then npm
# binaryen's wasm-opt (Debian's wasm-opt 108 produces a .wasm that fails to
# load). Prints the size raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
wasm-pack build crates/crossrank-wasm --target web --out-dir ../../npm/pkg --profile wasm-release
WASM=npm/pkg/crossrank_wasm_bg.wasm
echo "wasm before wasm-opt: $(stat -c %s "$WASM") bytes raw, $(gzip -9c "$WASM" | wc -c) gzipped"
(cd tests/browser && npm ci --silent --no-audit --no-fund)
WASM_OPT=tests/browser/node_modules/.bin/wasm-opt
# The features Rust's wasm32 target emits (bulk memory, nontrapping
# float-to-int, sign-ext, multivalue, reference types) and our +simd128.
"$WASM_OPT" -Os --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-multivalue --enable-reference-types \
  "$WASM" -o "$WASM.opt"
mv "$WASM.opt" "$WASM"
echo "wasm: $(stat -c %s "$WASM") bytes raw, $(gzip -9c "$WASM" | wc -c) bytes gzipped"
