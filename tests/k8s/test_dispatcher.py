"""`ctwin dispatcher` against a REAL kube-apiserver (v1.20.2) holding Kueue's published CRDs
(tests/kueue_crds.py: trimmed only of what 1.20 cannot express), and the REAL ctwin service
(uvicorn on a free port, two replayed HPC sites and a cloud site as the worker clusters).

Kueue itself cannot run here (no Go module proxy to build it), so the test plays Kueue's part the
way Kueue does it: it reserves quota for a Workload and marks its MultiKueue check Pending by
server-side applying the status as field manager `kueue-admission`, and, when a worker admits the
Workload, sets `status.clusterName` by applying again without nominatedClusterNames.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from collectors.kube_api import KubeClient
from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from service.config_schedulers import MultiKueueHookConfig
from service.hooks.dispatcher import AdviceClient, Dispatcher
from service.hooks.multikueue import ALL_AT_ONCE, FIELD_MANAGER, MULTIKUEUE_CONTROLLER
from tests.conftest import free_port
from tests.k8s_cluster import ControlPlane
from tests.kueue_crds import install

pytestmark = pytest.mark.integration

G = "/apis/kueue.x-k8s.io/v1beta1"
SERVICE = """
sites:
  - name: kth-sp2
    kind: hpc
    collectors: [{type: replay, interval: 1s, trace: KTH-SP2-1996-2.1-cln.swf.gz, speed: 60, start_offset: 30d}]
  - name: sdsc-sp2
    kind: hpc
    collectors: [{type: replay, interval: 1s, trace: SDSC-SP2-1998-4.2-cln.swf.gz, speed: 60, start_offset: 30d}]
  - name: cloud-eu
    kind: cloud
    pricing: {core_hour: 0.048}
    cloud: {provisioning: {p10: 45s, p50: 90s, p90: 4m}, quota_cores: 256}
links:  # the Workload's home (where its input would live) reaches every worker
  - {between: [sdsc-sp2, kth-sp2], bandwidth_gbps: 10, latency_ms: 30}
  - {between: [sdsc-sp2, cloud-eu], bandwidth_gbps: 1, latency_ms: 25}
advice: {home: sdsc-sp2}
"""
CLUSTERS = {"worker-kth": "kth-sp2", "worker-sdsc": "sdsc-sp2", "worker-cloud": "cloud-eu"}
STAMP = "2026-01-01T00:00:00Z"


@pytest.fixture
def ctwin(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The ctwin service on uvicorn in a thread: (its URL, an advise token), once every site reports."""
    loaded = parse_config(SERVICE)
    token = TokenStore(loaded.tokens_path(tmp_path)).create("dispatcher", ["advise"])[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(loaded, tmp_path, ui=False), host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        headers = {"Authorization": f"Bearer {token}"}
        while True:  # the replayed sites' first collection; advice says no_data until then
            sites = httpx.post(f"{url}/v1/advice", json={"cores": 1, "walltime": 60}, headers=headers).json()["sites"]
            if all(s["excluded_because"] != "no_data" for s in sites) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        yield url, token
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _workload(name: str, queue: str, *, pods: int, cpu: str, memory: str = "1Gi", seconds: int = 3600) -> dict:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "Workload",
        "metadata": {"name": name},
        "spec": {
            "queueName": queue,
            "maximumExecutionTimeSeconds": seconds,
            "podSets": [{
                "name": "main", "count": pods,
                "template": {"spec": {"restartPolicy": "Never", "containers": [{
                    "name": "c", "image": "registry.invalid/job:none",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }]}},
            }],
        },
    }  # fmt: skip


def _kueue_reserves(kube: KubeClient, ns: str, name: str, cq: str, check: str, **extra: Any) -> None:
    """What Kueue's scheduler and admission-check controller apply once quota is reserved."""
    status: dict[str, Any] = {
        "admission": {"clusterQueue": cq, "podSetAssignments": [{"name": "main", "flavors": {"cpu": "default"}}]},
        "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved",
                        "message": f"Quota reserved in ClusterQueue {cq}", "lastTransitionTime": STAMP}],
        # not "" as Kueue often writes: this apiserver build turns empty strings into null (tests/kueue_crds.py)
        "admissionChecks": [{"name": check, "state": "Pending", "message": "Waiting for a worker cluster",
                             "lastTransitionTime": STAMP}],
        **extra,
    }  # fmt: skip
    body = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
            "metadata": {"name": name, "namespace": ns}, "status": status}  # fmt: skip
    kube.patch(f"{G}/namespaces/{ns}/workloads/{name}", body, kind="apply", field_manager=FIELD_MANAGER,
               force=True, subresource="status")  # fmt: skip


