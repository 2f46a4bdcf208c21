"""Nodes and pods → samples and job rows (collectors.kube_cluster, kube_jobs), on the NodeList and
PodList a real kube-apiserver served (tests/fixtures/kubernetes/PROVENANCE.md); the collector's
config; and the twin reading the result: pending pods as the site's queue, a virtual node with no
capacity making the capacity unknown rather than drained."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.base import Recorder
from collectors.kube_cluster import emit_cluster, node_facts, pod_facts
from collectors.kube_jobs import pod_rows
from collectors.kubernetes import KubernetesConfig
from service.config import ConfigError, parse_config
from telemetry.catalog import batch as bm
from telemetry.catalog import kubernetes as km
from telemetry.jobs import JOB_SCHEMA
from telemetry.schema import Batch, Sample
from twin.errors import NoBatchQueueError
from twin.live import build_twin
from twin.topology import CollectorSpec, SiteSpec, Topology

CLUSTER = Path(__file__).parents[1] / "fixtures" / "kubernetes" / "cluster"
NS = "t-3ada89fe23"
MAPPING = {"kc-vk-empty": "cloud"}


def _items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((CLUSTER / name).read_text())["items"]
    return items


def _gathered(drop: tuple[str, ...] = (), at_s: int = 1_796_292_600) -> tuple[Recorder, Any]:
    nodes = [node_facts(n, MAPPING, "ctwin.io/site") for n in _items("nodes.json")]
    nodes = [n for n in nodes if n.name not in drop]
    pods = _items("pods.json")
    rec = Recorder(default_ts_ns=at_s * 10**9)
    emit_cluster(rec, nodes, [pod_facts(p) for p in pods])
    return rec, pod_rows(pods, nodes, site="k8s", observed_s=at_s)


def test_nodes_become_kube_state_metrics_families_and_flags() -> None:
    rec, _ = _gathered()
    assert rec.get(km.NODE_CAPACITY, node="kc-node-a", resource="cpu", unit="core") == 4
    assert rec.get(km.NODE_ALLOCATABLE, node="kc-vk-hpc", resource="memory", unit="byte") == 256 * 2**30
    assert rec.get(km.NODE_ALLOCATABLE, node="kc-node-a", resource="pods", unit="integer") == 110
    assert rec.get(km.NODE_CONDITION, node="kc-node-b", condition="Ready", status="false") == 0
    assert rec.get(km.NODE_UNSCHEDULABLE, node="kc-node-b") == 1
    assert rec.get(km.NODE_TAINT, node="kc-vk-empty", key="virtual-node.interlink/no-schedule") == 1
    assert rec.get(km.VIRTUAL_NODE, node="kc-vk-empty", remote_site="cloud") == 1  # by the mapping
    assert rec.get(km.VIRTUAL_NODE, node="kc-vk-hpc", remote_site="hpc") == 1  # by its label
    missing = {
        (s.labels["node"], s.labels["resource"])
        for s in rec.samples
        if s.metric == km.VIRTUAL_NO_CAPACITY.name and s.value
    }
    assert missing == {("kc-vk-empty", "cpu"), ("kc-vk-empty", "memory")}
    assert not any(s.metric == km.VIRTUAL_NO_CAPACITY.name and s.labels["node"] == "kc-node-a" for s in rec.samples)


def test_pods_are_counted_without_pod_labels_and_the_cluster_is_a_batch_site() -> None:
    rec, _ = _gathered()
    assert all("pod" not in s.labels for s in rec.samples)
    assert rec.get(km.PODS, phase="Succeeded", node="kc-node-a", namespace=NS) == 1
    assert rec.get(km.POD_REQUESTS, phase="Pending", node="", namespace=NS, resource="cpu") == 64 + 1
    assert rec.get(km.POD_REQUESTS, phase="Running", node="kc-node-a", namespace=NS, resource="memory") == 256 * 2**20
    # bound Running pods hold cpu (web-1 0.5 on node-a, remote-1 3 on vk-hpc); ended ones do not
    assert rec.get(bm.CPUS, state="allocated") == 3.5 and rec.get(bm.CPUS, state="other") == 8
    assert rec.get(bm.NODES, state="allocated") == 2 and rec.get(bm.NODES, state="idle") == 1  # vk-empty
    assert rec.get(bm.NODES, state="other") == 1
    assert rec.get(bm.JOBS, partition=NS, state="running") == 2
    assert rec.get(bm.JOBS_CPUS, partition=NS, state="pending") == 65


def test_pods_become_job_rows() -> None:
    _, rows = _gathered()
    assert rows.schema == dict(JOB_SCHEMA)
    got = {r["job_id"].split("/")[1]: r for r in rows.to_dicts()}
    assert {r["job_id"].split("/")[0] for r in rows.to_dicts()} == {NS}
    keys = ("state", "nodes", "req_cores", "alloc_cores", "reason", "exit_code", "remote_site", "remote_job_id")
    assert {name: tuple(r[k] for k in keys) for name, r in got.items()} == {
        "web-1": ("RUNNING", "kc-node-a", 1, 1, None, None, None, None),
        "big-1": ("PENDING", None, 64, None, "Unschedulable", None, None, None),
        "fresh-1": ("PENDING", None, 1, None, None, None, None, None),
        "done-1": ("COMPLETED", "kc-node-a", 1, 1, None, 0, None, None),
        "fail-1": ("FAILED", "kc-node-a", 2, 2, None, 3, None, None),
        "remote-1": ("RUNNING", "kc-vk-hpc", 3, 3, None, None, "hpc", "2"),
    }
    web = got["web-1"]
    assert (web["source"], web["partition"], web["start_s"], web["req_mem_bytes"]) == (
        "kubernetes",
        NS,
        1_796_292_000,
        256 * 2**20,
    )
    created = next(p["metadata"]["creationTimestamp"] for p in _items("pods.json") if p["metadata"]["name"] == "web-1")
    assert web["submit_s"] == int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    assert got["done-1"]["end_s"] == 1_796_292_300 and got["big-1"]["start_s"] is None


def test_the_config_is_typed() -> None:
    with pytest.raises(ValueError, match="not both"):
        KubernetesConfig(url="https://k:6443", kubeconfig=Path("/k"))
    with pytest.raises(ValueError, match="go with url"):
        KubernetesConfig(token_file=Path("/t"))
    text = (
        "sites:\n- name: k8s\n  kind: cloud\n  collectors:\n  - type: kubernetes\n    kubeconfig: /k\n    nodez: {}\n"
    )
    with pytest.raises(ConfigError, match=r"collectors\[0\]\.nodez: unknown key"):
        parse_config(text)
    bad_site = text.replace("nodez: {}", "nodes: {vk: nowhere}")
    with pytest.raises(ConfigError, match="no site named 'nowhere'"):
        parse_config(bad_site)
    ok = parse_config(text.replace("nodez: {}", "nodes: {vk: k8s}\n    interval: 30s"))
    assert ok.collectors[0].entry.interval == 30 and ok.collectors[0].config.nodes == {"vk": "k8s"}  # type: ignore[attr-defined]


def _write(twin: Any, rec: Recorder, rows: Any) -> None:
    twin.state.write(
        Batch.from_samples([Sample(s.metric, s.value, {**s.labels, "site": "k8s"}, s.ts_ns) for s in rec.samples])
    )
    twin.state.write_jobs(rows)


def _twin_of(rec: Recorder, rows: Any) -> Any:
    topology = Topology((SiteSpec("k8s", "cloud", collectors=(CollectorSpec("k8s/kubernetes", "kubernetes", 30.0),)),))
    twin = build_twin(topology, None, clock=lambda: 1_796_292_600.0)
    _write(twin, rec, rows)
    return twin


def test_the_twin_takes_pending_pods_as_the_queue_and_missing_capacity_as_unknown() -> None:
    twin = _twin_of(*_gathered())
    queue = twin.queue("k8s")
    assert sorted(queue.filter(queue["state"] == "PENDING")["job_id"].to_list()) == [f"{NS}/big-1", f"{NS}/fresh-1"]
    assert queue.height == 4  # and the two running pods; ended ones are history
    assert twin.state.capacity_unknown("k8s") == ["kc-vk-empty"]
    assert twin.state.cpus_in_service("k8s") is None and twin.site("k8s").cpus_total is None
    assert twin.site("k8s").jobs_pending == 2
    with pytest.raises(NoBatchQueueError, match=r"capacity unknown: interLink virtual node\(s\) kc-vk-empty"):
        twin.forecast("k8s", "requested")

    known = _twin_of(*_gathered(drop=("kc-vk-empty",)))  # without it: a site like any other
    assert known.state.cpus_in_service("k8s") == 4 + 64
    assert known.site("k8s").cpus_total == 4 + 8 + 64
    forecast = known.forecast("k8s", "requested")
    assert forecast.site == "k8s"

    _write(twin, *_gathered(drop=("kc-vk-empty",), at_s=1_796_292_630))  # the empty node was deleted
    assert twin.state.capacity_unknown("k8s") == [] and twin.state.cpus_in_service("k8s") == 68
