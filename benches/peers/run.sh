#!/usr/bin/env bash
# crossrank and its peers side by side, same model, same pairs, one run:
#   FlagEmbedding FlagReranker (PyTorch CPU fp32), ONNX Runtime CPU fp32 and
#   dynamic int8, crossrank CPU (f32, q8, q4).
# Installs the peers' Python environment on first use (never in CI):
#   CROSSRANK_PEERS_PY=/path/to/python to use an existing one.
#   PAIRS=64 WORDS=60-180 ITERS=3 ./benches/peers/run.sh      (long inputs: WORDS=300-340)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
PAIRS="${PAIRS:-64}" WORDS="${WORDS:-60-180}" ITERS="${ITERS:-3}" PROFILE="${PROFILE:-release}"
PY="${CROSSRANK_PEERS_PY:-$HOME/.cache/crossrank/peersenv/bin/python}"
if [ ! -x "$PY" ]; then
  python3 -m venv "$HOME/.cache/crossrank/peersenv"
  "$HOME/.cache/crossrank/peersenv/bin/pip" install -q -r benches/peers/requirements.txt
  PY="$HOME/.cache/crossrank/peersenv/bin/python"
fi
OUT=benches/models/run-$PAIRS-$WORDS
mkdir -p "$OUT"
# --workspace: the feature set of the test build, so nothing is rebuilt
# (building one package alone unifies features differently).
if [ "$PROFILE" = dev ]; then
  cargo build -q --workspace --bins --tests; BIN="$CARGO_TARGET_DIR/debug/encoder-bench"
else
  cargo build -q --workspace --bins --profile "$PROFILE"; BIN="$CARGO_TARGET_DIR/$PROFILE/encoder-bench"
fi
"$BIN" \
  --devices cpu --dtypes "${DTYPES:-f32,q8,q4}" --iters "$ITERS" --pairs "$PAIRS" --passage-words "$WORDS" \
  --dump-pairs "$OUT/pairs.json" --json "$OUT/crossrank.json"
"$PY" benches/peers/peers.py --model benches/models/bge-reranker-base-random --pairs "$OUT/pairs.json" \
  --iters "$ITERS" --threads "$(nproc)" --json "$OUT/peers.json"
"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
rows = json.load(open(f"{out}/crossrank.json")) + json.load(open(f"{out}/peers.json"))
seed = next(r for r in rows if r["system"].startswith("FlagEmbedding"))["pairs_per_s"]
print("\n| system | pairs/s | vs FlagEmbedding (PyTorch CPU fp32) |\n|---|---|---|")
for r in sorted(rows, key=lambda r: -r["pairs_per_s"]):
    print(f"| {r['system']} | {r['pairs_per_s']:.2f} | {r['pairs_per_s'] / seed:.2f}x |")
PY
