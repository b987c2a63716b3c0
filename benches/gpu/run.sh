#!/usr/bin/env bash
# The GPU run, for a session that is lent an NVIDIA H100/H200 (the `device`
# tool): crossrank on wgpu (Vulkan, WGSL shaders) f32 / f16 / q8 / q4 vs the
# CPU backend, on the bge-reranker-base-shaped random checkpoint of
# benches/peers/run.sh, against PyTorch on CUDA (fp16 and fp32) doing
# FlagReranker.compute_score's steps on the same pairs, and ONNX Runtime CPU
# (fp32, int8) on the same host. The device machine has torch + transformers +
# onnxruntime but no FlagEmbedding and no package registry, so the PyTorch peer
# is transformers direct (peers.py --only hf-cuda-*), the same computation.
#
# The binary is built here (no crate registry there) and carried:
#   ./benches/gpu/run.sh --prepare        # release build, stripped + gzipped into benches/gpu/bin/ (git-ignored)
#   (once) the Vulkan/GL loaders into .gl/ as /work/.library/device/README.md says (git-ignored)
# then, with the device tool, one call well inside the time left:
#   run(command="./benches/gpu/run.sh", carry=["benches/gpu/bin", ".gl"], timeout_s=500)
# Results: $OUT/summary.md (tables + score agreement), $OUT/log.txt,
# $OUT/results.tar.gz (every JSON). Sizes can be lowered for a try without a
# GPU: SHORT=8 BIG=16 LONG=8 BIG_BATCH=8 ./benches/gpu/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=benches/gpu/bin/encoder-bench
if [ "${1:-}" = --prepare ]; then
  set -e
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
  cargo build -q --release --workspace --bins
  mkdir -p benches/gpu/bin
  strip -o "$BIN" "$CARGO_TARGET_DIR/release/encoder-bench"
  gzip -9f "$BIN"
  ls -la "$BIN.gz"
  exit 0
fi
OUT="${OUT:-$(mktemp -d)}"
W=$(mktemp -d)
SHORT=${SHORT:-64} BIG=${BIG:-512} LONG=${LONG:-128} BIG_BATCH=${BIG_BATCH:-128}
DEVICES=${DEVICES:-wgpu,cpu}
HF_DEVICE=${HF_DEVICE:-cuda:0}
exec > >(tee "$OUT/log.txt") 2>&1
# The Vulkan loader (libvulkan1) travels in .gl/; the driver's ICD is NVIDIA's.
if ls .gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -x "$BIN" ] || { gunzip -c "$BIN.gz" > "$BIN" && chmod +x "$BIN"; }
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null || true
nproc; date -u
# Every step gets its own limit and all of them a common deadline (BUDGET s),
# so the summary is always written within the device call.
BUDGET=${BUDGET:-480}
DEADLINE=$((SECONDS + BUDGET))
step() { # TITLE LIMIT_S CMD...
  local title=$1 limit=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  [ "$limit" -le "$left" ] || limit=$left
  echo; echo "## $title"
  if [ "$limit" -lt 10 ]; then echo "(skipped: the deadline is near)"; return; fi
  local t0=$SECONDS
  timeout "$limit" "$@"
  echo "(exit $?, $((SECONDS - t0)) s)"
}
M=benches/models/bge-reranker-base-random
PY=${PYTHON:-python3}
HAS_TORCH=0
$PY -c "import torch, transformers; assert '$HF_DEVICE' == 'cpu' or torch.cuda.is_available()" 2>/dev/null && HAS_TORCH=1
peer() { # WORK BATCH
  if [ $HAS_TORCH = 1 ]; then
    step "PyTorch peer, $1" 60 $PY benches/peers/peers.py --model $M --pairs "$W/pairs-$1.json" --only hf-cuda-fp16,hf-cuda-fp32 --hf-device "$HF_DEVICE" --batch "$2" --json "$W/peer-$1.json"
  else
    echo "no torch + transformers with CUDA here: the PyTorch peer was not run"
  fi
}
# 1. The issue-6 workload (encoder-bench writes the random-init checkpoint and
#    its q8/q4 copies on first use).
step "short: $SHORT pairs, 60-180 words, batch 32, wgpu" 150 "$BIN" --devices wgpu --dtypes f32,f16,q8,q4 --iters 3 --pairs "$SHORT" \
  --dump-pairs "$W/pairs-short.json" --json "$W/crossrank-short.json"
# q8 through the old path (weights dequantized to f32 every pass) beside the
# fused quantized matmul above.
step "short: q8 on wgpu, per-pass dequantization (CROSSRANK_GPU_QUANT=dequant)" 60 env CROSSRANK_GPU_QUANT=dequant "$BIN" --devices wgpu --dtypes q8 --iters 3 --pairs "$SHORT" \
  --json "$W/crossrank-dequant-short.json"
peer short 32
step "short: $SHORT pairs, cpu ($(nproc) threads)" 60 "$BIN" --devices cpu --dtypes f32,q8 --iters 2 --pairs "$SHORT" \
  --json "$W/crossrank-cpu-short.json"
# 2. A GPU-sized batch: more pairs, batch $BIG_BATCH.
step "big: $BIG pairs, batch $BIG_BATCH, wgpu" 90 "$BIN" --devices wgpu --dtypes f32,f16,q8,q4 --iters 3 --pairs "$BIG" --batch "$BIG_BATCH" \
  --dump-pairs "$W/pairs-big.json" --json "$W/crossrank-big.json"
peer big "$BIG_BATCH"
# 3. Long inputs (~430 tokens).
step "long: $LONG pairs, 300-340 words, batch 32, wgpu" 90 "$BIN" --devices wgpu --dtypes f32,f16,q8,q4 --iters 3 --pairs "$LONG" --passage-words 300-340 \
  --dump-pairs "$W/pairs-long.json" --json "$W/crossrank-long.json"
peer long 32
if $PY -c "import onnxruntime, torch, transformers" 2>/dev/null; then
  step "ONNX Runtime CPU, short" 80 $PY benches/peers/peers.py --model $M --pairs "$W/pairs-short.json" --only ort-fp32,ort-int8 --batch 32 --json "$W/ort-short.json"
fi
$PY benches/gpu/summary.py "$W" | tee "$OUT/summary.md"
tar -C "$W" -czf "$OUT/results.tar.gz" $(cd "$W" && ls *.json)
