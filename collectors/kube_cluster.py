"""A Kubernetes cluster's nodes and pods as catalog samples: pure functions of the API's JSON
(`/api/v1/nodes`, `/api/v1/pods` list items), used by collectors.kubernetes.

Nodes get kube-state-metrics' families (capacity, allocatable, conditions, taints, cordon) plus
`ctwin_kube_virtual_node` and `ctwin_kube_virtual_node_capacity_missing`. Pods are counted by
phase, node and namespace (no pod names as labels: per-pod detail is the job history).

The cluster is also a batch site like any other, in telemetry.catalog.batch's vocabulary, so the
twin's site view and queue forecast read it as they read Slurm: `batch_cpus` and
`batch_memory_bytes` by state (allocated = what bound pods request, idle = the rest of a Ready,
schedulable node's allocatable, other = the allocatable of nodes that are not), `batch_nodes` by
state and `batch_jobs`/`batch_jobs_cpus` with the pod's namespace as the partition. interLink
virtual nodes count like any node: the kube-scheduler places pods on them. One that reports no cpu
or memory adds nothing here and is flagged, so the twin marks the capacity unknown instead of
taking the site for drained (twin.state.LiveState.capacity_unknown).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from collectors.base import Emit
from collectors.kube_objects import GPU_RESOURCE, PodError, parse_quantity, pod_resources, virtual_node
from telemetry.catalog import batch as bm
from telemetry.catalog import kubernetes as km

__all__ = ["NodeFacts", "PodFacts", "emit_cluster", "node_facts", "pod_facts", "resource_label"]

ACTIVE_PHASES = ("Pending", "Running")
"""Phases in which a bound pod holds its node's resources (Succeeded and Failed ones do not)."""
CAPACITY_NEEDED = ("cpu", "memory")
"""What a virtual node must report for its capacity to be known."""


def resource_label(name: str) -> str:
    """A resource name as kube-state-metrics spells it in labels (`nvidia.com/gpu` → nvidia_com_gpu)."""
    return name.replace(".", "_").replace("/", "_").replace("-", "_")


def _unit(resource: str) -> str:
    if resource == "cpu":
        return "core"
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        return "byte"
    return "integer"


def _quantities(raw: Any) -> dict[str, Decimal]:
    """A capacity/allocatable map; a quantity the API would never send is dropped, not fatal."""
    out: dict[str, Decimal] = {}
    for name, text in (raw or {}).items():
        try:
            out[str(name)] = parse_quantity(text)
        except PodError:
            continue
    return out


@dataclass(frozen=True)
class NodeFacts:
    name: str
    virtual: bool
    remote_site: str | None
    """For a virtual node: the ctwin site it fronts (node mapping, else its site label)."""
    capacity: dict[str, Decimal]
    allocatable: dict[str, Decimal]
    conditions: dict[str, str]
    """type → "True" / "False" / "Unknown"."""
    taints: tuple[Mapping[str, Any], ...]
    unschedulable: bool

    @property
    def schedulable(self) -> bool:
        return self.conditions.get("Ready") == "True" and not self.unschedulable

    @property
    def missing_capacity(self) -> tuple[str, ...]:
        """A virtual node's cpu/memory reported as zero or not at all (a plain node: none)."""
        if not self.virtual:
            return ()
        return tuple(r for r in CAPACITY_NEEDED if self.allocatable.get(r, Decimal(0)) <= 0)


def node_facts(node: Mapping[str, Any], mapping: Mapping[str, str], site_label: str) -> NodeFacts:
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    name = str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    taints = tuple(t for t in spec.get("taints") or () if isinstance(t, Mapping))
    virtual = virtual_node(labels, str((status.get("nodeInfo") or {}).get("operatingSystem") or ""), taints)
    remote = (mapping.get(name) or labels.get(site_label) or None) if virtual else None
    return NodeFacts(
        name=name,
        virtual=virtual,
        remote_site=remote,
        capacity=_quantities(status.get("capacity")),
        allocatable=_quantities(status.get("allocatable")),
        conditions={str(c.get("type")): str(c.get("status")) for c in status.get("conditions") or () if c.get("type")},
        taints=taints,
        unschedulable=bool(spec.get("unschedulable")),
    )


@dataclass(frozen=True)
class PodFacts:
    namespace: str
    name: str
    phase: str
    node: str
    """spec.nodeName; empty while unbound."""
    requests: dict[str, Decimal] = field(default_factory=dict)
    pending_reason: str | None = None
    """The PodScheduled=False condition's reason (Unschedulable, ...)."""
    error: str | None = None
    """Why the requests could not be read (the pod is still counted, with no requests)."""


def pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    error = None
    try:
        requests = pod_resources(spec)
    except PodError as exc:
        requests, error = {}, str(exc)
    reason = None
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reason = str(cond.get("reason") or "Unknown")
    return PodFacts(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        phase=str(status.get("phase") or "Unknown"),
        node=str(spec.get("nodeName") or ""),
        requests=requests,
        pending_reason=reason,
        error=error,
    )


def _bool_status(status: str) -> str:
    return {"True": "true", "False": "false"}.get(status, "unknown")


