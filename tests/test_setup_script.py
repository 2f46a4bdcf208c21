"""scripts/setup.sh (what run.sh and test.sh run first): pip only when needed, and its progress shown.

Before, every `./scripts/run.sh` ran pip over the whole stack, silently (`-q`), for about a minute.
Here the real script runs in a copy of the repository's scripts and pyproject.toml whose
interpreter is a stand-in: it records how it was called and answers `pip install` as pip does,
so each run takes milliseconds and the test sees exactly when pip ran.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.conftest import ROOT

FAKE_PYTHON = r"""#!/usr/bin/env bash
# A venv's python as far as setup.sh can tell: logs its arguments; `-m pip install -e` prints what
# pip prints and installs the `ctwin` entry point; `-m venv DIR` makes a venv of this same fake.
echo "$*" >> "$CALLS"
if [ "$1" = -m ] && [ "$2" = venv ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
elif [ "$1 $2 $3" = "-m pip install" ]; then
  if [ -n "${FAIL_PIP:-}" ]; then echo "ERROR: Could not find a version that satisfies dash>=4.4"; exit 1; fi
  echo "WARNING: Location 'file:///opt/pypi/simple/polars/' is ignored: it is neither a file nor a directory."
  echo "Requirement already satisfied: polars>=1.0"
  if [ "$4" = -e ]; then
    echo "Collecting dash<5,>=4.4 (from continuum-twin==0.1.0)"
    echo "Building editable for continuum-twin (pyproject.toml): started"
    echo "Installing collected packages: dash, continuum-twin"
    echo "Successfully installed continuum-twin-0.1.0 dash-4.4.1"
    printf '#!/bin/sh\n' > "$(dirname "$0")/ctwin" && chmod +x "$(dirname "$0")/ctwin"
  fi
fi
"""


class Repo:
    """A copy of what setup.sh reads: scripts/setup.sh, pyproject.toml, a no-op system installer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "scripts").mkdir(parents=True)
        shutil.copy(ROOT / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
        self._script("scripts/install-system-deps.sh", "#!/usr/bin/env bash\nexit 0\n")
        self.fake = self._script("fake-python3", FAKE_PYTHON)
        self.calls = root / "calls.log"

    def _script(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    def setup(self, what: str = "run", **env: str) -> subprocess.CompletedProcess[str]:
        self.calls.write_text("")
        return subprocess.run(
            ["bash", "scripts/setup.sh", what],
            cwd=self.root,
            env={**os.environ, "PYTHON": str(self.fake), "CALLS": str(self.calls), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def pip_installs(self) -> list[str]:
        return [c for c in self.calls.read_text().splitlines() if c.startswith("-m pip install -e")]


def test_a_fresh_clone_installs_once_then_skips_pip_until_pyproject_changes(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    first = repo.setup("run")
    assert first.returncode == 0, first.stderr
    assert "setup: creating .venv" in first.stderr
    assert repo.pip_installs() == ["-m pip install -e .[service,models]"]
    shown = first.stderr
    assert "  Collecting dash" in shown and "  Building editable" in shown and "  Successfully installed" in shown
    assert "Requirement already satisfied" not in shown and "is ignored" not in shown  # progress, not noise
    assert "WARNING" in (repo.root / ".venv" / "pip-install.log").read_text()  # all of it is kept
    assert "setup: installed in" in shown

    again = repo.setup("run")
    assert again.returncode == 0 and repo.pip_installs() == []
    assert "pip not run" in again.stderr
    assert repo.calls.read_text() == ""  # not even pip's self-upgrade

    with (repo.root / "pyproject.toml").open("a") as fh:
        fh.write("\n# a new dependency, say\n")
    assert repo.setup("run").returncode == 0
    assert repo.pip_installs() == ["-m pip install -e .[service,models]"]
    assert repo.setup("run").returncode == 0 and repo.pip_installs() == []


def test_other_extras_a_lost_entry_point_or_another_checkout_install_again(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    assert repo.setup("run").returncode == 0
    assert repo.setup("test").returncode == 0
    assert repo.pip_installs() == ["-m pip install -e .[dev]"]  # run's extras do not cover test's
    assert repo.setup("run").returncode == 0 and repo.pip_installs() == []  # dev covers run's
    assert repo.setup("test").returncode == 0 and repo.pip_installs() == []

    (repo.root / ".venv" / "bin" / "ctwin").unlink()  # e.g. `pip uninstall continuum-twin`
    assert repo.setup("test").returncode == 0
    assert repo.pip_installs() == ["-m pip install -e .[dev]"]

    moved = tmp_path / "moved"
    repo.root.rename(moved)  # the venv's editable install points at the old path
    repo.root, repo.calls = moved, moved / "calls.log"
    assert repo.setup("test").returncode == 0
    assert repo.pip_installs() == ["-m pip install -e .[dev]"]


def test_a_failing_pip_fails_setup_shows_why_and_is_retried_next_time(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    failed = repo.setup("run", FAIL_PIP="1")
    assert failed.returncode != 0
    assert "setup: pip failed" in failed.stderr
    assert "Could not find a version that satisfies dash>=4.4" in failed.stderr
    assert repo.setup("run").returncode == 0
    assert repo.pip_installs() == ["-m pip install -e .[service,models]"]
