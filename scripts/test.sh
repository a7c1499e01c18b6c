#!/usr/bin/env bash
# All set-up, then lint, type checks and the whole test suite (slow tests included when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser tests render reports and patient cards in Debian's Chromium (never a browser download).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    if ! apt-get install -y -q chromium >/dev/null; then
        apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
    fi
fi
if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1; then
    echo "CI needs Debian's chromium for the browser tests: apt-get install chromium" >&2
    exit 1
fi
.venv/bin/ruff check .
.venv/bin/mypy
# two workers (pytest-xdist), each test module on one worker so its module-scoped runs are made once
workers=(-n "${HCCPROG_TEST_WORKERS:-2}" --dist loadfile)
if [ "${CI:-}" = "true" ]; then
    .venv/bin/python -m pytest -q "${workers[@]}" "$@"
else
    .venv/bin/python -m pytest -q -m "not slow" "${workers[@]}" "$@"
fi
