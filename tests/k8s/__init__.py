"""Tests against a real Kubernetes control plane (tests/k8s_cluster.py)."""
