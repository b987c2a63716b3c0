#!/usr/bin/env bash
# What a user does: `pip install ./crates/crossrank-py` into a fresh virtual
# environment (maturin builds the abi3 wheel, release profile), then the
# package's tests against the installed wheel, its size, the install's
# size and `import crossrank` time. Not in CI: the wheel resolves features
# for the binding alone and rebuilds the core and Burn (release) —
# scripts/python-test.sh tests the same code on the workspace build.
# Usage: scripts/python-wheel.sh [OUT_DIR]   (the wheel is left there)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crossrank/target}"
out=$(realpath -m "${1:-$CARGO_TARGET_DIR/wheels}")
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest
start=$(date +%s)
"$venv/bin/python" -m pip wheel -q --no-deps -w "$out" ./crates/crossrank-py
echo "wheel built in $(( $(date +%s) - start )) s: $(ls -la "$out"/crossrank-*.whl | awk '{print $5, $9}')"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall "$out"/crossrank-*.whl
"$venv/bin/python" -c "import crossrank, torch" 2>/dev/null && { echo "torch was installed" >&2; exit 1; }
site=$("$venv/bin/python" -c "import crossrank, os; print(os.path.dirname(crossrank.__file__))")
echo "installed: $(du -sk "$site" | cut -f1) KiB in $site"
"$venv/bin/python" -X importtime -c "import crossrank" 2>&1 | tail -1
(cd "$(dirname "$venv")" && "$venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/crates/crossrank-py/tests")
