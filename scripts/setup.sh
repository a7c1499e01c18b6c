#!/usr/bin/env bash
# Create .venv (if needed) and install hccprog with its CPU-only dependencies.
# Idempotent: re-runs pip only when pyproject.toml or the constraints change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.hccprog-installed
want=$(cat pyproject.toml constraints/cpu.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # The constraints file pins the CPU build of torch that lies on this machine's disk.
    .venv/bin/python -m pip install -q -c constraints/cpu.txt -e ".[dev]"
    echo "$want" > "$stamp"
fi
