#!/usr/bin/env bash
# Build the npm package's two .wasm builds from crates/crossrank-wasm:
#   npm/pkg      WebGPU + CPU (cargo profile `wasm-release`)
#   npm/pkg-cpu  slim, CPU only (cfg `crossrank_cpu_only`, profile `wasm-slim`)
# both opt-level s, LTO, one codegen unit, then npm binaryen's wasm-opt
# (Debian's wasm-opt 108 produces a .wasm that fails to load). Prints each
# size raw and gzipped. `./scripts/build-wasm.sh cpu` builds the slim one only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
(cd tests/browser && npm ci --silent --no-audit --no-fund)
WASM_OPT=tests/browser/node_modules/.bin/wasm-opt

build() { # OUT_DIR PROFILE [EXTRA_CFG]
  # `--config` arrays add to .cargo/config.toml's rustflags (RUSTFLAGS would
  # replace them: the getrandom backend and +simd128).
  local extra=()
  [ -z "${3:-}" ] || extra=(-- --config "target.wasm32-unknown-unknown.rustflags=[\"--cfg\", \"$3\"]")
  wasm-pack build crates/crossrank-wasm --target web --out-dir "../../$1" --profile "$2" "${extra[@]}"
  local wasm=$1/crossrank_wasm_bg.wasm
  echo "$1: before wasm-opt $(stat -c %s "$wasm") bytes raw, $(gzip -9c "$wasm" | wc -c) gzipped"
  # The features Rust's wasm32 target emits (bulk memory, nontrapping
  # float-to-int, sign-ext, multivalue, reference types) and our +simd128.
  "$WASM_OPT" -Os --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-multivalue --enable-reference-types \
    "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  echo "$1: $(stat -c %s "$wasm") bytes raw, $(gzip -9c "$wasm" | wc -c) bytes gzipped"
}

[ "${1:-}" = cpu ] || build npm/pkg wasm-release
build npm/pkg-cpu wasm-slim crossrank_cpu_only
