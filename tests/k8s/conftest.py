"""The real control plane, once per session for every module here (tests/k8s_cluster.py)."""

from tests.k8s_cluster import k8s_control_plane

__all__ = ["k8s_control_plane"]
