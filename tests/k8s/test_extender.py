"""The extender end to end: a real kube-scheduler v1.20.2 (reading deploy/kube-scheduler/
scheduler-config.v1beta1.yaml) calls the real ctwin service over HTTP, with a real kube-apiserver
and etcd holding the nodes and pods (tests/k8s_cluster.py).

Both body forms, one run each:
- `names`: the shipped file as it is (`nodeCacheCapable: true`): the scheduler sends node names only,
  and ctwin maps them through its node cache, an informer listing and watching the real
  apiserver's nodes (`schedulers.kubernetes.api` with the control plane's URL, token and CA). A
  node created after the informer started is mapped once the watch delivers it;
- `full`: the same file with `nodeCacheCapable: false`: full Node objects, mapped from the bodies.

The continuum: `cluster`, this Kubernetes cluster's own nodes (a config-only site: an 8-core quota,
pods start in about 2 s), and two HPC sites replayed from the shipped PWA logs (KTH-SP2 with a 4 h
walltime limit, SDSC-SP2 with 12 h), each fronted by an interLink-style virtual node (its label,
taint and OS, the virtual kubelet's default 100 CPU / 3000G). Checked:
- each pod is bound to a node of the site its advice (found by the pod's ctwin.io/advice-id
  annotation in the advice log) recommended, and the advice log learns where it was bound (the
  job id: interLink's JobID annotation, set here as the virtual kubelet would set it, after the
  binding: no report before it, the report after it, from the pod watch's MODIFIED event);
- a site the advice finds infeasible is filtered with the advice's reason (a 6 h pod never goes
  to KTH; a pod no site can run stays Pending with ctwin's reasons in the scheduler's event);
- with ctwin stopped (`ignorable: true` in the shipped file) pods are still scheduled.
The `full` run keeps one real filter body (full Node objects, managedFields and all) as a fixture
when CTWIN_CAPTURE_FIXTURES=1 (tests/fixtures/k8s-extender/PROVENANCE.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from starlette.types import Receive, Scope, Send

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from service.hooks.extender_wire import parse_args
from tests.conftest import free_port
from tests.k8s_cluster import ControlPlane, node_object

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = ROOT / "deploy" / "kube-scheduler" / "scheduler-config.v1beta1.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "k8s-extender"
VIRTUAL = {"labels": {"virtual-node.interlink/type": "virtual-kubelet"}}
TAINT = {"key": "virtual-node.interlink/no-schedule", "value": "true", "effect": "NoSchedule"}
TOLERATION = {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"}

CONFIG = """
sites:
  - name: cluster
    kind: cloud
    description: this Kubernetes cluster's own nodes
    speed: 1.0
    cloud: {{quota_cores: 8, provisioning: {{p10: 1s, p50: 2s, p90: 5s}}}}
    pricing: {{core_hour: 0.10}}
  - name: kth-sp2
    kind: hpc
    max_walltime: 4h
    pricing: {{core_hour: 0.01}}
    collectors:
      - {{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 0.5s, speed: 600, start_offset: 30d}}
  - name: sdsc-sp2
    kind: hpc
    max_walltime: 12h
    pricing: {{core_hour: 0.05}}
    collectors:
      - {{type: replay, trace: SDSC-SP2-1998-4.2-cln.swf.gz, interval: 0.5s, speed: 600, start_offset: 30d}}
links:
  - {{between: [cluster, kth-sp2], bandwidth_gbps: 10, latency_ms: 30}}
  - {{between: [cluster, sdsc-sp2], bandwidth_gbps: 10, latency_ms: 80}}
advice: {{home: cluster}}
schedulers:
  kubernetes:
    enabled: true
    local_site: cluster
    nodes: {{vk-kth: kth-sp2}}
    api: {{url: "{url}", token_file: "{token}", ca_file: "{ca}"}}
"""


# ------------------------------------------------------------------------------------ the service
class _Capture:
    """Keeps the first filter body the scheduler sends (passed through unchanged)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.filter_body: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/filter") or self.filter_body is not None:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.filter_body = b"".join(chunks)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": self.filter_body, "more_body": False}

        await self.app(scope, replay, send)


@contextlib.contextmanager
def serving(app: Any, port: int) -> Iterator[uvicorn.Server]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="ctwin-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _wait_for_data(url: str, auth: dict[str, str]) -> None:
    """Until both replayed sites have a queue to advise on (the first collections take a moment)."""
    deadline = time.monotonic() + 60
    job = {"cores": 16, "walltime": "2h", "home": "cluster"}
    while True:
        advice = httpx.post(f"{url}/v1/advice", json=job, headers=auth, timeout=30).json()
        waiting = [s["site"] for s in advice["sites"] if s["excluded_because"] in ("no_data", "stale", "down")]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"no data from {waiting}: {advice}"
        time.sleep(0.5)


# ------------------------------------------------------------------------------------ the cluster
def _pod(name: str, cpu: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "schedulerName": "ctwin-scheduler",
            "tolerations": [TOLERATION],
            "containers": [
                {"name": "c", "image": "registry.invalid/pause:none", "resources": {"requests": {"cpu": cpu}}}
            ],
        },
    }


