"""MultiKueue's external dispatcher, the pure decisions: which Workloads are ours, the advice request
a Workload makes, and the nomination that comes out of the ranking. No I/O here (dispatcher.py
does the API calls), so each rule is a function of JSON and tested on Kueue-shaped objects.

How Kueue decides who nominates (Kueue >= 0.13, KEP-693 "MultiKueue Dispatcher API"): the
dispatcher is one name for the whole manager cluster, `multiKueue.dispatcherName` in Kueue's own
Configuration (config.kueue.x-k8s.io), not a field of MultiKueueConfig or ClusterQueue. The two
built-in names make Kueue nominate by itself; any other name means Kueue creates remote copies
only on the clusters an external controller wrote into `.status.nominatedClusterNames`. Which
clusters a Workload may go to comes from its MultiKueue admission check: the Workload's
`status.admissionChecks` (copied by Kueue from its ClusterQueue) names an AdmissionCheck whose
`controllerName` is `kueue.x-k8s.io/multikueue`, whose `parameters` name a MultiKueueConfig, whose
`spec.clusters` are the worker clusters (MultiKueueCluster names).

Kueue's built-in incremental dispatcher nominates only while that check is Pending, the Workload
holds a quota reservation, is not finished and has no `.status.clusterName`; this dispatcher
follows the same rule, and re-nominates only a stale nomination (`needs_nomination`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from telemetry.schema import parse_duration

__all__ = [
    "BUILTIN_DISPATCHERS",
    "FIELD_MANAGER",
    "MULTIKUEUE_CONTROLLER",
    "AdmissionCheckRef",
    "PodSetDemand",
    "advice_job",
    "dispatcher_kind",
    "dispatcher_name_from_kueue_config",
    "multikueue_check",
    "needs_nomination",
    "nomination",
    "parse_quantity",
    "pod_demand",
    "status_apply",
]

MULTIKUEUE_CONTROLLER = "kueue.x-k8s.io/multikueue"
ALL_AT_ONCE = "kueue.x-k8s.io/multikueue-dispatcher-all-at-once"
INCREMENTAL = "kueue.x-k8s.io/multikueue-dispatcher-incremental"
BUILTIN_DISPATCHERS = (ALL_AT_ONCE, INCREMENTAL)
# Kueue (0.13+) clears nominatedClusterNames when a cluster admits the Workload by server-side
# applying the admission status without it; that removes the field only if the same manager
# applied it, so external dispatchers must apply as Kueue's own manager (upstream issue #6185).
FIELD_MANAGER = "kueue-admission"
GPU_RESOURCE = "nvidia.com/gpu"

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def parse_quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("500m", "4", "64Gi", "1e3") as a number."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value.strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"invalid quantity {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


# ------------------------------------------------------------------ whose Workloads
def dispatcher_name_from_kueue_config(text: str | None) -> str:
    """Kueue's `multiKueue.dispatcherName` from its Configuration file; AllAtOnce when unset, as Kueue."""
    doc = yaml.safe_load(text or "") or {}
    if not isinstance(doc, dict):
        raise ValueError("Kueue's Configuration is not a YAML mapping")
    name = (doc.get("multiKueue") or {}).get("dispatcherName")
    return str(name) if name else ALL_AT_ONCE


def dispatcher_kind(kueue_dispatcher: str, ours: str) -> Literal["ours", "builtin", "other"]:
    if kueue_dispatcher == ours:
        return "ours"
    return "builtin" if kueue_dispatcher in BUILTIN_DISPATCHERS else "other"


@dataclass(frozen=True)
class AdmissionCheckRef:
    """A MultiKueue AdmissionCheck and the worker clusters its MultiKueueConfig lists."""

    name: str
    config: str
    clusters: tuple[str, ...]


def multikueue_check(admission_check: Mapping[str, Any]) -> str | None:
    """The MultiKueueConfig an AdmissionCheck names, or None when it is not a MultiKueue check."""
    spec = admission_check.get("spec") or {}
    if spec.get("controllerName") != MULTIKUEUE_CONTROLLER:
        return None
    params = spec.get("parameters") or {}
    if params.get("apiGroup") != "kueue.x-k8s.io" or params.get("kind") != "MultiKueueConfig":
        return None
    name = params.get("name")
    return str(name) if name else None


