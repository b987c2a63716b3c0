#!/usr/bin/env bash
# Long fuzzing runs (not in CI; CI keeps a 30-second smoke run of each
# target in crates/crossrank/tests/fuzz_smoke.rs). Every target is one input
# path of the loader, in crossrank::fuzz: safetensors (plain and quantized
# weights), config (config.json), shard_index (model.safetensors.index.json),
# tokenizer (tokenizer.json), jsonl (the CLI's inputs).
#
#   scripts/fuzz.sh [MINUTES]              the stable mutation fuzzer, MINUTES per target (default 10)
#   scripts/fuzz.sh --libfuzzer [MINUTES]  cargo-fuzz (coverage-guided; needs a nightly toolchain and
#                                          `cargo install cargo-fuzz`; builds everything with sanitizers)
#
# Prints execs and crashes per target; a crash leaves its input in
# $CARGO_TARGET_DIR/tmp/fuzz-smoke-crash-<target>.bin (or fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
TARGETS=(safetensors config shard_index tokenizer jsonl)

if [[ "${1:-}" == "--libfuzzer" ]]; then
  minutes="${2:-10}"
  for t in "${TARGETS[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    case "$t" in
      config) cp tests/fixtures/*/config.json "$corpus/" 2>/dev/null || true
              for m in tests/fixtures/*/; do cp "$m/config.json" "$corpus/$(basename "$m").json"; done ;;
      shard_index) cp tests/fixtures/bert-tiny/model.safetensors.index.json "$corpus/" ;;
      tokenizer) cp tests/fixtures/bert-tiny/tokenizer.json "$corpus/bert.json" ;;
      jsonl) printf '{"query": "q", "passage": "p"}\n"text"\n{"text": "t"}\n' > "$corpus/seed.jsonl" ;;
      safetensors) python3 - "$corpus/seed.safetensors" <<'PY'
import json, struct, sys
data = struct.pack('<6f', 1, -2, .5, 3, 4, 5) + struct.pack('<4I', 1, 2, 3, 4) + struct.pack('<2e', .01, .02)
header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "w.q8": {"dtype": "U32", "shape": [2, 2], "data_offsets": [24, 40]},
          "w.qscale": {"dtype": "F16", "shape": [2, 1], "data_offsets": [40, 44]}}
h = json.dumps(header).encode()
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + data)
PY
      ;;
    esac
    echo "== $t: $minutes min (libFuzzer)"
    (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time=$((minutes * 60)) -max_len=1048576 -rss_limit_mb=4096 2>&1 | grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs|SUMMARY|crash-" || true)
  done
  exit 0
fi

minutes="${1:-10}"
for t in "${TARGETS[@]}"; do
  echo "== $t: $minutes min (stable mutation fuzzer)"
  CROSSRANK_FUZZ_SEED="${CROSSRANK_FUZZ_SEED:-random}" CROSSRANK_FUZZ_SECS=$((minutes * 60)) cargo test --workspace --test fuzz_smoke -- --exact "fuzz_$t" --nocapture 2>&1 | grep -E "^fuzz |panicked|test result"
done
