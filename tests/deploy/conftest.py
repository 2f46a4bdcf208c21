"""The real control plane for test_helm_apiserver.py (tests/k8s_cluster.py)."""

from tests.k8s_cluster import k8s_control_plane

__all__ = ["k8s_control_plane"]
