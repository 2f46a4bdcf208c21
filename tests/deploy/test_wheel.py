"""The wheel, installed outside the repository, is the whole product: built with `pip wheel`,
installed with the image's extras into a fresh venv (no system site-packages, no PYTHONPATH, pip
resolving from the index this machine is configured with), then `ctwin serve` started from an
empty directory with the built-in default config. The shipped SWF traces must replay (the
replayed sites report trace time and jobs), the Dash page and its vendored assets must be served
byte for byte, and deploy/Containerfile's own HEALTHCHECK command must pass against it.

It takes a minute or two (pip installs the service's dependencies into the new venv; the pip
cache makes later runs faster)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.deploy.containerfile import read_recipe
from tests.deploy.serving import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


def _run(cmd: list[str], cwd: Path, timeout_s: float = 600) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout_s,
                          check=False)  # fmt: skip
    assert done.returncode == 0, (
        f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the repo holding the built wheel with the image's extras; returns its bin/."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)], cwd=tmp)
    [wheel] = dist.glob("continuum_twin-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    extras = re.search(r"\.whl\)(\[[a-z,]+\])", read_recipe().final("RUN")[0])
    assert extras, "the Containerfile's pip install names the extras"
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", f"{wheel}{extras.group(1)}"], cwd=tmp, timeout_s=900)
    return venv / "bin"


def test_the_venv_imports_ctwin_from_itself_not_the_repo(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import sys, service, collectors; print(service.__file__); print(collectors.__file__);"
        " print(sys.flags.no_site, sys.prefix != sys.base_prefix)"
    )
    out = _run([str(installed / "python"), "-c", probe], cwd=tmp_path)
    service_file, collectors_file, flags = out.splitlines()
    for path in (service_file, collectors_file):
        assert path.startswith(str(installed.parent)) and "site-packages" in path, path
    assert not Path(service_file).is_relative_to(ROOT)
    assert flags == "0 True"
    # no system site-packages: the venv config says so
    assert "include-system-site-packages = false" in (installed.parent / "pyvenv.cfg").read_text()


@contextlib.contextmanager
def _serving(bin_dir: Path, cwd: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    command = [str(bin_dir / "ctwin"), "serve", "--port", str(port), "--json"]
    with serving(command, port=port, cwd=cwd, env=_clean_env()) as served:
        token = json.JSONDecoder().raw_decode(served.stdout.read_text().lstrip())[0]["first_token"]
        yield served.url, token
    assert served.exit_code() == 0, "SIGTERM should stop ctwin serve cleanly:\n" + served.log.read_text()[-3000:]


def test_the_installed_wheel_serves_the_shipped_traces_and_the_dash_assets(installed: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"  # outside the repository: nothing can come from a checkout
    cwd.mkdir()
    with _serving(installed, cwd) as (url, token):
        auth = {"Authorization": f"Bearer {token}"}
        # the replayed HPC sites run on the SWF logs shipped inside the wheel
        deadline = time.monotonic() + 90
        sites: dict[str, dict[str, object]] = {}
        answers: list[str] = []
        while time.monotonic() < deadline:
            answer = httpx.get(f"{url}/v1/sites", headers=auth, timeout=10)
            answers.append(f"{answer.status_code} {answer.text[:300]}")
            if answer.status_code != 200:
                # the first token is written before the app is built, so it is never refused: only
                # 503 (not ready yet) is "not yet"
                assert answer.status_code == 503, answers[-1]
                time.sleep(0.5)
                continue
            sites = {s["name"]: s for s in answer.json()["items"]}
            replayed = [sites.get(n, {}) for n in ("kth-sp2", "sdsc-sp2")]
            if all(s.get("state") == "ok" and s.get("trace_time_s") and s.get("jobs_running") for s in replayed):
                break
            time.sleep(1)
        for name in ("kth-sp2", "sdsc-sp2"):
            assert name in sites, answers[-3:]
            site = sites[name]
            assert site["state"] == "ok" and site["is_replay"], site
            assert site["trace_time_s"] and site["jobs_running"], site
            jobs = httpx.get(f"{url}/v1/sites/{name}/jobs", headers=auth, timeout=10).json()["jobs"]
            assert any(j["state"] == "RUNNING" for j in jobs), jobs[:3]
        # the Dash twin and its vendored assets (no CDN), byte for byte what the package ships
        page = httpx.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        package = Path(_run([str(installed / "python"), "-c", "import dashboards; print(dashboards.__file__)"],
                            cwd=cwd).strip()).parent  # fmt: skip
        assets = sorted(set(re.findall(r'(?:src|href)="(/assets/[^"?]+)', page.text)))
        assert {Path(a).name for a in assets} >= {"ctwin.css", "plotly-basic-4.1.1.min.js"}, assets
        for asset in assets:
            served = httpx.get(f"{url}{asset}", timeout=10)
            assert served.status_code == 200, asset
            assert served.content == (package / "assets" / Path(asset).name).read_bytes(), asset
        assert "cdn" not in " ".join(re.findall(r'src="([^"]+)"', page.text)).lower()
        # deploy/Containerfile's HEALTHCHECK, as the container engine would run it (its port moved)
        check = read_recipe().healthcheck()
        command = [str(installed / "python"), *[a.replace(":8080/", f":{url.rsplit(':', 1)[1]}/") for a in check[1:]]]
        _run(command, cwd=cwd, timeout_s=10)
