"""A pod as placement advice sees it: a JobRequest from its resource requests and ctwin annotations.

Resources are counted as the kube-scheduler counts them (collectors.kube_objects.pod_resources).
CPU millicores are rounded up to whole cores (a batch site allocates cores), at least one; memory
is per node; GPUs are `nvidia.com/gpu`.

Annotations (all optional):

| annotation | meaning | example |
|---|---|---|
| `ctwin.io/walltime` | the kill limit a batch site plans with | `2h`, `90m`, `3600` |
| `ctwin.io/input` | data to stage in: size, `@` where it lives | `20GB@local` |
| `ctwin.io/output` | data to stage out: size, `@` where it goes | `1GB@local` |
| `ctwin.io/objective` | turnaround (default), cost, energy, co2 | `cost` |
| `ctwin.io/risk` | rank by the median (p50, default) or the p90 | `p90` |
| `ctwin.io/user` | whose history predicts the runtime | `alice` |

Walltime without `ctwin.io/walltime`: `spec.activeDeadlineSeconds` (the pod's own kill limit),
else the configured `schedulers.kubernetes.default_walltime` (1 h).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, get_args

from collectors.kube_objects import GPU_RESOURCE, PodError, parse_quantity, pod_resources
from telemetry.schema import parse_duration, parse_size
from twin.advice.request import Constraints, DataSpec, JobRequest, Objective

__all__ = ["ANNOTATION_PREFIX", "PodError", "PodInfo", "parse_quantity", "pod_info", "pod_request", "pod_resources"]

ANNOTATION_PREFIX = "ctwin.io/"
_OBJECTIVES = get_args(Objective)


@dataclass(frozen=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    annotations: Mapping[str, str]


def _data(value: str | None, what: str) -> DataSpec:
    if not value:
        return DataSpec()
    size, _, site = value.partition("@")
    try:
        return DataSpec(parse_size(size.strip()), site.strip() or None)
    except ValueError as exc:
        raise PodError(f"{ANNOTATION_PREFIX}{what}: {exc}") from None


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return PodInfo(
        str(meta.get("uid") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        annotations if isinstance(annotations, dict) else {},
    )


def pod_request(
    pod: Mapping[str, Any],
    *,
    default_walltime_s: float,
    allowed_sites: Iterable[str] = (),
    home: str | None = None,
) -> JobRequest:
    """The JobRequest for `pod` (PodError when it cannot be read)."""
    spec = pod.get("spec") or {}
    if not isinstance(spec, dict):
        raise PodError("the pod has no spec")
    notes = pod_info(pod).annotations
    resources = pod_resources(spec)
    cores = max(1, math.ceil(resources.get("cpu", Decimal(0))))
    memory = resources.get("memory")
    gpus = math.ceil(resources.get(GPU_RESOURCE, Decimal(0)))
    walltime = _walltime(notes.get(ANNOTATION_PREFIX + "walltime"), spec, default_walltime_s)
    objective = notes.get(ANNOTATION_PREFIX + "objective", "turnaround")
    if objective not in _OBJECTIVES or objective == "weighted":
        raise PodError(f"{ANNOTATION_PREFIX}objective: {objective!r} is not turnaround, cost, energy or co2")
    risk = notes.get(ANNOTATION_PREFIX + "risk", "p50")
    if risk not in ("p50", "p90"):
        raise PodError(f"{ANNOTATION_PREFIX}risk: {risk!r} is not p50 or p90")
    return JobRequest(
        cores=cores,
        walltime_s=walltime,
        gpus=gpus,
        memory_bytes=int(memory) if memory else None,
        user=notes.get(ANNOTATION_PREFIX + "user"),
        input=_data(notes.get(ANNOTATION_PREFIX + "input"), "input"),
        output=_data(notes.get(ANNOTATION_PREFIX + "output"), "output"),
        home=home,
        objective=objective,  # type: ignore[arg-type]
        risk=risk,  # type: ignore[arg-type]
        constraints=Constraints(allowed_sites=tuple(allowed_sites)),
    )


def _walltime(annotation: str | None, spec: Mapping[str, Any], default_s: float) -> int:
    if annotation is not None:
        try:
            seconds = parse_duration(annotation)
        except ValueError as exc:
            raise PodError(f"{ANNOTATION_PREFIX}walltime: {exc}") from None
    elif isinstance(spec.get("activeDeadlineSeconds"), int) and spec["activeDeadlineSeconds"] > 0:
        seconds = float(spec["activeDeadlineSeconds"])
    else:
        seconds = default_s
    if seconds > 366 * 86400:
        raise PodError(f"{ANNOTATION_PREFIX}walltime: at most 366 days")
    return max(1, math.ceil(seconds))
