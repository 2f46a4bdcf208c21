#!/usr/bin/env bash
# Create the AccaSim venv (.venv-accasim at the repo root, gitignored), apart from the project's
# .venv so that AccaSim's dependencies never mix with ours. Idempotent: does nothing when the venv
# already has accasim 1.1.3. The benchmarks call it when the venv is missing.
#   bench/accasim/setup.sh            # or ACCASIM_VENV=/path PYTHON=python3.11 bench/accasim/setup.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${ACCASIM_VENV:-$root/.venv-accasim}
python=${PYTHON:-python3}
check='import importlib.metadata as m, sys; sys.exit(m.version("accasim") != "1.1.3")'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "AccaSim venv ready: $venv"
    exit 0
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" -c "$check"
echo "AccaSim venv ready: $venv"
