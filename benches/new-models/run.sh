#!/usr/bin/env bash
# Qwen3-Reranker-0.6B and ModernBERT-base shapes (random init, generated
# under benches/models/ by new-models-bench) against their PyTorch peers in
# one run, one process per row (each row's peak RSS is its own):
#   - Qwen3-Reranker-0.6B: crossrank CPU f32 / q8 / q4 vs transformers
#     running the model card's code (fp32), 16 pairs of 60-180-word
#     passages, batch 8: load time, weights file, RSS after load, peak
#     RSS, pairs/s; then its wasm memory in Node at q8 and q4 (the slim CPU
#     .wasm; needs ./scripts/build-wasm.sh), which must fit wasm32's 4 GB.
#   - ModernBERT-base vs FlagEmbedding's FlagReranker (fp32) and vs
#     crossrank's BERT-base at the same length, 512 and 2048 tokens (BERT's
#     positions widened to 2048 for the comparison).
# Needs the reference environment (tests/fixtures/requirements.txt):
#   CROSSRANK_REF_PY=/path/to/python (default ~/.cache/crossrank/refenv/bin/python)
#   PAIRS=16 LONG_PAIRS=4 ./benches/new-models/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target-bench}"
PY="${CROSSRANK_REF_PY:-$HOME/.cache/crossrank/refenv/bin/python}"
PAIRS="${PAIRS:-16}" LONG_PAIRS="${LONG_PAIRS:-4}"
cargo build -q --release -p crossrank-benches --bin new-models-bench
B="$CARGO_TARGET_DIR/release/new-models-bench"
OUT=benches/models/new-models-run
mkdir -p "$OUT"
rows=()
run() { # NAME CMD...
  local name=$1; shift
  "$@" --json "$OUT/$name.json" >/dev/null
  rows+=("$OUT/$name.json")
}
lscpu | grep -E "Model name" | sed 's/  */ /g'
# Qwen3-Reranker-0.6B
for d in f32 q8 q4; do run "qwen3-$d" "$B" --model qwen3 --dtype "$d" --pairs "$PAIRS" --batch 8 --dump-pairs "$OUT/qwen3-pairs.json"; done
run qwen3-torch "$PY" benches/new-models/peers.py --model qwen3 --dir benches/models/qwen3-reranker-0.6b-shape --pairs "$OUT/qwen3-pairs.json" --batch 8
# ModernBERT-base and BERT-base at 512 and 2048 tokens
for t in 512 2048; do
  n=$([ "$t" = 512 ] && echo "$PAIRS" || echo "$LONG_PAIRS"); bs=$([ "$t" = 512 ] && echo 8 || echo 2)
  run "modernbert-$t" "$B" --model modernbert --tokens "$t" --pairs "$n" --batch "$bs" --dump-pairs "$OUT/pairs-$t.json"
  run "modernbert-$t-q8" "$B" --model modernbert --dtype q8 --tokens "$t" --pairs "$n" --batch "$bs"
  run "bert-$t" "$B" --model bert --tokens "$t" --pairs "$n" --batch "$bs"
  run "modernbert-$t-torch" "$PY" benches/new-models/peers.py --model modernbert --dir benches/models/modernbert-base-shape \
    --pairs "$OUT/pairs-$t.json" --tokens "$t" --batch "$bs"
done
"$PY" - "${rows[@]}" <<'PY'
import json, sys
rows = [json.load(open(p)) | {"file": p} for p in sys.argv[1:]]
q = [r for r in rows if r["model"] == "qwen3"]
base = next(r for r in q if "transformers" in r["system"])["pairs_per_s"]
print(f"\n### Qwen3-Reranker-0.6B shape, {q[0]['pairs']} pairs of {q[0]['tokens_per_pair']:.0f} tokens, batch 8")
print("| system | weights file GB | load s | RSS after load GB | peak RSS GB | pairs/s | vs transformers |\n|---|---|---|---|---|---|---|")
for r in q:
    print(f"| {r['system']} | {r['file_gb']:.2f} | {r['load_s']:.1f} | {r['rss_after_load_gb']:.2f} | {r['peak_rss_gb']:.2f} | {r['pairs_per_s']:.3f} | {r['pairs_per_s'] / base:.2f}x |")
for t in (512, 2048):
    e = [r for r in rows if r["model"] in ("modernbert", "bert") and (r["tokens_per_pair"] == t)]
    if not e:
        continue
    base = next(r for r in e if "FlagEmbedding" in r["system"])["pairs_per_s"]
    print(f"\n### {t} tokens per pair, {e[0]['pairs']} pairs")
    print("| model | system | peak RSS GB | pairs/s | vs FlagReranker (ModernBERT) |\n|---|---|---|---|---|")
    for r in e:
        name = "ModernBERT-base" if r["model"] == "modernbert" else "BERT-base"
        print(f"| {name} | {r['system']} | {r['peak_rss_gb']:.2f} | {r['pairs_per_s']:.3f} | {r['pairs_per_s'] / base:.2f}x |")
PY
if [ -f npm/pkg-cpu/crossrank_wasm_bg.wasm ]; then
  # One pair of 128 tokens: a 0.6B model on one wasm thread takes ~3.5 min for 2 x 512.
  echo; echo "### Qwen3-Reranker-0.6B shape in Node (slim CPU .wasm), 1 pair of 128 tokens"
  Q="$PWD/benches/models/qwen3-reranker-0.6b-shape"
  PAIRS=1 BATCH=1 MAX_LENGTH=128 node benches/edge/memory.mjs "$Q:q8" "$Q:q4"
fi
