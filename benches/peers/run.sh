#!/usr/bin/env bash
# crossrank and its peers side by side, same model, same pairs, one run:
#   FlagEmbedding FlagReranker (PyTorch CPU fp32), ONNX Runtime CPU fp32 and
#   dynamic int8, crossrank CPU (f32, q8, q4).
# Installs the peers' Python environment on first use (never in CI):
#   CROSSRANK_PEERS_PY=/path/to/python to use an existing one.
#   PAIRS=64 WORDS=60-180 ITERS=3 ./benches/peers/run.sh      (long inputs: WORDS=300-340)
#   ROUNDS=3 DTYPES=q8,int8 PEERS=ort-int8 ...: alternate, report medians
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
# ROUNDS=N alternates crossrank and the peers N times and reports each
# system's median: on shared 2-core machines one system's pairs/s moves by
# up to 15% between runs of the same binary, more than the ratios compared.
# PEERS=flag,ort-fp32,ort-int8 (peers.py --only) narrows the peers.
ROUNDS="${ROUNDS:-1}"
rm -f "$OUT"/crossrank-*.json "$OUT"/peers-*.json
for r in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" = 1 ] || echo "== round $r of $ROUNDS"
  "$BIN" \
    --devices cpu --dtypes "${DTYPES:-f32,q8,q4}" --iters "$ITERS" --pairs "$PAIRS" --passage-words "$WORDS" \
    --dump-pairs "$OUT/pairs.json" --json "$OUT/crossrank-$r.json"
  "$PY" benches/peers/peers.py --model benches/models/bge-reranker-base-random --pairs "$OUT/pairs.json" \
    --iters "$ITERS" --threads "$(nproc)" --only "${PEERS:-flag,ort-fp32,ort-int8}" --json "$OUT/peers-$r.json"
done
"$PY" - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = {}
for r in range(1, rounds + 1):
    for f in (f"{out}/crossrank-{r}.json", f"{out}/peers-{r}.json"):
        for row in json.load(open(f)):
            runs.setdefault(row["system"], []).append(row["pairs_per_s"])
med = {k: statistics.median(v) for k, v in runs.items()}
json.dump([{"system": k, "pairs_per_s": med[k], "runs": runs[k]} for k in runs], open(f"{out}/summary.json", "w"), indent=1)
cols = [k for k in med if k.startswith("FlagEmbedding")][:1] + [k for k in med if k.startswith("ONNX Runtime") and k.endswith("int8")][:1]
head = "pairs/s" if rounds == 1 else f"pairs/s (median of {rounds} rounds; range)"
print(f"\n| system | {head} | " + " | ".join(f"vs {c}" for c in cols) + " |\n|---|---|" + "---|" * len(cols))
for k in sorted(med, key=lambda k: -med[k]):
    spread = "" if rounds == 1 else f" ({min(runs[k]):.2f}–{max(runs[k]):.2f})"
    print(f"| {k} | {med[k]:.2f}{spread} | " + " | ".join(f"{med[k] / med[c]:.2f}x" for c in cols) + " |")
PY
