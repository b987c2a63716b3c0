#!/usr/bin/env bash
# Build the relaxed-SIMD kernel comparison and run it in Node and headless
# Chromium (tests/browser's playwright-core: `npm ci` there first).
# Results: docs/quantization.md ("wasm relaxed SIMD").
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo build -q --release --target wasm32-unknown-unknown
lscpu | sed -n 's/^Model name: *//p'
node --experimental-wasm-relaxed-simd --no-warnings bench.mjs "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/wasm_relaxed.wasm"
