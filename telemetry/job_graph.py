"""One job joined with what ran it: its row, its nodes and their series over the job's run, and,
for a pod on an interLink virtual node, the remote job it became (telemetry.jobs.JOB_JOIN:
pod.remote_site + remote_job_id → jobs.site + job_id) with that job's nodes and series.

A node's series are the store's series labelled with the job's site and `host` = the node (what
the node, kubelet and Slurm-node collectors write), downsampled to at most `max_points` buckets
over [start - pad, end + pad]; a running job's end is now. A job that has not started has no window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from telemetry.stores.base import Selection, Store

__all__ = ["MAX_NODE_SERIES", "GraphLimits", "job_graph", "job_nodes"]

MAX_NODE_SERIES = 500
"""Series of one job's nodes in one answer (a 64-node job × a few dozen families stays below)."""
HIDDEN = ("user", "group")
"""Columns a read-scope answer leaves out: people are not named by it (the export pseudonymises)."""


@dataclass(frozen=True)
class GraphLimits:
    pad_s: int = 300
    max_points: int = 120
    metrics: tuple[str, ...] = ()
    """Only these families (empty: every family of the nodes)."""


def job_nodes(row: dict[str, Any]) -> list[str]:
    return [n for n in str(row.get("nodes") or "").split(",") if n]


def _window(row: dict[str, Any], now_s: float, pad_s: int) -> tuple[int, int] | None:
    start = row.get("start_s")
    if start is None:
        return None
    ended = row.get("end_s")
    end = int(ended) if ended is not None else math.ceil(now_s)
    return int(start) - pad_s, max(end, int(start)) + pad_s + 1


def _series(store: Store, site: str, nodes: Sequence[str], window: tuple[int, int], limits: GraphLimits) -> Any:
    start_ns, end_ns = window[0] * 1_000_000_000, window[1] * 1_000_000_000
    step_ns = max(1_000_000_000, math.ceil((end_ns - start_ns) / limits.max_points))
    out: list[dict[str, Any]] = []
    for node in nodes:
        selection = Selection(
            metrics=limits.metrics, labels={"site": site, "host": node}, start_ns=start_ns, end_ns=end_ns
        )
        if len(out) + len(store.series(selection)) > MAX_NODE_SERIES:
            raise ValueError(f"the job's nodes have over {MAX_NODE_SERIES} series: name the families with `metric`")
        frame = store.query(selection, step_ns=step_ns, agg="avg")
        for (metric, labels), part in frame.group_by(["metric", "labels"], maintain_order=True):
            points = [
                [ts / 1e9, v if v is None or math.isfinite(v) else None]
                for ts, v in zip(part["ts_ns"].to_list(), part["value"].to_list(), strict=True)
            ]
            out.append({"host": node, "metric": metric, "labels": json.loads(str(labels)), "points": points})
    return out, step_ns / 1e9


def _side(store: Store, site: str, row: dict[str, Any], now_s: float, limits: GraphLimits) -> dict[str, Any]:
    nodes = job_nodes(row)
    window = _window(row, now_s, limits.pad_s)
    body: dict[str, Any] = {
        "site": site,
        "job_id": row["job_id"],
        "job": {k: v for k, v in row.items() if k not in HIDDEN},
        "nodes": nodes,
        "window": None,
        "series": [],
    }
    if window is not None and nodes:
        series, step_s = _series(store, site, nodes, window, limits)
        body["window"] = {"start_s": window[0], "end_s": window[1], "step_s": step_s}
        body["series"] = series
    return body


def job_graph(
    store: Store,
    site: str,
    job_id: str,
    *,
    now_s: float,
    known_sites: Sequence[str],
    limits: GraphLimits | None = None,
) -> dict[str, Any] | None:
    """The joined graph of the module docstring; None when the job is not in the history.
    ValueError when its nodes have more series than one answer carries."""
    limits = limits or GraphLimits()
    found = store.job(site, job_id)
    if found.is_empty():
        return None
    row = found.row(0, named=True)
    graph = _side(store, site, row, now_s, limits)
    remote_site, remote_id = row.get("remote_site"), row.get("remote_job_id")
    graph["remote"] = None
    if remote_site and remote_id:
        remote: dict[str, Any] = {"site": remote_site, "job_id": remote_id, "job": None, "nodes": [], "series": []}
        if remote_site not in known_sites:
            remote["reason"] = f"the pod's virtual node fronts {remote_site!r}, which is not a configured site"
        else:
            other: pl.DataFrame = store.job(remote_site, remote_id)
            if other.is_empty():
                remote["reason"] = f"no job {remote_id!r} at site {remote_site!r} in the job history (yet)"
            else:
                remote = {**_side(store, remote_site, other.row(0, named=True), now_s, limits), "reason": None}
        graph["remote"] = remote
    elif remote_site:
        graph["remote"] = {"site": remote_site, "job_id": None, "job": None, "nodes": [], "series": [],
                           "reason": "the virtual kubelet has not annotated the pod with its JobID (yet)"}  # fmt: skip
    return graph