def _chain(kube: KubeClient, tag: str) -> tuple[str, str, str, str]:
    """A MultiKueue ClusterQueue -> AdmissionCheck -> MultiKueueConfig chain, and a ClusterQueue
    with a check of another controller. Returns (cq, check, plain cq, plain check)."""
    mkc, check, cq = f"mk-{tag}", f"mk-check-{tag}", f"cq-{tag}"
    plain_check, plain_cq = f"prov-check-{tag}", f"plain-cq-{tag}"
    kube.create(f"{G}/multikueueconfigs", {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "MultiKueueConfig",
                "metadata": {"name": mkc}, "spec": {"clusters": list(CLUSTERS)}})  # fmt: skip
    for name, controller, params in (
        (check, MULTIKUEUE_CONTROLLER, {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": mkc}),
        (plain_check, "kueue.x-k8s.io/provisioning-request", None),
    ):
        spec: dict[str, Any] = {"controllerName": controller, **({"parameters": params} if params else {})}
        kube.create(f"{G}/admissionchecks", {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "AdmissionCheck",
                    "metadata": {"name": name}, "spec": spec})  # fmt: skip
    for name, ac in ((cq, check), (plain_cq, plain_check)):
        kube.create(f"{G}/clusterqueues", {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ClusterQueue",
                    "metadata": {"name": name}, "spec": {"namespaceSelector": {}, "admissionChecks": [ac],
                    "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [{"name": "default",
                    "resources": [{"name": "cpu", "nominalQuota": 1000}]}]}]}})  # fmt: skip
    return cq, check, plain_cq, plain_check


def _kueue_config(kube: KubeClient, ns: str, dispatcher_name: str) -> None:
    text = yaml.safe_dump({"apiVersion": "config.kueue.x-k8s.io/v1beta1", "kind": "Configuration",
                           "multiKueue": {"dispatcherName": dispatcher_name}})  # fmt: skip
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kueue-manager-config", "namespace": ns},
            "data": {"controller_manager_config.yaml": text}}  # fmt: skip
    kube.patch(f"/api/v1/namespaces/{ns}/configmaps/kueue-manager-config", body, kind="apply",
               field_manager="test-installs-kueue", force=True)  # fmt: skip