def _emit_node(emit: Emit, n: NodeFacts) -> None:
    for metric, values in ((km.NODE_CAPACITY, n.capacity), (km.NODE_ALLOCATABLE, n.allocatable)):
        for resource, value in sorted(values.items()):
            labels = {"node": n.name, "resource": resource_label(resource), "unit": _unit(resource)}
            emit(metric, float(value), labels)
    for condition, status in sorted(n.conditions.items()):
        have = _bool_status(status)
        for s in ("true", "false", "unknown"):
            emit(km.NODE_CONDITION, 1.0 if s == have else 0.0, {"node": n.name, "condition": condition, "status": s})
    for taint in n.taints:
        labels = {
            "node": n.name,
            "key": str(taint.get("key") or ""),
            "value": str(taint.get("value") or ""),
            "effect": str(taint.get("effect") or ""),
        }
        emit(km.NODE_TAINT, 1.0, labels)
    emit(km.NODE_TAINTS, float(len(n.taints)), {"node": n.name})
    emit(km.NODE_UNSCHEDULABLE, 1.0 if n.unschedulable else 0.0, {"node": n.name})
    emit(km.VIRTUAL_NODE, 1.0 if n.virtual else 0.0, {"node": n.name, "remote_site": n.remote_site or ""})
    if n.virtual:
        missing = n.missing_capacity
        for resource in CAPACITY_NEEDED:
            labels = {"node": n.name, "remote_site": n.remote_site or "", "resource": resource}
            emit(km.VIRTUAL_NO_CAPACITY, 1.0 if resource in missing else 0.0, labels)


_POD_RESOURCES = ("cpu", "memory", GPU_RESOURCE)


def _emit_pods(emit: Emit, pods: Iterable[PodFacts]) -> None:
    counts: Counter[tuple[str, str, str]] = Counter()
    requests: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    pending: Counter[str] = Counter()
    for p in pods:
        key = (p.phase, p.node, p.namespace)
        counts[key] += 1
        for resource in _POD_RESOURCES:
            if resource in p.requests:
                requests[(*key, resource)] += p.requests[resource]
        if p.phase == "Pending" and not p.node:
            pending[p.pending_reason or "none"] += 1
    for (phase, node, namespace), n in sorted(counts.items()):
        emit(km.PODS, float(n), {"phase": phase, "node": node, "namespace": namespace})
    for (phase, node, namespace, resource), value in sorted(requests.items()):
        labels = {"phase": phase, "node": node, "namespace": namespace, "resource": resource_label(resource)}
        emit(km.POD_REQUESTS, float(value), labels)
    for reason, n in sorted(pending.items()):
        emit(km.PODS_PENDING, float(n), {"reason": reason})


def _emit_batch(emit: Emit, nodes: Iterable[NodeFacts], pods: Iterable[PodFacts]) -> None:
    """The cluster in the batch-site vocabulary (module docstring)."""
    held: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    bound_pods: Counter[str] = Counter()
    jobs: Counter[tuple[str, str]] = Counter()
    job_cpus: dict[tuple[str, str], float] = defaultdict(float)
    for p in pods:
        if p.phase not in ACTIVE_PHASES:
            continue
        if p.node:
            bound_pods[p.node] += 1
            for resource in ("cpu", "memory"):
                held[p.node][resource] += p.requests.get(resource, Decimal(0))
        state = "running" if p.phase == "Running" else "pending"  # as the job rows say (collectors.kube_jobs)
        jobs[(p.namespace, state)] += 1
        job_cpus[(p.namespace, state)] += math.ceil(p.requests.get("cpu", Decimal(0)))
    cpus: dict[str, float] = {"allocated": 0.0, "idle": 0.0, "other": 0.0}
    memory: dict[str, float] = {"allocated": 0.0, "idle": 0.0, "other": 0.0}
    node_states: Counter[str] = Counter({"allocated": 0, "idle": 0, "other": 0})
    for n in nodes:
        for resource, out in (("cpu", cpus), ("memory", memory)):
            total = float(n.allocatable.get(resource, Decimal(0)))
            if not n.schedulable:
                out["other"] += total
                continue
            used = min(total, float(held[n.name][resource]))
            out["allocated"] += used
            out["idle"] += total - used
        node_states["other" if not n.schedulable else ("allocated" if bound_pods[n.name] else "idle")] += 1
    for state, value in cpus.items():
        emit(bm.CPUS, value, {"state": state})
    for state, value in memory.items():
        emit(bm.MEMORY, value, {"state": state})
    for state, count in node_states.items():
        emit(bm.NODES, float(count), {"state": state})
    for (namespace, state), count in sorted(jobs.items()):
        emit(bm.JOBS, float(count), {"partition": namespace, "state": state})
        emit(bm.JOBS_CPUS, job_cpus[(namespace, state)], {"partition": namespace, "state": state})


def emit_cluster(emit: Emit, nodes: list[NodeFacts], pods: list[PodFacts]) -> None:
    """Every family of the module docstring for one list of the cluster's nodes and pods."""
    for node in nodes:
        _emit_node(emit, node)
    _emit_pods(emit, pods)
    _emit_batch(emit, nodes, pods)
