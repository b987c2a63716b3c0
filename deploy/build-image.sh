#!/usr/bin/env bash
# Build the crossrank image from a local release build, without a registry:
# the binary and the shared libraries it loads (ldd) staged into
# deploy/.image/, then `FROM scratch` (deploy/Containerfile.local) with
# buildah, or podman. Usage: deploy/build-image.sh [TAG]   (default crossrank:0.1.0)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-crossrank:0.1.0}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
cargo build --release -p crossrank-cli
bin="$CARGO_TARGET_DIR/release/crossrank"
stage=deploy/.image
rm -rf "$stage"
mkdir -p "$stage/usr/local/bin" "$stage/cache" "$stage/tmp"
cp "$bin" "$stage/usr/local/bin/crossrank"
ldd "$bin" | awk '/=> \//{print $3} /ld-linux/{print $1}' | while read -r lib; do
  cp -L --parents "$lib" "$stage/"
done
chmod 1777 "$stage/tmp" "$stage/cache"
if command -v buildah >/dev/null; then
  buildah bud --layers=false -f deploy/Containerfile.local -t "$tag" deploy
elif command -v podman >/dev/null; then
  podman build -f deploy/Containerfile.local -t "$tag" deploy
else
  echo "neither buildah nor podman: apt-get install buildah" >&2
  exit 1
fi
echo "built $tag ($(du -sh "$stage" | cut -f1) staged)"
