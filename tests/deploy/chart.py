"""Render deploy/helm/ctwin without the helm binary: helm-python-sdk wraps the Helm Go SDK (v4)
in a wheel, so lint and render are Helm's own, offline."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, servers_required

__all__ = ["CHART", "RELEASE_VALUES", "by_kind", "need_module", "render", "render_docs"]

CHART = ROOT / "deploy" / "helm" / "ctwin"

# every optional part on: the objects a full install creates
RELEASE_VALUES: dict[str, Any] = {
    "tokens": {"existingSecret": "ctwin-tokens"},
    "extender": {"enabled": True},
    "dispatcher": {"enabled": True, "tokenSecret": {"name": "ctwin-dispatcher-token"}},
    "agent": {"enabled": True, "tokenSecret": {"name": "ctwin-agent-token"}},
    "metrics": {"serviceMonitor": {"enabled": True}},
}


def need_module(name: str, extra: str = "deploy") -> ModuleType:
    """Import a test-only package, or skip (fail under CTWIN_REQUIRE_SERVERS) with the fix."""
    try:
        return importlib.import_module(name)
    except ImportError:
        msg = f"{name} not installed: pip install -e '.[{extra}]' (scripts/setup.sh test does)"
        if servers_required():
            pytest.fail(msg + "; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
        pytest.skip(msg)


def render(values: Mapping[str, Any], *, name: str = "demo", namespace: str = "ctwin") -> dict[str, str]:
    """Template file -> rendered text, as `helm template` would write them."""
    helm = need_module("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(dict(values))
        rendered: dict[str, str] = chart.render(dict(values), name=name, namespace=namespace)
    return rendered


def render_docs(values: Mapping[str, Any], **kwargs: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of a release (NOTES.txt left out), in template order."""
    return [
        doc
        for path, text in render(values, **kwargs).items()
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
