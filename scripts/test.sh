#!/usr/bin/env bash
# Set everything up and run the whole test suite: lint, types, unit and integration tests.
# With CTWIN_REQUIRE_SERVERS=1 (as in CI) a missing real server fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
# Every page's browser test keeps a picture of what it checked here (CI keeps the folder as artefacts).
export CTWIN_SCREENSHOT_DIR="${CTWIN_SCREENSHOT_DIR:-$PWD/test-artifacts/screenshots}"
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider "$@"
