#!/usr/bin/env bash
# Create .venv and install Continuum Twin into it. Usage: scripts/setup.sh [run|test|bench]
#
# pip runs only when needed: .venv/.ctwin-install records what was installed (a hash of
# pyproject.toml, the extras, this checkout's path), and while that still holds and .venv/bin/ctwin
# exists, nothing is reinstalled (the code itself is an editable install: edits need no pip).
# While pip runs, its progress is shown (what it collects, builds and installs); the whole of its
# output goes to .venv/pip-install.log. PYTHON names the interpreter that creates .venv (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-run}
say() { echo "setup: $*" >&2; }

scripts/install-system-deps.sh "$what"
extras="service,models"
[ "$what" = run ] || extras="dev"
stamp=.venv/.ctwin-install
log=.venv/pip-install.log

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "${PYTHON:-python3}" -m venv .venv
  rm -f "$stamp"
fi

pyproject=$(sha256sum pyproject.toml | cut -d' ' -f1)
want="pyproject=$pyproject checkout=$PWD"
installed=$(cat "$stamp" 2>/dev/null || true)
have_extras=$(sed -n 's/.* extras=//p' <<<"$installed")
covered=false
case "$have_extras" in
  "$extras" | dev) covered=true ;;  # dev includes service and models
esac
if [ "${installed% extras=*}" = "$want" ] && $covered && [ -x .venv/bin/ctwin ]; then
  say ".venv is up to date (Continuum Twin [$have_extras] from this pyproject.toml); pip not run"
  exit 0
fi

started=$SECONDS
say "installing Continuum Twin [$extras] into .venv with pip (a minute or two on a new venv); full output: $log"
rm -f "$stamp"
show() { sed -un -E 's/^(Collecting|Building|Installing collected packages|Successfully installed)/  \1/p' >&2; }
if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[$extras]"; } 2>&1 \
    | tee "$log" | show; then
  say "pip failed; the end of its output ($log):"
  tail -n 30 "$log" >&2
  exit 1
fi
echo "$want extras=$extras" >"$stamp"
say "installed in $((SECONDS - started)) s"
