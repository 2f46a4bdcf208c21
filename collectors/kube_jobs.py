"""Pods as job-history rows (telemetry.jobs.JOB_SCHEMA, source "kubernetes"): a pure function of
the API's pod objects, used by collectors.kubernetes.

- job_id `namespace/name`; the namespace is also the partition (a cluster's pods queue per
  namespace, as Kueue's LocalQueues do).
- state from the phase: Pending → PENDING, Running → RUNNING, Succeeded → COMPLETED,
  Failed → FAILED, anything else UNKNOWN.
- submit_s = metadata.creationTimestamp, start_s = status.startTime, end_s = the last container's
  terminated.finishedAt once the pod ended; exit_code = the first non-zero container exit code.
- req_cores (whole cores, rounded up), req_mem_bytes, gpus: the effective requests as the
  kube-scheduler counts them (collectors.kube_objects.pod_resources); null when not requested.
- req_walltime_s = spec.activeDeadlineSeconds; nodes = spec.nodeName; reason = the reason of the
  PodScheduled=False condition while the pod waits.
- remote_site / remote_job_id: for a pod on an interLink virtual node, the site the node fronts and
  the pod's `JobID` annotation (the remote job's id, set by the virtual kubelet once it exists):
  the join to that job's row at the remote site (telemetry.jobs.JOB_JOIN).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import polars as pl

from collectors.kube_cluster import NodeFacts, PodFacts, pod_facts
from collectors.kube_objects import GPU_RESOURCE, INTERLINK_JOB_ID
from telemetry.jobs import JOB_SCHEMA, conform_jobs

__all__ = ["PHASE_STATE", "pod_rows"]

PHASE_STATE = {"Pending": "PENDING", "Running": "RUNNING", "Succeeded": "COMPLETED", "Failed": "FAILED"}


def _unix_s(text: Any) -> int | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _terminated(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out = []
    for c in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        term = (c.get("state") or {}).get("terminated")
        if isinstance(term, Mapping):
            out.append(term)
    return out


def _row(pod: Mapping[str, Any], facts: PodFacts, nodes: Mapping[str, NodeFacts], observed_s: int) -> dict[str, Any]:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    state = PHASE_STATE.get(facts.phase, "UNKNOWN")
    ended = state in ("COMPLETED", "FAILED")
    terminated = _terminated(status) if ended else []
    finished = [t for t in (_unix_s(t.get("finishedAt")) for t in terminated) if t is not None]
    codes = [int(t["exitCode"]) for t in terminated if isinstance(t.get("exitCode"), int)]
    cpu, memory, gpus = (facts.requests.get(r) for r in ("cpu", "memory", GPU_RESOURCE))
    cores = math.ceil(cpu) if cpu is not None else None
    node = nodes.get(facts.node)
    virtual = node is not None and node.virtual
    annotations = meta.get("annotations") or {}
    deadline = spec.get("activeDeadlineSeconds")
    images = [c.get("image") for c in spec.get("containers") or () if c.get("image")]
    return {
        "source": "kubernetes",
        "job_id": f"{facts.namespace}/{facts.name}",
        "name": facts.name,
        "partition": facts.namespace,
        "submit_s": _unix_s(meta.get("creationTimestamp")),
        "start_s": _unix_s(status.get("startTime")),
        "end_s": max(finished) if finished else None,
        "req_cores": cores,
        "alloc_cores": cores if facts.node and state != "PENDING" else None,
        "req_nodes": 1,
        "alloc_nodes": 1 if facts.node else None,
        "gpus": int(gpus) if gpus is not None else None,
        "req_mem_bytes": int(memory) if memory is not None else None,
        "req_walltime_s": int(deadline) if isinstance(deadline, int) else None,
        "state": state,
        "exit_code": next((c for c in codes if c != 0), 0 if codes else None),
        "container_image": images[0] if images else None,
        "container_runtime": spec.get("runtimeClassName") or None,
        # the pod's app containers share its node; they get a network namespace of their own
        # unless the pod asks for the host's
        "containers_per_node": len(spec.get("containers") or ()) or None,
        "container_network": "host" if spec.get("hostNetwork") else "private",
        "observed_s": observed_s,
        "nodes": facts.node or None,
        "reason": facts.pending_reason if state == "PENDING" else None,
        "remote_site": node.remote_site if virtual and node is not None else None,
        "remote_job_id": str(annotations[INTERLINK_JOB_ID]) if virtual and annotations.get(INTERLINK_JOB_ID) else None,
    }


def pod_rows(
    pods: Iterable[Mapping[str, Any]],
    nodes: Iterable[NodeFacts],
    *,
    site: str | None,
    observed_s: int,
) -> pl.DataFrame:
    """One JOB_SCHEMA row per pod (module docstring)."""
    by_name = {n.name: n for n in nodes}
    rows = [{"site": site, **_row(pod, pod_facts(pod), by_name, observed_s)} for pod in pods]
    if not rows:
        return pl.DataFrame(schema=JOB_SCHEMA)
    frame = pl.DataFrame(rows, schema={k: JOB_SCHEMA[k] for k in rows[0]})
    return conform_jobs(frame).collect()
