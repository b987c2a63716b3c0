#!/usr/bin/env bash
# The main job: rerank a few documents with crossrank. With no argument it
# uses the committed random-init XLM-R fixture (scores are meaningless but
# computed exactly as FlagEmbedding would); pass a checkpoint directory or a
# Hugging Face repo id (e.g. BAAI/bge-reranker-base) for a real model.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
MODEL="${1:-tests/fixtures/xlmr-tiny}"
DEVICE="${DEVICE:-auto}"
# Mesa's Vulkan driver prints an error when XDG_RUNTIME_DIR is unset (as in
# containers); the adapter probe of `--device auto` loads it.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# --workspace: the same feature set as the tests, so the build is shared.
cargo build -q --workspace --bins --tests
BIN="$CARGO_TARGET_DIR/debug/crossrank"
printf '%s\n' \
  "The giant panda is a bear species endemic to China." \
  "Paris is the capital and largest city of France." \
  "Pandas eat bamboo almost exclusively." \
  "The stock market closed higher on Friday." |
  "$BIN" rerank --model "$MODEL" --device "$DEVICE" --query "what do pandas eat?" --top-k 3 -v
