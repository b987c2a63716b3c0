#!/usr/bin/env bash
# Which BM25 library for `crossrank eval --first-stage bm25`: tantivy (what
# crossrank uses, src/eval/bm25.rs) vs the `bm25` crate, side by side on the
# man-page benchmark (benches/manpages/make_dataset.py), at 1x and REPEAT x
# the corpus (copies with new ids: speed and memory only). Peak memory is
# each process's max RSS, corpus texts included in both.
#   benches/bm25/run.sh [DATASET] [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET=${1:-benches/models/manpages-beir}
REPEAT=${2:-50}
SPLIT=test
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}
# The workspace's dev profile (dependencies, tantivy included, at
# opt-level 2; see Cargo.toml): `-p` or `--release` would change feature
# unification and rebuild Burn. The bm25 crate gets its release profile
# (opt-level 3): if anything, this favours it.
cargo build -q --workspace
cargo build -q --release --manifest-path benches/bm25/crate-bm25/Cargo.toml
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for n in 1 "$REPEAT"; do
  echo "== corpus x$n"
  /usr/bin/time -f 'tantivy peak RSS %M KB' "$CARGO_TARGET_DIR/debug/first-stage-bench" tantivy "$DATASET" $SPLIT "$n" "$OUT/tantivy.trec"
  /usr/bin/time -f 'bm25 crate peak RSS %M KB' "$CARGO_TARGET_DIR/release/crate-bm25-bench" "$DATASET" $SPLIT "$n" "$OUT/bm25crate.trec"
  if [ "$n" = 1 ]; then
    echo -n "bm25 crate quality: "
    "$CARGO_TARGET_DIR/debug/first-stage-bench" eval "$DATASET" $SPLIT "$OUT/bm25crate.trec"
  fi
done
