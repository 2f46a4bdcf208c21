#!/usr/bin/env bash
# Set everything up and run Continuum Twin on its embedded default (DuckDB in ./data, this host).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
exec .venv/bin/ctwin run "$@"
