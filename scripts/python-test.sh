#!/usr/bin/env bash
# The Python package's tests (crates/crossrank-py/tests, pytest) against the
# extension module of the workspace build: `cargo build --workspace --lib`
# compiles it with the features every other crate unifies to, so the core
# and Burn are the ones `cargo test --workspace` already built (a separate
# `pip install ./crates/crossrank-py` resolves features for that crate
# alone and rebuilds them: scripts/python-wheel.sh does that, and checks
# the wheel). CROSSRANK_PY_RAY=1 also installs Ray and runs the Ray
# recipe's test. Usage: scripts/python-test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
venv="${CROSSRANK_PY_VENV:-$CARGO_TARGET_DIR/py-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest numpy
# The Ray recipe's test (tests/test_ray.py) runs where Ray is installed.
if [ "${CROSSRANK_PY_RAY:-0}" = 1 ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "ray[data]" pandas pyarrow
fi
cargo build -q --workspace --lib
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r crates/crossrank-py/python/crossrank "$stage/"
cp "$CARGO_TARGET_DIR/debug/lib_crossrank.so" "$stage/crossrank/_crossrank.abi3.so"
PYTHONPATH="$stage" "$venv/bin/python" -m pytest -q -p no:cacheprovider crates/crossrank-py/tests "$@"
