#!/usr/bin/env bash
# The main job: rerank a few documents with crossrank. With no argument it
# takes, in order, the first it can have:
#   1. a real small reranker from the Hugging Face Hub
#      (cross-encoder/ms-marco-MiniLM-L6-v2, ~90 MB once, then cached) when
#      the Hub (or HF_ENDPOINT) answers within a few seconds;
#   2. the MiniLM reranker fine-tuned here on the man pages
#      (scripts/train-reranker.sh makes benches/models/minilm-manpages-reranker);
#   3. the committed random-init XLM-R fixture (scores are meaningless but
#      computed exactly as FlagEmbedding would)
# and says which and why. Pass a checkpoint directory or a repo id (e.g.
# BAAI/bge-reranker-base) for another model.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
TRAINED=benches/models/minilm-manpages-reranker
HUB_MODEL=cross-encoder/ms-marco-MiniLM-L6-v2
ENDPOINT="${HF_ENDPOINT:-https://huggingface.co}"
if [ $# -gt 0 ]; then
  MODEL="$1"
elif curl -fsS --max-time 5 -o /dev/null "$ENDPOINT/api/models/$HUB_MODEL" 2>/dev/null; then
  MODEL="$HUB_MODEL"
  echo "(using $HUB_MODEL from $ENDPOINT: a real reranker, downloaded once into the Hugging Face cache)" >&2
elif [ -f "$TRAINED/model.safetensors" ]; then
  MODEL="$TRAINED"
  echo "($ENDPOINT did not answer within 5 s: using the MiniLM reranker trained here on the man pages)" >&2
else
  MODEL=tests/fixtures/xlmr-tiny
  echo "($ENDPOINT did not answer within 5 s and no trained model is here — ./scripts/train-reranker.sh makes one in ~25 min: using the random-init fixture)" >&2
fi
DEVICE="${DEVICE:-auto}"
# Mesa's Vulkan driver prints an error when XDG_RUNTIME_DIR is unset (as in
# containers); the adapter probe of `--device auto` loads it.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# --workspace: the same feature set as the tests, so the build is shared.
cargo build -q --workspace --bins --tests
BIN="$CARGO_TARGET_DIR/debug/crossrank"
if [ "$MODEL" = "$TRAINED" ]; then
  # What it was trained for: a man page for a task (none of these pages'
  # descriptions is the query's wording).
  printf '%s\n' \
    "open(2) SYNOPSIS #include <fcntl.h> int open(const char *pathname, int flags); DESCRIPTION The open() system call opens the file specified by pathname. If the specified file does not exist, it may optionally be created by open()." \
    "fabs(3) SYNOPSIS #include <math.h> double fabs(double x); DESCRIPTION These functions return the absolute value of the floating-point number x." \
    "dup(2) SYNOPSIS #include <unistd.h> int dup(int oldfd); int dup2(int oldfd, int newfd); DESCRIPTION The dup() system call allocates a new file descriptor that refers to the same open file description as the descriptor oldfd." \
    "sleep(3) SYNOPSIS #include <unistd.h> unsigned int sleep(unsigned int seconds); DESCRIPTION sleep() causes the calling thread to sleep either until the number of real-time seconds specified in seconds have elapsed or until a signal arrives." \
    "close(2) SYNOPSIS #include <unistd.h> int close(int fd); DESCRIPTION close() closes a file descriptor, so that it no longer refers to any file and may be reused." |
    "$BIN" rerank --model "$MODEL" --device "$DEVICE" --query "make a copy of a file descriptor" --top-k 3 --max-length 192 -v
else
  printf '%s\n' \
    "The giant panda is a bear species endemic to China." \
    "Paris is the capital and largest city of France." \
    "Pandas eat bamboo almost exclusively." \
    "The stock market closed higher on Friday." |
    "$BIN" rerank --model "$MODEL" --device "$DEVICE" --query "what do pandas eat?" --top-k 3 -v
fi