def _scheduler_config(tmp: Path, port: int, bodies: str) -> Path:
    doc = yaml.safe_load(DEPLOYED.read_text())
    (entry,) = doc["extenders"]
    entry["urlPrefix"] = entry["urlPrefix"].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    assert entry["ignorable"] is True and doc["percentageOfNodesToScore"] == 100
    assert entry["nodeCacheCapable"] is True  # the recommended setting, as shipped
    if bodies == "full":
        entry["nodeCacheCapable"] = False
    path = tmp / DEPLOYED.name
    path.write_text(yaml.safe_dump(doc))
    return path


def _annotation(cp: ControlPlane, ns: str, pod: str, key: str, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    with cp.client() as kube:
        while True:
            value = (kube.get(f"/api/v1/namespaces/{ns}/pods/{pod}")["metadata"].get("annotations") or {}).get(key)
            if value:
                return str(value)
            assert time.monotonic() < deadline, f"pod {pod} has no {key} annotation"
            time.sleep(0.1)


def _record(url: str, auth: dict[str, str], advice_id: str, until: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        record: dict[str, Any] = httpx.get(f"{url}/v1/advice/{advice_id}", headers=auth, timeout=10).json()
        if until is None or record.get(until) is not None or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


SITE_OF_NODE = {"node-a": "cluster", "node-b": "cluster", "vk-kth": "kth-sp2", "vk-sdsc": "sdsc-sp2"}


@pytest.mark.parametrize("bodies", ["names", "full"])
def test_pods_go_to_the_site_the_advice_ranks_first_and_scheduling_survives_ctwin_stopping(
    k8s_control_plane: ControlPlane, tmp_path: Path, bodies: str
) -> None:
    cp = k8s_control_plane
    token_file = tmp_path / "kube-token"
    token_file.write_text(cp.admin_token)
    loaded = parse_config(CONFIG.format(url=cp.url, token=token_file, ca=cp.ca_file))
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    auth = {"Authorization": f"Bearer {TokenStore(loaded.tokens_path(data)).create('t', ['admin'])[1]}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    virtual = {"cpu": "100", "memory": "3000G", "taints": [TAINT], "operating_system": "virtual-kubelet"}
    nodes = [
        node_object("node-a"),
        node_object("node-b"),
        node_object("vk-kth", labels=VIRTUAL["labels"], **virtual),  # type: ignore[arg-type]
        # mapped by its label naming the ctwin site (vk-kth is mapped in the config)
        node_object("vk-sdsc", labels={**VIRTUAL["labels"], "ctwin.io/site": "sdsc-sp2"}, **virtual),  # type: ignore[arg-type]
    ]
    app = _Capture(create_app(loaded, data, ui=False))
    config = _scheduler_config(tmp_path, port, bodies)
    with cp.nodes(*nodes), cp.namespace() as ns, cp.scheduler_from_file(config) as log:
        with serving(app, port):
            _wait_for_data(url, auth)
            cheap = {"ctwin.io/objective": "cost"}
            pods = {  # name: (pod, the site it should go to)
                # fits the cluster's quota, and its 100 GB of input are here: staying is fastest
                "small": (_pod("small", "1", {"ctwin.io/input": "100GB@cluster"}), "cluster"),
                # beyond the 4-CPU nodes; KTH's core-hour is the cheapest
                "wide": (_pod("wide", "16", {**cheap, "ctwin.io/walltime": "2h"}), "kth-sp2"),
                # beyond KTH's 4 h limit: filtered there, so SDSC, although KTH would be cheaper
                "long": (_pod("long", "16", {**cheap, "ctwin.io/walltime": "6h"}), "sdsc-sp2"),
            }
            with cp.client() as kube:
                for pod, _ in pods.values():
                    kube.create(f"/api/v1/namespaces/{ns}/pods", pod)
            for name, (_, expected) in pods.items():
                bound = cp.wait_bound(ns, name)
                assert bound is not None, (name, cp.events(ns, name), log.read_text()[-3000:])
                advice_id = _annotation(cp, ns, name, "ctwin.io/advice-id")
                record = _record(url, auth, advice_id)
                assert record["hook"] == "k8s-extender"
                assert SITE_OF_NODE[bound] == record["recommended"] == expected, (name, bound, record["ranked"])
                ranked = {s["site"]: s for s in record["ranked"]}
                if name != "small":  # the scheduler's own filter took the 4-CPU nodes out: not asked about
                    assert ranked["cluster"]["excluded_because"] == "not_allowed", ranked["cluster"]
                if name == "long":
                    assert ranked["kth-sp2"]["excluded_because"] == "walltime", ranked["kth-sp2"]
                # interLink's virtual kubelet annotates the pod with its remote job's id; ctwin reports it
                job_id = f"{ns}/{name}"
                if bound.startswith("vk-"):
                    job_id = str(4000 + len(name))
                    # bound, but no remote job yet: nothing reported until the JobID annotation comes
                    assert _record(url, auth, advice_id)["chosen_site"] is None
                    with cp.client() as kube:
                        patch = {"metadata": {"annotations": {"JobID": job_id}}}
                        kube.patch(f"/api/v1/namespaces/{ns}/pods/{name}", patch)
                reported = _record(url, auth, advice_id, until="chosen_site")
                assert (reported["chosen_site"], reported["job_id"]) == (SITE_OF_NODE[bound], job_id), reported

            # No site can run it (KTH 4 h, SDSC 12 h, the cluster's quota): Pending, with ctwin's reasons.
            with cp.client() as kube:
                kube.create(f"/api/v1/namespaces/{ns}/pods", _pod("never", "16", {"ctwin.io/walltime": "24h"}))
            assert cp.wait_bound(ns, "never", timeout_s=5) is None
            deadline = time.monotonic() + 20
            while not any("cannot run this pod" in e for e in cp.events(ns, "never")):
                assert time.monotonic() < deadline, cp.events(ns, "never")
                time.sleep(0.2)
            events = " ".join(cp.events(ns, "never"))
            assert "site kth-sp2 cannot run this pod: asks 24 h; the limit here is 4 h" in events, events
            assert "site sdsc-sp2 cannot run this pod" in events, events
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            # every name was in the cache (checked before a node is added: the scheduler's own
            # informer may retry the Pending pod with the new name before ctwin's watch delivers it)
            assert "ctwin_extender_unknown_nodes_total 0.0" in metrics
            if bodies == "names":
                _a_node_created_later_is_mapped_once_the_watch_delivers_it(cp, ns, app.app.state.service)
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            assert 'ctwin_extender_requests_total{verb="filter"}' in metrics
            assert 'ctwin_extender_fallback_total{reason="error"} 0.0' in metrics
            assert _metric(metrics, "ctwin_extender_node_cache_nodes") >= len(nodes)
            assert _metric(metrics, "ctwin_extender_node_cache_age_seconds") >= 0

        # ctwin has stopped; the same scheduler (ignorable: true) schedules without it.
        with cp.client() as kube:
            kube.create(f"/api/v1/namespaces/{ns}/pods", _pod("orphan", "1"))
        assert cp.wait_bound(ns, "orphan") in SITE_OF_NODE, (cp.events(ns, "orphan"), log.read_text()[-2000:])
        assert "connection refused" in log.read_text()
    body = app.filter_body

    assert body is not None
    args = parse_args(body)
    if bodies == "names":
        assert args.by_name and {n.name for n in args.nodes} <= set(SITE_OF_NODE) and len(body) < 8192
        return
    # a real full body, managedFields and all
    assert not args.by_name and {n.name for n in args.nodes} <= set(SITE_OF_NODE)
    assert all('"managedFields"' in (n.raw or "") for n in args.nodes)
    if os.environ.get("CTWIN_CAPTURE_FIXTURES") == "1":
        (FIXTURES / "ExtenderArgs.filter.kube-scheduler-1.20.2.json").write_bytes(body)
    else:
        assert json.loads((FIXTURES / "ExtenderArgs.filter.kube-scheduler-1.20.2.json").read_bytes())["Pod"]


def _metric(metrics: str, name: str) -> float:
    return float(next(line for line in metrics.splitlines() if line.startswith(name + " ")).split()[-1])


def _a_node_created_later_is_mapped_once_the_watch_delivers_it(cp: ControlPlane, ns: str, service: Any) -> None:
    """A virtual node labelled for KTH, created now (long after the node cache's list): once the
    watch has delivered it, the scheduler's names-only filter call maps it to KTH, and a 6 h pod
    that only it could take is filtered with KTH's walltime reason (an unknown name would pass)."""
    late = node_object(
        "vk-late",
        cpu="100",
        memory="3000G",
        labels={**VIRTUAL["labels"], "ctwin.io/site": "kth-sp2", "ctwin-test/late": "yes"},
        taints=[TAINT],
        operating_system="virtual-kubelet",
    )
    with cp.nodes(late):
        deadline = time.monotonic() + 20
        while service.node_cache.get("vk-late") is None:
            assert time.monotonic() < deadline, "the node cache's watch never delivered vk-late"
            time.sleep(0.05)
        pod = _pod("late", "16", {"ctwin.io/walltime": "6h"})
        pod["spec"]["nodeSelector"] = {"ctwin-test/late": "yes"}
        with cp.client() as kube:
            kube.create(f"/api/v1/namespaces/{ns}/pods", pod)
        deadline = time.monotonic() + 20
        while not any("cannot run this pod" in e for e in cp.events(ns, "late")):
            assert time.monotonic() < deadline, cp.events(ns, "late")
            time.sleep(0.2)
        events = " ".join(cp.events(ns, "late"))
        assert "site kth-sp2 cannot run this pod: asks 6 h; the limit here is 4 h" in events, events
        assert cp.wait_bound(ns, "late", timeout_s=1) is None
        with cp.client() as kube:
            kube.delete(f"/api/v1/namespaces/{ns}/pods/late")
