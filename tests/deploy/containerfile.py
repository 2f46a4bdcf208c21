"""deploy/Containerfile read with dockerfile-parse (the parser OpenShift's and Fedora's image
builders use): no image can be built here (no container registry to pull a base from), so the
recipe is checked as text, and its install, its command and its health check are run for real
against a built wheel by test_wheel.py."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from tests.conftest import ROOT
from tests.deploy.chart import need_module

__all__ = ["CONTAINERFILE", "Recipe", "read_recipe"]

CONTAINERFILE = ROOT / "deploy" / "Containerfile"


@dataclass(frozen=True)
class Recipe:
    args: dict[str, str]
    stages: list[list[dict[str, Any]]]  # the instructions of each FROM, comments dropped

    def final(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.stages[-1] if i["instruction"] == instruction]

    def exec_form(self, instruction: str) -> list[str]:
        """The JSON (exec) form of the final stage's ENTRYPOINT/CMD."""
        [value] = self.final(instruction)
        parsed = json.loads(value)
        assert isinstance(parsed, list), f"{instruction} must use the exec form: {value}"
        return [str(p) for p in parsed]

    def healthcheck(self) -> list[str]:
        [value] = self.final("HEALTHCHECK")
        _, _, command = value.partition("CMD")
        return [str(p) for p in json.loads(command.strip())]

    def healthcheck_options(self) -> list[str]:
        [value] = self.final("HEALTHCHECK")
        return shlex.split(value.partition("CMD")[0])


def read_recipe() -> Recipe:
    parse = need_module("dockerfile_parse")
    with CONTAINERFILE.open("rb") as fh:
        parser = parse.DockerfileParser(fileobj=fh)
        structure = parser.structure
    args: dict[str, str] = {}
    stages: list[list[dict[str, Any]]] = []
    for item in structure:
        if item["instruction"] == "ARG" and not stages:
            key, _, default = item["value"].partition("=")
            args[key] = default
        elif item["instruction"] == "FROM":
            stages.append([item])
        elif item["instruction"] != "COMMENT" and stages:
            stages[-1].append(item)
    return Recipe(args, stages)
