"""The node cache and the pod worker's watch against a real kube-apiserver v1.20.2
(tests/k8s_cluster.py), without a scheduler: the test binds pods itself through the Binding
subresource, as the kube-scheduler does, so every step is under its control.

- NodeCache: the list, then the watch delivers a node created after the informer started, a label
  change and a deletion; names-only mapping follows (k8s_sites); stop ends the blocked watch.
- PodWorker: annotates an advised pod; one watch (field selector spec.schedulerName) sees the
  binding; on a plain node it reports `<namespace>/<name>` at once; on an interLink virtual node
  it waits for the JobID annotation, which comes after the binding (a MODIFIED event), and reports
  once; a pod bound before its annotation landed is reported from the patch's answer.

The advisor is a recorder of `report` calls: what is tested is the Kubernetes side.
"""

from __future__ import annotations

from typing import Any

import pytest

from service.hooks.extender_wire import Node
from service.hooks.k8s_sites import NodeSites
from service.hooks.node_cache import NodeCache
from service.hooks.pod_worker import ADVICE_ANNOTATION, PodWorker
from service.hooks.pods import pod_info
from tests.k8s_cluster import ControlPlane, node_object, until

pytestmark = pytest.mark.integration

VIRTUAL = {
    "labels": {"virtual-node.interlink/type": "virtual-kubelet", "ctwin.io/site": "hpc"},
    "taints": [{"key": "virtual-node.interlink/no-schedule", "value": "true", "effect": "NoSchedule"}],
    "operating_system": "virtual-kubelet",
}


def test_the_node_cache_lists_then_follows_the_watch(k8s_control_plane: ControlPlane) -> None:
    cp = k8s_control_plane
    cache = NodeCache(cp.client, watch_timeout_s=30)
    sites = NodeSites(["local", "hpc"], "local", {}, "ctwin.io/site", cache.node)
    with cp.nodes(node_object("nc-a", cpu="8")):
        cache.start()
        try:
            until("the first list", lambda: cache.synced)
            assert cache.get("nc-a") is not None and cache.get("nc-a").capacity["cpu"] == "8"  # type: ignore[union-attr]
            assert sites.site_of(Node("nc-late", by_name=True)) is None and sites.unknown_names == 1
            with cp.nodes(node_object("nc-late", **VIRTUAL)):  # type: ignore[arg-type]
                cached = until("the watch's ADDED", lambda: cache.get("nc-late"))
                assert cached.node.operating_system == "virtual-kubelet" and cached.allocatable["cpu"] == "4"
                assert sites.site_of(Node("nc-late", by_name=True)) == "hpc"
                with cp.client() as kube:
                    kube.patch("/api/v1/nodes/nc-late", {"metadata": {"labels": {"ctwin.io/site": None}}})
                until("the watch's MODIFIED", lambda: "ctwin.io/site" not in cache.node("nc-late").labels)  # type: ignore[union-attr]
                assert sites.site_of(Node("nc-late", by_name=True)) is None  # a virtual node nothing maps
                assert sites.site_of(Node("nc-a", by_name=True)) == "local"
            until("the watch's DELETED", lambda: cache.get("nc-late") is None)
            assert len(cache) >= 1 and cache.age_s() is not None and cache.informer.errors == 0
        finally:
            cache.stop()
    assert cache.informer._thread is None  # stop did not hang on the blocked watch


class _Reports:
    """Stands in for the Advisor: records report(advice_id, site, job_id)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def report(self, advice_id: str, site: str, job_id: str) -> dict[str, object]:
        self.calls.append((advice_id, site, job_id))
        return {}


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": "ctwin-scheduler",  # no such scheduler runs here: the test binds
            "containers": [{"name": "c", "image": "registry.invalid/pause:none"}],
        },
    }


def _bind(cp: ControlPlane, ns: str, pod: str, node: str) -> None:
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"kind": "Node", "name": node},
    }
    with cp.client() as kube:
        kube.create(f"/api/v1/namespaces/{ns}/pods/{pod}/binding", binding)


def test_the_pod_worker_sees_bindings_and_late_job_ids_on_one_watch(k8s_control_plane: ControlPlane) -> None:
    cp = k8s_control_plane
    reports = _Reports()
    sites = NodeSites(["local", "hpc"], "local", {}, "ctwin.io/site")
    worker = PodWorker(cp.client, sites, reports, watch_timeout_s=30)  # type: ignore[arg-type]
    seen: list[dict[str, Any]] = []  # every pod the watch delivered, before the worker reads it
    handle = worker.informer.on_event

    def recording(kind: str, pod: Any) -> None:
        seen.append(pod)
        handle(kind, pod)

    worker.informer.on_event = recording
    with cp.nodes(node_object("pw-plain"), node_object("pw-vk", **VIRTUAL)), cp.namespace() as ns:  # type: ignore[arg-type]
        with cp.client() as kube:
            created = {n: kube.create(f"/api/v1/namespaces/{ns}/pods", _pod(n)) for n in ("local", "remote", "early")}
        worker.start()
        try:
            until("the pod watch's first list", lambda: worker.informer.synced.is_set())
            worker.advised(pod_info(created["local"]), "adv-local")
            worker.advised(pod_info(created["remote"]), "adv-remote")
            for name in ("local", "remote"):
                until(f"{name}'s annotation", lambda n=name: _annotations(cp, ns, n).get(ADVICE_ANNOTATION))  # type: ignore[misc]
            until("both pods awaiting binding", lambda: worker.pending == 2)

            _bind(cp, ns, "local", "pw-plain")
            until("the local pod's report", lambda: reports.calls)
            assert reports.calls == [("adv-local", "local", f"{ns}/local")]

            _bind(cp, ns, "remote", "pw-vk")
            # bound, but interLink has not created the remote job: no report until its JobID comes
            with cp.client() as kube:
                kube.patch(f"/api/v1/namespaces/{ns}/pods/remote", {"metadata": {"labels": {"touched": "yes"}}})
            touched = until(
                "the watch to deliver the label patch after the binding",
                lambda: [p for p in seen if (p["metadata"].get("labels") or {}).get("touched")],
            )
            assert touched[-1]["spec"]["nodeName"] == "pw-vk"
            assert len(reports.calls) == 1 and worker.pending == 1
            with cp.client() as kube:  # the virtual kubelet's annotation, after the binding
                kube.patch(f"/api/v1/namespaces/{ns}/pods/remote", {"metadata": {"annotations": {"JobID": "slurm-77"}}})
            until("the remote pod's report", lambda: len(reports.calls) == 2)
            assert reports.calls[1] == ("adv-remote", "hpc", "slurm-77")
            with cp.client() as kube:  # more events for it: reported once
                kube.patch(f"/api/v1/namespaces/{ns}/pods/remote", {"metadata": {"annotations": {"JobID": "slurm-78"}}})

            # bound before the worker annotated it: the patch's answer shows the binding
            _bind(cp, ns, "early", "pw-plain")
            worker.advised(pod_info(created["early"]), "adv-early")
            until("the early pod's report", lambda: len(reports.calls) == 3)
            assert reports.calls[2] == ("adv-early", "local", f"{ns}/early")
            assert (worker.annotated, worker.reported, worker.dropped, worker.pending) == (3, 3, 0, 0)
            assert worker.informer.errors == 0
        finally:
            worker.stop()
    assert len(reports.calls) == 3


def _annotations(cp: ControlPlane, ns: str, pod: str) -> dict[str, str]:
    with cp.client() as kube:
        return dict(kube.get(f"/api/v1/namespaces/{ns}/pods/{pod}")["metadata"].get("annotations") or {})
