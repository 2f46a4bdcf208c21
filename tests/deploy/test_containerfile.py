"""deploy/Containerfile as a recipe: pinned base, two stages (the wheel built from the packages
only, then installed into a venv), a non-root numeric user, the port, the health check and the
entrypoint the chart and the compose file rely on."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import ROOT
from tests.deploy.containerfile import read_recipe


def test_the_base_image_is_pinned_to_the_python_the_package_needs() -> None:
    recipe = read_recipe()
    base = recipe.args["PYTHON_IMAGE"]
    assert [s[0]["value"].split()[0] for s in recipe.stages] == ["${PYTHON_IMAGE}"] * 2
    name, _, tag = base.rpartition(":")
    assert name.endswith("/python") and tag and tag != "latest", base
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.match(r"(\d+\.\d+)", tag)
    assert minor and wanted == f">={minor.group(1)}", (tag, wanted)
    assert re.search(r"-(bookworm|trixie)$", tag), "the Debian release is part of the pin"


def test_the_build_stage_copies_every_package_and_nothing_else() -> None:
    recipe = read_recipe()
    copies = [v.split() for v in (i["value"] for i in recipe.stages[0] if i["instruction"] == "COPY")]
    sources = {src.rstrip("/") for parts in copies for src in parts[:-1]}
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    assert sources == packages | {"pyproject.toml", "README.md"}  # README is the package's long description
    for source in sources:
        assert (ROOT / source).exists(), source
    [build] = [i["value"] for i in recipe.stages[0] if i["instruction"] == "RUN"]
    assert "pip wheel" in build and "--no-deps" in build


def test_the_final_stage_installs_the_wheel_and_runs_unprivileged() -> None:
    recipe = read_recipe()
    [copy] = recipe.final("COPY")
    assert copy.startswith("--from=build /wheels/")
    [run] = recipe.final("RUN")
    assert "continuum_twin-*.whl)[service,models]" in run and "python -m venv /opt/ctwin" in run
    [user] = recipe.final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0  # numeric: runAsNonRoot can check it
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "ctwin" / "values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert recipe.final("EXPOSE") == [str(values["serve"]["port"])]
    assert f"install -d -o {uid} -g {gid} -m 0700 /var/lib/ctwin" in run


def test_entrypoint_command_and_health_check() -> None:
    recipe = read_recipe()
    assert recipe.exec_form("ENTRYPOINT") == ["ctwin"]
    assert recipe.exec_form("CMD")[:3] == ["serve", "--config", "/etc/ctwin/ctwin.yaml"]
    check = recipe.healthcheck()
    assert check[:2] == ["python", "-c"] and "/healthz" in check[2]
    options = dict(o.lstrip("-").split("=") for o in recipe.healthcheck_options())
    assert set(options) == {"interval", "timeout", "start-period", "retries"}
