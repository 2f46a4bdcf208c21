"""The harness itself: a real kube-apiserver keeps Node objects as created, and a real
kube-scheduler without extenders binds a pod to the only node that fits it."""

from __future__ import annotations

import pytest

from tests.k8s_cluster import ControlPlane, node_object

pytestmark = pytest.mark.integration


def test_the_scheduler_binds_a_pod_to_the_node_that_fits(k8s_control_plane: ControlPlane) -> None:
    cp = k8s_control_plane
    small, big = node_object("cp-small", cpu="1", memory="1Gi"), node_object("cp-big", cpu="8", memory="16Gi")
    with cp.nodes(small, big), cp.namespace() as ns, cp.scheduler():
        with cp.client() as kube:
            assert kube.get("/api/v1/nodes/cp-big")["status"]["capacity"]["cpu"] == "8"
            kube.create(f"/api/v1/namespaces/{ns}/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/pause:none",
                                         "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]},
            })  # fmt: skip
        assert cp.wait_bound(ns, "p") == "cp-big"
