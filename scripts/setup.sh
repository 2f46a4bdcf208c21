#!/usr/bin/env bash
# Create .venv and install Continuum Twin into it. Usage: scripts/setup.sh [run|test|bench]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-run}
scripts/install-system-deps.sh "$what"
[ -x .venv/bin/python ] || python3 -m venv .venv
extras="service,models"
[ "$what" = run ] || extras="dev"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[$extras]"
