#!/usr/bin/env bash
# Build the integer kernels alone for foreign targets and run them under
# emulators (see Cargo.toml): wasm32-wasip1 +simd128 under Node's WASI, and
# aarch64 under qemu-user on three CPU models — `max` (i8mm and the dot
# product: the i8mm kernel is picked), `neoverse-n1` (the dot product, no
# i8mm) and `cortex-a72` (NEON only: smlal is picked). Needs: rustup
# targets wasm32-wasip1, aarch64-unknown-linux-gnu; Debian qemu-user,
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
missing() { echo "int8-cross: $1 missing ($2)" >&2; exit 1; }
rustup target list --installed | grep -q wasm32-wasip1 || missing wasm32-wasip1 "rustup target add wasm32-wasip1"
rustup target list --installed | grep -q aarch64-unknown-linux-gnu || missing aarch64-unknown-linux-gnu "rustup target add aarch64-unknown-linux-gnu"
command -v qemu-aarch64 >/dev/null || missing qemu-aarch64 "apt-get install qemu-user"
command -v aarch64-linux-gnu-gcc >/dev/null || missing aarch64-linux-gnu-gcc "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross"

echo "== int8 kernels, wasm32 SIMD128 (Node WASI)"
CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128" cargo build -q --release --target wasm32-wasip1
# Picked: simd128 (Path::best); `off` (dequantize + f32 GEMM) when asked.
wasm="$CARGO_TARGET_DIR/wasm32-wasip1/release/int8-cross.wasm"
node --no-warnings run.mjs "$wasm" simd128 simd128
CROSSRANK_INT8=off node --no-warnings run.mjs "$wasm" off simd128

echo "== int8 kernels, aarch64 (qemu-user)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc cargo build -q --release --target aarch64-unknown-linux-gnu
bin="$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release/int8-cross"
# max: i8mm and the dot product (i8mm picked); Neoverse N1: the dot
# product, no i8mm; Cortex-A72: neither (smlal).
qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu "$bin" i8mm i8mm dotprod neon
qemu-aarch64 -cpu neoverse-n1 -L /usr/aarch64-linux-gnu "$bin" dotprod dotprod neon
qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu "$bin" neon neon