def _condition(workload: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def needs_nomination(
    workload: Mapping[str, Any],
    checks: Mapping[str, AdmissionCheckRef],
    *,
    nominated_at_s: float | None,
    now_s: float,
    renominate_after_s: float,
) -> tuple[AdmissionCheckRef | None, str]:
    """(the Workload's MultiKueue check, why) when it needs a nomination now, else (None, why not).

    The rule: a Workload is ours to nominate while its MultiKueue check is Pending, it holds a
    quota reservation, it is not finished and no cluster admitted it (`status.clusterName` unset).
    It is not nominated again while a nomination stands, unless that nomination is stale: it names
    a cluster no longer in its MultiKueueConfig, or this dispatcher made it more than
    `renominate_after` ago (no nominated cluster admitted it in that time). A nomination found
    without a time (made before a restart, or by someone else) counts as made at `now_s` by the
    caller, so a restart delays re-nomination instead of repeating it at once.
    """
    status = workload.get("status") or {}
    if status.get("clusterName"):
        return None, f"admitted to {status['clusterName']}"
    finished = _condition(workload, "Finished")
    if finished and finished.get("status") == "True":
        return None, "finished"
    quota = _condition(workload, "QuotaReserved")
    if not quota or quota.get("status") != "True":
        return None, "no quota reservation yet"
    mine = [(s, checks[s["name"]]) for s in status.get("admissionChecks") or [] if s.get("name") in checks]
    if not mine:
        return None, "no MultiKueue admission check"
    state, check = mine[0]
    if state.get("state") != "Pending":
        return None, f"MultiKueue check {check.name} is {state.get('state')}"
    nominated = list(status.get("nominatedClusterNames") or [])
    if not nominated:
        return check, "not nominated"
    gone = [n for n in nominated if n not in check.clusters]
    if gone:
        return check, f"stale: {', '.join(gone)} no longer in MultiKueueConfig {check.config}"
    if nominated_at_s is not None and now_s - nominated_at_s >= renominate_after_s:
        return check, f"stale: nominated {now_s - nominated_at_s:.0f} s ago and not admitted"
    return None, f"nominated: {', '.join(nominated)}"


# ------------------------------------------------------------------ the request
@dataclass(frozen=True)
class PodSetDemand:
    name: str
    count: int
    cpu: float  # cores per pod
    memory_bytes: float  # per pod
    gpus: float  # per pod


def _requests(container: Mapping[str, Any]) -> dict[str, float]:
    """A container's requests; a resource with only a limit requests its limit (as Kueue and
    Kubernetes default it)."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {k: parse_quantity(v) for k, v in merged.items()}


def pod_demand(pod_set: Mapping[str, Any]) -> PodSetDemand:
    """What one pod of a podSet asks for: the sum over its containers, or the largest init
    container when that is larger (Kubernetes' effective pod request)."""
    spec = ((pod_set.get("template") or {}).get("spec")) or {}
    totals: dict[str, float] = {}
    for container in spec.get("containers") or []:
        for key, value in _requests(container).items():
            totals[key] = totals.get(key, 0.0) + value
    for container in spec.get("initContainers") or []:
        for key, value in _requests(container).items():
            totals[key] = max(totals.get(key, 0.0), value)
    count = pod_set.get("count", 1)
    return PodSetDemand(
        name=str(pod_set.get("name", "main")),
        count=int(count if count is not None else 1),
        cpu=totals.get("cpu", 0.0),
        memory_bytes=totals.get("memory", 0.0),
        gpus=totals.get(GPU_RESOURCE, 0.0),
    )


def advice_job(
    workload: Mapping[str, Any],
    sites: Sequence[str],
    *,
    default_walltime_s: float,
    walltime_annotation: str,
) -> dict[str, Any]:
    """The `POST /v1/advice` body for a Workload, restricted to its worker clusters' `sites`.

    Cores and GPUs are the totals over every podSet (count × per pod, rounded up: a site must hold
    the whole Workload, as a worker cluster must admit it whole); memory is the largest pod's,
    since advice reads memory per node and a pod cannot span nodes. The walltime is
    `spec.maximumExecutionTimeSeconds` (Kueue deactivates the Workload after it), else the
    annotation, else the default.
    """
    spec = workload.get("spec") or {}
    demands = [pod_demand(p) for p in spec.get("podSets") or []]
    if not demands:
        raise ValueError("the Workload has no podSets")
    cores = max(1, math.ceil(sum(d.count * d.cpu for d in demands) - 1e-9))
    gpus = math.ceil(sum(d.count * d.gpus for d in demands) - 1e-9)
    memory = max((d.memory_bytes for d in demands if d.count > 0), default=0.0)
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    if spec.get("maximumExecutionTimeSeconds"):
        walltime = float(spec["maximumExecutionTimeSeconds"])
    elif annotations.get(walltime_annotation):
        walltime = parse_duration(annotations[walltime_annotation])
    else:
        walltime = default_walltime_s
    job: dict[str, Any] = {
        "cores": cores,
        "walltime": walltime,
        "gpus": gpus,
        "constraints": {"allowed_sites": list(sites)},
    }
    if memory > 0:
        job["memory"] = memory
    return job


# ------------------------------------------------------------------ the nomination
def nomination(
    advice: Mapping[str, Any], site_clusters: Mapping[str, Sequence[str]], cap: int
) -> tuple[list[str], list[str]]:
    """(clusters to nominate, best first; why the others are not) from one advice answer.

    The recommended site comes first (it may be the home site kept by the stay-home rule), then
    the other feasible sites in the advice's order. A site serving several clusters nominates them
    all, in the order the config lists them. Infeasible sites are never nominated; at most `cap`.
    """
    feasible = [s["site"] for s in advice.get("sites") or [] if s.get("feasible")]
    recommended = advice.get("recommended")
    if recommended in feasible:
        feasible.remove(recommended)
        feasible.insert(0, recommended)
    names: list[str] = []
    for site in feasible:
        for cluster in site_clusters.get(site, ()):
            if cluster not in names:
                names.append(cluster)
    skipped = [
        f"{s['site']}: {s.get('reason') or s.get('excluded_because')}"
        for s in advice.get("sites") or []
        if not s.get("feasible") and s["site"] in site_clusters
    ]
    if len(names) > cap:
        skipped.append(f"capped at {cap}: {', '.join(names[cap:])}")
    return names[:cap], skipped


def status_apply(workload: Mapping[str, Any], nominated: Sequence[str], manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """The server-side-apply body that sets `status.nominatedClusterNames` as `manager`.

    Applying as `kueue-admission` means applying as Kueue itself: the fields that manager already
    owns and that are left out of an apply are removed. So the body repeats, with their current
    values, every status field the manager's Apply entry in managedFields owns (Kueue's admission,
    conditions, admission checks...), and replaces only nominatedClusterNames. It carries the
    Workload's resourceVersion, so a Workload that changed since it was read is a 409, not a
    stale overwrite.
    """
    status = workload.get("status") or {}
    owned = _owned_status_fields(workload, manager)
    body_status: dict[str, Any] = {}
    for key, keys in owned.items():
        if key not in status or key == "nominatedClusterNames":
            continue
        value = status[key]
        if keys is not None and isinstance(value, list):  # a list-map: only the items owned, whole
            value = [item for item in value if _item_key(item, keys) in keys]
        body_status[key] = value
    body_status["nominatedClusterNames"] = list(nominated)
    meta = workload.get("metadata") or {}
    return {
        "apiVersion": workload.get("apiVersion", "kueue.x-k8s.io/v1beta1"),
        "kind": "Workload",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "resourceVersion": meta["resourceVersion"]},
        "status": body_status,
    }


def _owned_status_fields(workload: Mapping[str, Any], manager: str) -> dict[str, set[str] | None]:
    """status key -> the owned list-map item keys (as managedFields spells them, `k:{...}`), or None
    for a field owned whole, from `manager`'s Apply entries."""
    owned: dict[str, set[str] | None] = {}
    for entry in (workload.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        fields = ((entry.get("fieldsV1") or {}).get("f:status")) or {}
        for name, sub in fields.items():
            if not name.startswith("f:"):
                continue
            items = {k for k in (sub or {}) if k.startswith("k:")}
            previous = owned.get(name[2:], set())
            owned[name[2:]] = None if not items or previous is None else {*previous, *items}
    return owned


def _item_key(item: Any, keys: set[str]) -> str:
    """The managedFields key (`k:{"type":"QuotaReserved"}`) that `item` would have, for the key
    field names the owned keys use."""
    if not isinstance(item, dict):
        return ""
    for key in keys:
        try:
            names = list(json.loads(key[2:]))
        except ValueError:
            continue
        candidate = "k:" + json.dumps({n: item.get(n) for n in names}, separators=(",", ":"))
        if candidate == key:
            return key
    return ""
