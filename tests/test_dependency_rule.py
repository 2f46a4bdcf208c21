"""The layering in ARCHITECTURE.md, checked by reading every import of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("telemetry", "collectors", "models", "twin", "dashboards", "service")

# package -> packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "telemetry": set(),
    "collectors": {"telemetry"},
    "models": {"telemetry"},
    "twin": {"models", "telemetry"},
    "dashboards": {"twin", "telemetry"},
    "service": set(PACKAGES),
}
# collectors may only see the data contract of telemetry (and its redaction of credentials in
# messages), never stores, pipeline or export
COLLECTOR_TELEMETRY_MODULES = ("telemetry.schema", "telemetry.catalog", "telemetry.jobs", "telemetry.redact")


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    return [(pkg, p) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


@pytest.mark.parametrize(("package", "path"), modules(), ids=lambda x: str(x))
def test_module_respects_the_dependency_rule(package: str, path: Path) -> None:
    for name in imports_of(path):
        top = name.split(".")[0]
        if top not in PACKAGES or top == package:
            continue
        assert top in ALLOWED[package], f"{path.relative_to(ROOT)} imports {name}: {package} may not import {top}"
        if package == "collectors" and top == "telemetry":
            assert name.startswith(COLLECTOR_TELEMETRY_MODULES), (
                f"{path.relative_to(ROOT)} imports {name}: collectors may use only telemetry's data contract "
                "(schema, catalog, jobs) and redact"
            )


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from service.cli import app\nimport twin.sim\n")
    assert imports_of(bad) == ["service.cli", "twin.sim"]
    assert "service" not in ALLOWED["telemetry"]
