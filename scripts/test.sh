#!/usr/bin/env bash
# All set-up, then lint and the whole test suite (slow tests included when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
if [ "${CI:-}" = "true" ]; then
    .venv/bin/python -m pytest -q "$@"
else
    .venv/bin/python -m pytest -q -m "not slow" "$@"
fi