def _wait_nominated(kube: KubeClient, path: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        wl = kube.get(path)
        if (wl.get("status") or {}).get("nominatedClusterNames") or time.monotonic() > deadline:
            return wl
        time.sleep(0.2)


def test_the_dispatcher_nominates_worker_clusters_in_the_advised_order(
    k8s_control_plane: ControlPlane, ctwin: tuple[str, str]
) -> None:
    cp, (url, token) = k8s_control_plane, ctwin
    tag = uuid.uuid4().hex[:6]
    with cp.client() as kube, cp.namespace() as ns:
        trimmed = install(kube, ["workloads", "clusterqueues", "admissionchecks", "multikueueconfigs"])
        assert any("nominatedClusterNames are mutually exclusive" in t for t in trimmed["workloads.kueue.x-k8s.io"])
        cq, check, plain_cq, plain_check = _chain(kube, tag)
        ours = "ctwin.example/advice"
        _kueue_config(kube, ns, ours)
        config = MultiKueueHookConfig.model_validate({
            "enabled": True, "dispatcher_name": ours, "clusters": CLUSTERS, "resync": "2s",
            "kueue_config": {"namespace": ns},
        })  # fmt: skip
        # 2 pods x 56 cores = 112 cores: more than kth-sp2's 100 processors, within sdsc-sp2's 128 and the cloud's 256
        for name, queue in (("big", "lq"), ("plain", "lq-plain")):
            kube.create(f"{G}/namespaces/{ns}/workloads", _workload(name, queue, pods=2, cpu="56"))
        _kueue_reserves(kube, ns, "big", cq, check)
        _kueue_reserves(kube, ns, "plain", plain_cq, plain_check)

        advice = AdviceClient(url, token)
        dispatcher = Dispatcher(config, cp.client(), advice)
        dispatcher.check()
        assert dispatcher.cap == 10  # the published schema's maxItems for nominatedClusterNames
        stop = threading.Event()
        thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
        thread.start()
        try:
            big = _wait_nominated(kube, f"{G}/namespaces/{ns}/workloads/big")
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()
        nominated = big["status"].get("nominatedClusterNames")
        assert nominated, big["status"]

        # the order is the advice's: its recommendation first, then the other feasible sites as ranked
        (made,) = [n for n in dispatcher.recent if n.name == "big"]
        assert list(made.clusters) == nominated
        record = httpx.get(f"{url}/v1/advice/{made.advice_id}", headers={"Authorization": f"Bearer {token}"}).json()
        assert record["hook"] == "multikueue" and record["request"]["cores"] == 112
        ranked = [s["site"] for s in record["ranked"] if s["feasible"]]
        expected_sites = [record["recommended"], *[s for s in ranked if s != record["recommended"]]]
        by_site = {site: cluster for cluster, site in CLUSTERS.items()}
        assert nominated == [by_site[s] for s in expected_sites]
        kth = next(s for s in record["ranked"] if s["site"] == "kth-sp2")
        assert not kth["feasible"] and kth["excluded_because"] == "capacity"
        assert "worker-kth" not in nominated and set(nominated) == {"worker-sdsc", "worker-cloud"}, record["ranked"]

        # applied as Kueue's own manager, without dropping what Kueue had applied
        managers = {(m["manager"], m["operation"]) for m in big["metadata"]["managedFields"]}
        assert (FIELD_MANAGER, "Apply") in managers
        owned = next(m for m in big["metadata"]["managedFields"] if m["manager"] == FIELD_MANAGER)["fieldsV1"]
        assert "f:nominatedClusterNames" in owned["f:status"]
        assert big["status"]["admission"]["clusterQueue"] == cq
        assert [c["type"] for c in big["status"]["conditions"]] == ["QuotaReserved"]
        assert big["status"]["admissionChecks"][0]["state"] == "Pending"

        # the Workload without a MultiKueue check is left alone
        plain = kube.get(f"{G}/namespaces/{ns}/workloads/plain")
        assert not (plain.get("status") or {}).get("nominatedClusterNames")

        # a worker admits it: Kueue applies clusterName and leaves nominatedClusterNames out, which
        # removes the field only because the dispatcher applied it as the same manager
        _kueue_reserves(kube, ns, "big", cq, check, clusterName=nominated[0])
        big = kube.get(f"{G}/namespaces/{ns}/workloads/big")
        assert big["status"]["clusterName"] == nominated[0] and "nominatedClusterNames" not in big["status"]
        assert dispatcher.run_once() == []  # admitted: not nominated again

        # a new Workload while Kueue's dispatcherName is another name, then a built-in: left alone
        kube.create(f"{G}/namespaces/{ns}/workloads", _workload("later", "lq", pods=1, cpu="4"))
        _kueue_reserves(kube, ns, "later", cq, check)
        other = Dispatcher(config.model_copy(update={"dispatcher_name": "example.com/other"}), cp.client(), advice)
        assert other.run_once() == [] and not other.ours
        _kueue_config(kube, ns, ALL_AT_ONCE)
        assert dispatcher.run_once() == [] and not dispatcher.ours
        later = kube.get(f"{G}/namespaces/{ns}/workloads/later")
        assert not (later.get("status") or {}).get("nominatedClusterNames")
        _kueue_config(kube, ns, ours)  # ours again: now it is nominated
        (again,) = dispatcher.run_once()
        assert again.name == "later"
        assert kube.get(f"{G}/namespaces/{ns}/workloads/later")["status"]["nominatedClusterNames"] == list(
            again.clusters
        )
        advice.close()
