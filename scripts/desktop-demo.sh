#!/usr/bin/env bash
# The desktop app (examples/desktop) on real text: the man-page benchmark's
# 1100 pages as a folder of notes, the reranker scripts/train-reranker.sh
# trains (the bert-tiny fixture when it has not been trained), one query,
# `--device auto` (the window's GPU when it is a hardware one; the CPU on a
# machine with only a software adapter): docs/desktop.png, docs/desktop.md's
# screenshot. Then memory: the same model over tests/fixtures/desktop-notes
# with the models on the window's own GPU device (shared), on a second GPU
# device (wgpu) and on the CPU — the whole app's resident and peak memory.
#
#   ./scripts/desktop-demo.sh ["a query"]
#
# Runs under a private Xvfb unless DISPLAY is set (Mesa lavapipe here: a
# software Vulkan device, functional rather than fast).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
QUERY="${1:-wait for a child process to change state}"

cargo build -q --release --workspace --bins
APP="$CARGO_TARGET_DIR/release/crossrank-desktop"
DEMO="$CARGO_TARGET_DIR/desktop-demo"
[ -f benches/models/manpages-beir/corpus.jsonl ] || python3 benches/manpages/make_dataset.py --out benches/models/manpages-beir
if [ ! -d "$DEMO/manpages" ]; then
  # One file per page, a blank line before each section heading (the
  # corpus keeps a page on one line), so passages follow sections.
  python3 - "$DEMO/manpages" <<'EOF'
import json, os, re, sys
out = sys.argv[1]
heads = r"(SYNOPSIS|DESCRIPTION|OPTIONS|RETURN VALUE|ERRORS|EXIT STATUS|ENVIRONMENT|FILES|NOTES|BUGS|EXAMPLES?|SEE ALSO|STANDARDS|HISTORY|VERSIONS|CONFORMING TO|ATTRIBUTES|CAVEATS)"
for line in open("benches/models/manpages-beir/corpus.jsonl"):
    d = json.loads(line)
    name, _, section = d["_id"].rpartition(".")
    os.makedirs(os.path.join(out, "man" + section), exist_ok=True)
    text = re.sub(r" " + heads + r" ", lambda m: "\n\n" + m.group(1) + "\n", " " + d["text"]).strip()
    with open(os.path.join(out, "man" + section, name + ".txt"), "w") as f:
        f.write("# " + d["title"] + "\n\n" + text + "\n")
EOF
fi
MODEL=benches/models/minilm-manpages-reranker
[ -f "$MODEL/model.safetensors" ] || MODEL=tests/fixtures/bert-tiny

XVFB_PID=
if [ -z "${DISPLAY:-}" ]; then
  exec 3< <(Xvfb -displayfd 1 -screen 0 1280x900x24 -nolisten tcp 2>/dev/null & echo "pid $!")
  read -r _ XVFB_PID <&3
  read -r N <&3
  export DISPLAY=":$N"
  trap 'kill $XVFB_PID 2>/dev/null || true' EXIT
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
unset WAYLAND_DISPLAY

report() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["memory_mib"] or {}
first = r["results"][0]["file"] if r["results"] else "-"
print(f'{sys.argv[2]:<8} {r["search_ms"]:9.0f} {m.get("rss", 0):8.0f} {m.get("peak", 0):9.0f}  {first}  ({r["device"][:70]})')
EOF
}
printf '%-8s %9s %8s %9s  %s\n' device search_ms rss_MiB peak_MiB "first result"
"$APP" --folder "$DEMO/manpages" --reranker "$MODEL" --device auto --self-test "$QUERY" \
  --screenshot "$DEMO/demo.png" --report "$DEMO/demo.json" --timeout 900
cp "$DEMO/demo.png" docs/desktop.png
report "$DEMO/demo.json" auto
NOTES_QUERY="how do I keep bread dough from sticking"
echo "memory: tests/fixtures/desktop-notes, \"$NOTES_QUERY\""
for dev in shared wgpu cpu; do
  "$APP" --folder tests/fixtures/desktop-notes --reranker "$MODEL" --device "$dev" \
    --self-test "$NOTES_QUERY" --screenshot "$DEMO/$dev.png" --report "$DEMO/$dev.json" --timeout 900
  report "$DEMO/$dev.json" "$dev"
done
echo "screenshot: docs/desktop.png; reports: $DEMO/*.json"
