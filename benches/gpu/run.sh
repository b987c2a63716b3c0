#!/usr/bin/env bash
# Issue 6's GPU run, for a session that is lent an NVIDIA H100/H200 (the
# `device` tool): crossrank on wgpu (Vulkan) f32 and f16 vs the CPU backend,
# the same bge-reranker-base-shaped workload as benches/peers/run.sh, and
# FlagEmbedding on PyTorch CUDA fp16 where that machine has torch with CUDA
# and FlagEmbedding (it has no internet: nothing can be installed there).
#
# Not yet run: no session so far was lent a device. The device machine has no
# crate registry either, so the binary is built here and carried:
#   ./benches/gpu/run.sh --prepare        # release build, stripped + gzipped into benches/gpu/bin/ (~18 MB, git-ignored)
# then, with the device tool, one call well inside the time left:
#   run(command="./benches/gpu/run.sh", carry=["benches/gpu/bin"], timeout_s=540)
# Results land in $OUT (the tool brings them back) and on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=benches/gpu/bin/encoder-bench
if [ "${1:-}" = --prepare ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
  cargo build -q --release --workspace --bins
  mkdir -p benches/gpu/bin
  strip -o "$BIN" "$CARGO_TARGET_DIR/release/encoder-bench"
  gzip -9f "$BIN"
  ls -la "$BIN.gz"
  exit 0
fi
OUT="${OUT:-$(mktemp -d)}"
[ -x "$BIN" ] || { gunzip -c "$BIN.gz" > "$BIN" && chmod +x "$BIN"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# encoder-bench writes the random-init checkpoint on first use (benches/models/).
timeout 240 "$BIN" --devices wgpu,cpu --dtypes f32,f16 --iters 3 --pairs 64 \
  --dump-pairs "$OUT/pairs-64.json" --json "$OUT/crossrank-64.json" | tee "$OUT/crossrank-64.md" || true
timeout 150 "$BIN" --devices wgpu --dtypes f32,f16 --iters 3 --pairs 32 --passage-words 300-340 \
  --dump-pairs "$OUT/pairs-32-long.json" --json "$OUT/crossrank-32-long.json" | tee "$OUT/crossrank-32-long.md" || true
if python3 -c "import torch, FlagEmbedding; assert torch.cuda.is_available()" 2>/dev/null; then
  for p in pairs-64 pairs-32-long; do
    timeout 90 python3 benches/peers/peers.py --model benches/models/bge-reranker-base-random --pairs "$OUT/$p.json" \
      --only flag --cuda-fp16 --iters 3 --json "$OUT/flagembedding-cuda-fp16-$p.json" || true
  done
else
  echo "no torch + FlagEmbedding with CUDA on this machine: the PyTorch fp16 peer was not run" | tee "$OUT/no-pytorch.txt"
fi
