#!/usr/bin/env bash
# All set-up, then lint, type checks and the whole test suite (slow tests included when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
# two workers (pytest-xdist), each test module on one worker so its module-scoped runs are made once
workers=(-n "${HCCPROG_TEST_WORKERS:-2}" --dist loadfile)
if [ "${CI:-}" = "true" ]; then
    .venv/bin/python -m pytest -q "${workers[@]}" "$@"
else
    .venv/bin/python -m pytest -q -m "not slow" "${workers[@]}" "$@"
fi
