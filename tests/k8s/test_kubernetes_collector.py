"""The kubernetes collector against a real kube-apiserver v1.20.2 (tests/k8s_cluster.py).

The cluster: a plain node, a cordoned one, an interLink virtual node fronting site `hpc` (by its
label) and one reporting 0 CPU (mapped to `cloud` by the config). The real kube-scheduler binds
one pod and marks a too-big one Unschedulable; the test binds the others through the Binding
subresource, as the scheduler would, and writes their status through the status subresource, as a
kubelet (or the virtual kubelet, which also sets the JobID annotation) would.

The second test runs the collector from a YAML config inside the service (pipeline, DuckDB store,
twin, API): the pods are the site's queue, the empty virtual node makes its capacity unknown, and
`/v1/jobs` joins the remote pod with its Slurm job.

With CTWIN_CAPTURE_KUBE=DIR the nodes and pods the API served are written there (that is how
tests/fixtures/kubernetes/cluster/ was made; see its PROVENANCE.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from collectors.base import Recorder
from collectors.kube_api import KubeClient
from collectors.kubernetes import KubernetesCollector, KubernetesConfig
from telemetry.catalog import batch as bm
from telemetry.catalog import kubernetes as km
from tests.k8s_cluster import ControlPlane, node_object, until

pytestmark = pytest.mark.integration

INTERLINK = {
    "taints": [{"key": "virtual-node.interlink/no-schedule", "value": "true", "effect": "NoSchedule"}],
    "operating_system": "virtual-kubelet",
}
TOLERATE = [{"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"}]
STAMP = "2026-12-03T10:00:00Z"


def _nodes() -> list[dict[str, Any]]:
    cordoned = node_object("kc-node-b", cpu="8", memory="16Gi")
    cordoned["spec"]["unschedulable"] = True
    return [
        node_object("kc-node-a", cpu="4", memory="8Gi", gpus=1),
        cordoned,
        node_object(
            "kc-vk-hpc",
            cpu="64",
            memory="256Gi",
            labels={"virtual-node.interlink/type": "virtual-kubelet", "ctwin.io/site": "hpc"},
            **INTERLINK,  # type: ignore[arg-type]
        ),
        node_object("kc-vk-empty", cpu="0", memory="0", **INTERLINK),  # type: ignore[arg-type]
    ]


def _pod(name: str, cpu: str, memory: str, *, scheduler: str = "default-scheduler", **spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "registry.invalid/pause:none",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], "schedulerName": scheduler, **spec},
    }


def _bind(kube: KubeClient, ns: str, pod: str, node: str) -> None:
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod}, "target": {"kind": "Node", "name": node}}
    kube.create(f"/api/v1/namespaces/{ns}/pods/{pod}/binding", body)


def _status(kube: KubeClient, ns: str, pod: str, status: dict[str, Any]) -> None:
    kube.patch(f"/api/v1/namespaces/{ns}/pods/{pod}", {"status": status}, subresource="status")


def _terminated(code: int) -> list[dict[str, Any]]:
    term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": STAMP,
            "finishedAt": "2026-12-03T10:05:00Z"}  # fmt: skip
    return [{"name": "main", "ready": False, "restartCount": 0, "image": "registry.invalid/pause:none",
             "imageID": "", "state": {"terminated": term}}]  # fmt: skip


def _build(cp: ControlPlane, ns: str) -> None:
    """The pods of the module docstring, in namespace `ns` (nodes already created)."""
    with cp.client() as kube:
        base = f"/api/v1/namespaces/{ns}/pods"
        with cp.scheduler():
            kube.create(base, _pod("web-1", "500m", "256Mi"))
            kube.create(base, _pod("big-1", "64", "1Gi"))
            assert cp.wait_bound(ns, "web-1") == "kc-node-a"

            def unschedulable() -> bool:
                conditions = kube.get(f"{base}/big-1").get("status", {}).get("conditions") or []
                return any(c.get("type") == "PodScheduled" and c.get("status") == "False" for c in conditions)

            until("big-1 marked Unschedulable", unschedulable)
        running = {"phase": "Running", "startTime": STAMP}
        _status(kube, ns, "web-1", running)
        for name, cpu in (("done-1", "1"), ("fail-1", "2")):
            kube.create(base, _pod(name, cpu, "128Mi", scheduler="manual"))
            _bind(kube, ns, name, "kc-node-a")
        _status(kube, ns, "done-1", {"phase": "Succeeded", "startTime": STAMP, "containerStatuses": _terminated(0)})
        _status(kube, ns, "fail-1", {"phase": "Failed", "startTime": STAMP, "containerStatuses": _terminated(3)})
        kube.create(base, _pod("remote-1", "3", "2Gi", scheduler="manual", tolerations=TOLERATE))
        _bind(kube, ns, "remote-1", "kc-vk-hpc")
        kube.patch(f"{base}/remote-1", {"metadata": {"annotations": {"JobID": "2"}}})
        _status(kube, ns, "remote-1", running)
        kube.create(base, _pod("fresh-1", "1", "64Mi", scheduler="manual"))


def _capture(cp: ControlPlane, ns: str) -> None:
    target = os.environ.get("CTWIN_CAPTURE_KUBE")
    if not target:
        return
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    with cp.client() as kube:
        nodes = [n for n in kube.list("/api/v1/nodes")["items"] if n["metadata"]["name"].startswith("kc-")]
        pods = kube.list(f"/api/v1/namespaces/{ns}/pods")["items"]
    for doc in (*nodes, *pods):
        doc["metadata"].pop("managedFields", None)
    (out / "nodes.json").write_text(json.dumps({"kind": "NodeList", "items": nodes}, indent=1) + "\n")
    (out / "pods.json").write_text(json.dumps({"kind": "PodList", "items": pods}, indent=1) + "\n")


def test_the_collector_reads_nodes_pods_and_the_queue(k8s_control_plane: ControlPlane, caplog: Any) -> None:
    cp = k8s_control_plane
    with cp.nodes(*_nodes()), cp.namespace() as ns:
        _build(cp, ns)
        _capture(cp, ns)
        config = KubernetesConfig(
            kubeconfig=cp.kubeconfig(), site="k8s", nodes={"kc-vk-empty": "cloud"}, namespaces=[ns]
        )
        collector = KubernetesCollector(config)
        try:
            rec = Recorder()
            with caplog.at_level("WARNING"):
                collector.gather(rec)
                collector.gather(Recorder())  # a second look logs nothing new
            rows = collector.job_updates()
        finally:
            collector.close()

    # nodes: capacity, conditions, taints, the virtual flag and the missing capacity
    assert rec.get(km.NODE_ALLOCATABLE, node="kc-node-a", resource="cpu") == 4
    assert rec.get(km.NODE_CAPACITY, node="kc-node-a", resource="memory", unit="byte") == 8 * 2**30
    assert rec.get(km.NODE_CAPACITY, node="kc-node-a", resource="nvidia_com_gpu") == 1
    assert rec.get(km.NODE_CONDITION, node="kc-node-a", condition="Ready", status="true") == 1
    assert rec.get(km.NODE_UNSCHEDULABLE, node="kc-node-b") == 1
    assert rec.get(km.NODE_TAINTS, node="kc-vk-hpc") == 1 and rec.get(km.NODE_TAINTS, node="kc-node-a") == 0
    assert rec.get(km.VIRTUAL_NODE, node="kc-vk-hpc", remote_site="hpc") == 1
    assert rec.get(km.VIRTUAL_NODE, node="kc-node-a") == 0
    assert rec.get(km.VIRTUAL_NO_CAPACITY, node="kc-vk-empty", remote_site="cloud", resource="cpu") == 1
    assert rec.get(km.VIRTUAL_NO_CAPACITY, node="kc-vk-hpc", resource="cpu") == 0
    flagged = [r.getMessage() for r in caplog.records if "kc-vk-empty" in r.getMessage()]
    assert len(flagged) == 2 and "no allocatable cpu" in flagged[0]  # cpu and memory, once each

    # pods counted by phase, node and namespace; pending ones by reason
    assert rec.get(km.PODS, phase="Running", node="kc-node-a", namespace=ns) == 1
    assert rec.get(km.PODS, phase="Pending", node="", namespace=ns) == 2
    assert rec.get(km.PODS_PENDING, reason="Unschedulable") == 1 and rec.get(km.PODS_PENDING, reason="none") == 1
    assert rec.get(km.POD_REQUESTS, phase="Running", node="kc-vk-hpc", namespace=ns, resource="cpu") == 3

    # the cluster as a batch site: node-a (4) + vk-hpc (64) schedulable, node-b (8) cordoned
    assert rec.get(bm.CPUS, state="allocated") == 0.5 + 3
    assert rec.get(bm.CPUS, state="idle") == 4 + 64 - 3.5
    assert rec.get(bm.CPUS, state="other") == 8
    assert rec.get(bm.JOBS, partition=ns, state="pending") == 2

    # job rows
    assert rows is not None
    by_id = {r["job_id"]: r for r in rows.to_dicts()}
    assert set(by_id) == {f"{ns}/{n}" for n in ("web-1", "big-1", "done-1", "fail-1", "remote-1", "fresh-1")}
    web, big, done, fail = (by_id[f"{ns}/{n}"] for n in ("web-1", "big-1", "done-1", "fail-1"))
    assert (web["state"], web["nodes"], web["req_cores"], web["req_mem_bytes"]) == (
        "RUNNING",
        "kc-node-a",
        1,
        256 * 2**20,
    )
    assert web["start_s"] == 1_796_292_000 and web["submit_s"] is not None and web["source"] == "kubernetes"
    assert (big["state"], big["reason"], big["nodes"], big["req_cores"]) == ("PENDING", "Unschedulable", None, 64)
    assert (done["state"], done["exit_code"], done["end_s"]) == ("COMPLETED", 0, 1_796_292_300)
    assert (fail["state"], fail["exit_code"]) == ("FAILED", 3)
    remote = by_id[f"{ns}/remote-1"]
    assert (remote["remote_site"], remote["remote_job_id"], remote["nodes"]) == ("hpc", "2", "kc-vk-hpc")
    assert web["remote_site"] is None and web["remote_job_id"] is None
    assert rows["site"].unique().to_list() == ["k8s"]


def test_end_to_end_the_served_twin_shows_the_pods_queue_and_the_joined_graph(
    k8s_control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The collector configured in YAML, run by the service's pipeline into its DuckDB store and
    twin; the remote Slurm job (the real squeue capture's job 2) is in the same history."""
    from fastapi.testclient import TestClient

    from collectors.slurm_json import parse_jobs
    from service.app import create_app
    from service.auth import TokenStore
    from service.config import parse_config

    cp = k8s_control_plane
    squeue = (
        Path(__file__).parents[1] / "fixtures" / "slurm" / "v0.0.38" / "four_emulated_nodes" / "squeue_4nodes_t2s.json"
    )
    with cp.nodes(*_nodes()), cp.namespace() as ns:
        _build(cp, ns)
        config = f"""
sites:
  - name: k8s
    kind: cloud
    collectors:
      - type: kubernetes
        interval: 0.5s
        kubeconfig: "{cp.kubeconfig()}"
        namespaces: [{ns}]
        nodes: {{kc-vk-empty: cloud}}
  - {{name: hpc, kind: hpc}}
  - {{name: cloud, kind: cloud}}
"""
        loaded = parse_config(config)
        token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
        headers = {"Authorization": f"Bearer {token}"}
        app = create_app(loaded, tmp_path, ui=False)
        with TestClient(app) as client:
            app.state.service.store.append_jobs(parse_jobs(squeue.read_text(), squeue.name, site="hpc").frame)

            def queue() -> Any:
                jobs = client.get("/v1/sites/k8s/jobs", headers=headers).json()["jobs"]
                return jobs if len(jobs) == 4 else None

            jobs = until("the pods as the site's queue", queue, timeout_s=30)
            pending = sorted(j["job_id"] for j in jobs if j["state"] == "PENDING")
            assert pending == [f"{ns}/big-1", f"{ns}/fresh-1"]
            site = until(  # the samples may reach the twin just after the rows
                "the site view",
                lambda: (v := client.get("/v1/sites/k8s", headers=headers).json())["jobs_pending"] and v,
            )
            assert site["jobs_pending"] == 2 and site["cpus_total"] is None  # kc-vk-empty: unknown, not drained
            refused = client.get("/v1/sites/k8s/forecast", headers=headers)
            assert refused.status_code == 409 and "kc-vk-empty" in refused.json()["error"]["message"]
            graph = until(
                "the pod's row in the store",
                lambda: (
                    (r := client.get(f"/v1/jobs/k8s/{ns}/remote-1", headers=headers)).status_code == 200 and r.json()
                ),
            )
            assert graph["nodes"] == ["kc-vk-hpc"] and graph["job"]["state"] == "RUNNING"
            assert graph["remote"]["site"] == "hpc" and graph["remote"]["nodes"] == ["node1", "node2", "node3"]
