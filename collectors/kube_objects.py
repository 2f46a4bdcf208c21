"""Reading Kubernetes objects as ctwin needs them: resource quantities, a pod's effective requests,
interLink virtual nodes and which ctwin site a node is. Pure functions of the API's JSON, shared by
the Kubernetes collector (collectors.kubernetes) and the scheduler hooks (service.hooks.pods,
service.hooks.k8s_sites), which may import collectors/ but not the other way round.

Resources are counted as the kube-scheduler counts them (its NodeResourcesFit): the app
containers' requests summed (with the restartable init containers, sidecars, that run beside
them), against each ordinary init container (which runs alone, after the sidecars started before
it), whichever is larger, plus `spec.overhead`. A resource with limits but no requests counts its
limits (the API server defaults requests so).

An interLink virtual node: the virtual kubelet registers it with the label
`virtual-node.interlink/type=virtual-kubelet`, the taint
`virtual-node.interlink/no-schedule=true:NoSchedule` and the OS `virtual-kubelet`; any one of the
three marks it. Its site: a configured name → site mapping first, then its `ctwin.io/site`-style
label when that names a known site, then (virtual nodes) a site of its own name; any other plain
node is the local site, and a virtual node nothing maps is no site (None).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "GPU_RESOURCE",
    "INTERLINK_JOB_ID",
    "INTERLINK_LABEL",
    "INTERLINK_OS",
    "INTERLINK_TAINT",
    "PodError",
    "node_site",
    "parse_quantity",
    "pod_resources",
    "virtual_node",
]

GPU_RESOURCE = "nvidia.com/gpu"
INTERLINK_LABEL = ("virtual-node.interlink/type", "virtual-kubelet")
INTERLINK_TAINT = "virtual-node.interlink/no-schedule"
INTERLINK_OS = "virtual-kubelet"
INTERLINK_JOB_ID = "JobID"
"""The annotation interLink's virtual kubelet puts on a pod once the remote job exists
(pkg/virtualkubelet/execute.go: `pod.Annotations["JobID"] = resp.PodJID`): the remote job's id."""

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIX = {
    None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}  # fmt: skip


class PodError(ValueError):
    """The pod asks for something ctwin cannot read (a bad annotation or quantity)."""


def parse_quantity(text: Any) -> Decimal:
    """A Kubernetes resource.Quantity ("100m", "1.5", "64Mi", "2e3") as a number."""
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise PodError(f"invalid quantity {text!r}")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number)
        return value * (Decimal(10) ** int(exponent[1:]) if exponent else _SUFFIX[suffix])
    except (InvalidOperation, OverflowError):
        raise PodError(f"invalid quantity {text!r}") from None


def _requests(container: Mapping[str, Any]) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = {**limits, **(resources.get("requests") or {})}
    return {name: parse_quantity(value) for name, value in requests.items()}


def _add(total: dict[str, Decimal], more: Mapping[str, Decimal]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, Decimal(0)) + value


def pod_resources(spec: Mapping[str, Any]) -> dict[str, Decimal]:
    """The pod's effective requests, as the kube-scheduler computes them (module docstring)."""
    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or ():
        _add(total, _requests(container))
    sidecars: dict[str, Decimal] = {}
    peak: dict[str, Decimal] = {}
    for init in spec.get("initContainers") or ():
        need = _requests(init)
        if init.get("restartPolicy") == "Always":  # a sidecar: runs on beside everything after it
            _add(sidecars, need)
            continue
        alone = dict(sidecars)
        _add(alone, need)
        for name, value in alone.items():
            peak[name] = max(peak.get(name, Decimal(0)), value)
    _add(total, sidecars)
    for name, value in peak.items():
        total[name] = max(total.get(name, Decimal(0)), value)
    _add(total, {k: parse_quantity(v) for k, v in (spec.get("overhead") or {}).items()})
    return total


def virtual_node(labels: Mapping[str, str], operating_system: str, taints: Iterable[Mapping[str, Any]]) -> bool:
    """An interLink (virtual-kubelet) node: its label, its OS or its taint says so."""
    key, value = INTERLINK_LABEL
    return (
        labels.get(key) == value
        or operating_system == INTERLINK_OS
        or any(t.get("key") == INTERLINK_TAINT for t in taints)
    )


def node_site(
    name: str,
    labels: Mapping[str, str],
    virtual: bool,
    *,
    sites: Collection[str],
    local_site: str | None,
    mapping: Mapping[str, str],
    site_label: str,
) -> str | None:
    """The ctwin site of a node (module docstring); None for a virtual node nothing maps."""
    mapped = mapping.get(name)
    if mapped is not None:
        return mapped
    labelled = labels.get(site_label)
    if labelled in sites:
        return labelled
    if virtual:
        return name if name in sites else None
    return local_site
