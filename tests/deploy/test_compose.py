"""deploy/compose.yaml validated offline: Debian's docker-compose 1.29 checks it against the
compose-spec JSON schema it ships (`docker-compose config`, no engine needed), the same schema is
applied directly with jsonschema, Prometheus' own promtool checks the scrape config, and
`ctwin config check` the ctwin config it mounts. No container is started (no engine here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, need_binary
from tests.deploy.chart import need_module
from tests.deploy.containerfile import read_recipe

DEPLOY = ROOT / "deploy"
COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")


@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    """deploy/ with the token file an operator makes first (`ctwin token create --data-dir`)."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY / "compose", copy / "compose")
    shutil.copy(DEPLOY / "compose.yaml", copy / "compose.yaml")
    tokens = copy / "compose" / "tokens"
    subprocess.run([sys.executable, "-m", "service.cli", "token", "create", "admin", "--scope", "admin",
                    "--data-dir", str(tokens)], check=True, capture_output=True)  # fmt: skip
    return copy


def _compose_config(compose: Path) -> subprocess.CompletedProcess[str]:
    binary = need_binary("docker-compose", "apt-get install docker-compose; scripts/install-system-deps.sh test")
    return subprocess.run([binary, "-f", str(compose), "config"], capture_output=True, text=True, check=False,
                          cwd=compose.parent)  # fmt: skip


def test_docker_compose_accepts_the_file_without_a_warning(deploy_copy: Path) -> None:
    done = _compose_config(deploy_copy / "compose.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # e.g. "the 'configs' key will be ignored"
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) == {"ctwin", "prometheus", "victoriametrics"}
    ctwin = resolved["services"]["ctwin"]
    assert ctwin["build"]["dockerfile"] == "deploy/Containerfile"
    assert Path(ctwin["build"]["context"]).resolve() == deploy_copy.parent.resolve()
    assert resolved["secrets"]["ctwin-tokens"]["file"] == str(deploy_copy / "compose" / "tokens" / "tokens.json")


def test_docker_compose_refuses_what_the_schema_does_not_allow(deploy_copy: Path) -> None:
    """The check is a real one: a misspelt key is refused, naming it."""
    doc = yaml.safe_load((deploy_copy / "compose.yaml").read_text())
    doc["services"]["ctwin"]["read_onlyy"] = True
    (deploy_copy / "compose.yaml").write_text(yaml.safe_dump(doc))
    done = _compose_config(deploy_copy / "compose.yaml")
    assert done.returncode != 0
    assert "read_onlyy" in done.stderr


def test_the_compose_spec_schema_directly() -> None:
    jsonschema = need_module("jsonschema")
    need_binary("docker-compose", "apt-get install docker-compose (it ships compose_spec.json)")
    assert COMPOSE_SPEC.exists(), f"Debian's docker-compose moved its schema: {COMPOSE_SPEC}"
    schema = json.loads(COMPOSE_SPEC.read_text())
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(doc, schema)


def _service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    return dict(services[name])


def test_ctwin_runs_as_the_image_does_and_unprivileged() -> None:
    ctwin = _service("ctwin")
    recipe = read_recipe()
    [user] = recipe.final("USER")
    assert ctwin["user"] == user
    assert ctwin["read_only"] is True and ctwin["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in ctwin["security_opt"]
    assert ctwin["command"][0] == recipe.exec_form("CMD")[0] == "serve"
    assert all(p.startswith("127.0.0.1:") for s in ("ctwin", "prometheus", "victoriametrics")
               for p in _service(s)["ports"])  # fmt: skip
    mounts = {m.split(":")[1]: m.split(":")[0] for m in ctwin["volumes"]}
    assert mounts["/etc/ctwin/ctwin.yaml"] == "./compose/ctwin.yaml"
    config = yaml.safe_load((DEPLOY / "compose" / "ctwin.yaml").read_text())
    assert config["auth"]["tokens_file"] == "/run/secrets/" + ctwin["secrets"][0]["target"]
    assert mounts[config["data_dir"]] == "ctwin-data"


def test_the_ctwin_config_passes_ctwin_config_check() -> None:
    config = DEPLOY / "compose" / "ctwin.yaml"
    command = [sys.executable, "-m", "service.cli", "config", "check", "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_prometheus_config_passes_promtool_and_scrapes_ctwin() -> None:
    promtool = need_binary("promtool", "apt-get install prometheus")
    path = DEPLOY / "compose" / "prometheus.yml"
    done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(path.read_text())
    [job] = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["ctwin:8080"]
    assert config["remote_write"][0]["url"].startswith("http://victoriametrics:8428/")
