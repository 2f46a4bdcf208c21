"""Kueue's published CRDs (tests/fixtures/kueue/crds, provenance in PROVENANCE.md there), made
acceptable to the kube-apiserver v1.20.2 the tests run, and installed through its API.

Kueue's CRDs target Kubernetes >= 1.29; 1.20 cannot express two things in them, and only those are
trimmed, reproducibly, here (run `python -m tests.kueue_crds` to print every trimmed item):

- `x-kubernetes-validations` (CEL rules, beta in 1.25): 1.20 does not know the key and drops it
  silently when the CRD is created. Removing it here makes the loss explicit and listable: those
  rules (e.g. "clusterName and nominatedClusterNames are mutually exclusive") are not enforced by
  the test apiserver.
- `anyOf: [{type: integer}, {type: string}]` beside `x-kubernetes-int-or-string: true` in an
  `additionalProperties` schema (resource quantities in `status.admission...resourceUsage` and
  `status.resourceRequests[].resources`): 1.20 accepts the CRD but cannot build its OpenAPI model
  (`additionalProperties.schema has invalid property: anyOf`), and without a model its server-side
  apply falls back to treating every list as atomic. Kueue relies on list-map merging (conditions
  and admission checks keyed by type and name), so the anyOf goes; x-kubernetes-int-or-string,
  which says the same, stays.
- `default: ""` (an empty-string default, e.g. `spec.priorityClassSource`): this apiserver refuses
  the whole CRD with `default: Invalid value: "null": in body must be of type string`. The field
  stays, with no default. The same build turns an empty string in a custom resource into null too
  (`status.admissionChecks.message: Invalid value: "null"`, by merge patch and by apply alike), so
  the tests write no empty strings. That is a defect of this build (Kubernetes objects carry empty
  strings everywhere), most likely another Go 1.19 incompatibility of its vendored JSON libraries
  like the reflect2 one scripts/install-k8s-control-plane.sh patches; its cause was not looked into.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from collectors.kube_api import KubeClient, KubeError

__all__ = ["CRD_DIR", "TrimmedCrd", "install", "published", "trimmed_for_1_20"]

CRD_DIR = Path(__file__).resolve().parent / "fixtures" / "kueue" / "crds"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@dataclass(frozen=True)
class TrimmedCrd:
    doc: dict[str, Any]
    trimmed: list[str]  # "path: what was removed", one per item


def published(plural: str) -> dict[str, Any]:
    """The vendored file for `plural` (workloads, clusterqueues, admissionchecks, multikueueconfigs)."""
    docs = [d for d in yaml.safe_load_all((CRD_DIR / f"kueue.x-k8s.io_{plural}.yaml").read_text()) if d]
    (doc,) = docs
    return dict(doc)


def trimmed_for_1_20(doc: dict[str, Any]) -> TrimmedCrd:
    out = copy.deepcopy(doc)
    trimmed: list[str] = []
    for version in out["spec"]["versions"]:
        _walk(version["schema"]["openAPIV3Schema"], f"{version['name']}:", trimmed)
    return TrimmedCrd(out, trimmed)


def _walk(node: Any, path: str, trimmed: list[str]) -> None:
    if isinstance(node, dict):
        rules = node.pop("x-kubernetes-validations", None)
        for rule in rules or []:
            trimmed.append(
                f"{path.rstrip(':') or '.'}: x-kubernetes-validations {rule.get('message', rule.get('rule'))!r}"
            )
        if node.get("anyOf") and node.get("x-kubernetes-int-or-string"):
            del node["anyOf"]
            trimmed.append(f"{path}: anyOf [integer, string] (kept x-kubernetes-int-or-string)")
        if node.get("default", None) == "":
            del node["default"]
            trimmed.append(f'{path}: default ""')
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    _walk(sub, f"{path}.{name}", trimmed)
            elif key in ("items", "additionalProperties"):
                _walk(value, f"{path}[]" if key == "items" else f"{path}{{}}", trimmed)
            elif key in ("anyOf", "allOf", "oneOf") and isinstance(value, list):
                for sub in value:
                    _walk(sub, path, trimmed)


def install(kube: KubeClient, plurals: list[str], timeout_s: float = 30.0) -> dict[str, list[str]]:
    """Create (or replace) the trimmed CRDs and wait until each is Established; returns what was
    trimmed per CRD. Idempotent, so every test can call it on the shared session apiserver."""
    report: dict[str, list[str]] = {}
    for plural in plurals:
        crd = trimmed_for_1_20(published(plural))
        name = crd.doc["metadata"]["name"]
        report[name] = crd.trimmed
        try:
            current = kube.get(f"{CRD_PATH}/{name}")
        except KubeError as exc:
            if exc.status != 404:
                raise
            kube.create(CRD_PATH, crd.doc)
        else:
            body = {
                **crd.doc,
                "metadata": {**crd.doc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            kube.replace(f"{CRD_PATH}/{name}", body)
    deadline = time.monotonic() + timeout_s
    for name in report:
        while True:
            conditions = kube.get(f"{CRD_PATH}/{name}").get("status", {}).get("conditions", [])
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {name} not Established after {timeout_s} s: {conditions}")
            time.sleep(0.1)
    return report


def main() -> None:
    for path in sorted(CRD_DIR.glob("kueue.x-k8s.io_*.yaml")):
        plural = path.stem.removeprefix("kueue.x-k8s.io_")
        crd = trimmed_for_1_20(published(plural))
        print(f"{path.name}: {len(crd.trimmed)} item(s) trimmed for kube-apiserver 1.20")
        for item in crd.trimmed:
            print(f"  {item}")


if __name__ == "__main__":
    main()
    sys.exit(0)
