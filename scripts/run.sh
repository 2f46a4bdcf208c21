#!/usr/bin/env bash
# Set everything up and serve Continuum Twin on its embedded default: DuckDB in ./data, this host
# plus two replayed HPC sites, the API, /metrics and the Dash twin on http://127.0.0.1:8080/.
# setup.sh runs pip only when .venv is not yet installed from this pyproject.toml, and shows its progress.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
exec .venv/bin/ctwin serve "$@"
