#!/usr/bin/env bash
# Build the npm package's three .wasm builds from crates/crossrank-wasm:
#   npm/pkg      WebGPU + CPU (cargo profile `wasm-release`)
#   npm/pkg-cpu  slim, CPU only (cfg `crossrank_cpu_only`, profile `wasm-slim`)
#   npm/pkg-mt   CPU only with threads (profile `wasm-mt`): shared memory and
#                rayon on Web Workers, for cross-origin isolated pages. Wasm
#                threads need std rebuilt with atomics (`-Z build-std`, the
#                project's one unstable flag). It runs on the same stable
#                toolchain as everything else, with RUSTC_BOOTSTRAP=1 for
#                this one build, rather than on a nightly: the machines this
#                project builds on can add rustup components (rust-src) but
#                not always other toolchains, and one pinned compiler for all
#                builds keeps them reproducible. CROSSRANK_NIGHTLY=<toolchain>
#                builds it on a nightly instead.
# all opt-level s, LTO, one codegen unit, then npm binaryen's wasm-opt
# (Debian's wasm-opt 108 produces a .wasm that fails to load). Prints each
# size raw and gzipped. `./scripts/build-wasm.sh cpu|mt|full` builds one.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
(cd tests/browser && npm ci --silent --no-audit --no-fund)
WASM_OPT=tests/browser/node_modules/.bin/wasm-opt

build() { # OUT_DIR PROFILE [EXTRA_RUSTFLAGS...]
  local out=$1 profile=$2 toolchain= zflags=()
  shift 2
  # `--config` arrays add to .cargo/config.toml's rustflags (RUSTFLAGS would
  # replace them: the getrandom backend and +simd128).
  local extra=()
  if [ $# -gt 0 ]; then
    local list
    list=$(printf '"%s", ' "$@")
    extra=(--config "target.wasm32-unknown-unknown.rustflags=[${list%, }]")
  fi
  local bootstrap=
  if [ "$profile" = wasm-mt ]; then
    toolchain=${CROSSRANK_NIGHTLY:-}
    [ -n "$toolchain" ] || bootstrap=1
    zflags=(-Z build-std=panic_abort,std)
  fi
  # shellcheck disable=SC2068
  env ${toolchain:+RUSTUP_TOOLCHAIN=$toolchain} ${bootstrap:+RUSTC_BOOTSTRAP=1} wasm-pack build crates/crossrank-wasm --target web --out-dir "../../$out" --profile "$profile" -- ${zflags[@]} "${extra[@]}"
  # wasm-pack's `*` .gitignore would also hide pkg-mt/snippets/ from
  # `npm pack`; the repository's .gitignore already covers npm/pkg*/.
  rm -f "$out/.gitignore"
  local wasm=$out/crossrank_wasm_bg.wasm
  echo "$out: before wasm-opt $(stat -c %s "$wasm") bytes raw, $(gzip -9c "$wasm" | wc -c) gzipped"
  # The features Rust's wasm32 target emits (bulk memory, nontrapping
  # float-to-int, sign-ext, multivalue, reference types) and our +simd128
  # (+ threads for the shared-memory build).
  "$WASM_OPT" -Os --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-multivalue --enable-reference-types --enable-threads \
    "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  echo "$out: $(stat -c %s "$wasm") bytes raw, $(gzip -9c "$wasm" | wc -c) bytes gzipped"
}

# The package's license files are the repository's (npm packs the copies).
cp LICENSE-MIT LICENSE-APACHE npm/

what=${1:-all}
case "$what" in all | full | cpu | mt) ;; *) echo "usage: $0 [all|full|cpu|mt]" >&2; exit 2 ;; esac
[[ $what != all && $what != full ]] || build npm/pkg wasm-release
[[ $what != all && $what != cpu ]] || build npm/pkg-cpu wasm-slim --cfg crossrank_cpu_only
if [[ $what == all || $what == mt ]]; then
  rustup component add ${CROSSRANK_NIGHTLY:+--toolchain "$CROSSRANK_NIGHTLY"} rust-src >/dev/null
  # rustc stopped deriving the linker's thread flags from `+atomics`
  # (rust-lang/rust#147225): a shared, imported memory (wasm-bindgen-rayon
  # hands the same memory to every worker), with its maximum declared (4 GiB,
  # wasm32's limit: address space reserved, not memory used, as the
  # single-threaded builds have), and the TLS symbols wasm-bindgen's thread
  # transform needs (`__heap_base` for the thread ids).
  build npm/pkg-mt wasm-mt --cfg crossrank_cpu_only -C target-feature=+atomics,+bulk-memory,+mutable-globals \
    -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
    -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align \
    -C link-arg=--export=__tls_base -C link-arg=--export=__heap_base
  # wasm-bindgen-rayon 1.3's pool workers initialise the glue with the old
  # positional arguments, which wasm-bindgen 0.2.130 still takes but warns
  # about on the console once per worker: pass the one object it wants.
  helper=$(echo npm/pkg-mt/snippets/wasm-bindgen-rayon-*/src/workerHelpers.no-bundler.js)
  grep -q 'pkg.default(data.module, data.memory)' "$helper" || { echo "$helper: unexpected contents" >&2; exit 1; }
  sed -i 's/pkg.default(data.module, data.memory)/pkg.default({ module_or_path: data.module, memory: data.memory })/' "$helper"
  # A module without a shared memory would start a pool whose workers each
  # get their own memory: refuse it here rather than in a visitor's browser.
  node -e "const m = new WebAssembly.Module(require('fs').readFileSync('npm/pkg-mt/crossrank_wasm_bg.wasm'));
    if (!WebAssembly.Module.imports(m).some((i) => i.kind === 'memory')) { console.error('npm/pkg-mt: memory is not imported (shared)'); process.exit(1); }"
fi
