"""The chart's objects applied to a real kube-apiserver v1.20.2 (tests/k8s_cluster.py): the server
validates and stores every one (the ServiceMonitor's CRD does not exist there, so it is left out),
its RBAC grants the extender and the dispatcher what they use (SubjectAccessReview) and no more
than that, the rendered KubeSchedulerConfiguration starts a real kube-scheduler, `ctwin serve`
with the rendered config and a token of the chart's service account fills its node cache from
the API (which only works when the ClusterRole allows it), and `ctwin dispatcher --once` with the
rendered config passes as the dispatcher's account (Kueue's published CRDs installed) and is
refused as the agent's.

1.20 is older than every schema set kubernetes-validate ships (1.25+), and silently drops fields
it does not know; so each object read back must still hold every field the chart wrote.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from collectors.kube_api import KubeClient, KubeError
from tests.conftest import free_port
from tests.deploy.chart import RELEASE_VALUES, by_kind, render_docs
from tests.deploy.serving import serving
from tests.k8s_cluster import ControlPlane, node_object
from tests.kueue_crds import install

pytestmark = pytest.mark.integration

_CORE = {"ConfigMap": "configmaps", "Service": "services", "ServiceAccount": "serviceaccounts",
         "PersistentVolumeClaim": "persistentvolumeclaims", "Secret": "secrets"}  # fmt: skip
_RBAC = "rbac.authorization.k8s.io/v1"
_GROUPED = {"Deployment": "apps/v1/deployments", "DaemonSet": "apps/v1/daemonsets",
            "Role": f"{_RBAC}/roles", "RoleBinding": f"{_RBAC}/rolebindings"}  # fmt: skip
_CLUSTER = {"ClusterRole": f"{_RBAC}/clusterroles", "ClusterRoleBinding": f"{_RBAC}/clusterrolebindings"}


def _collection(doc: dict[str, Any], namespace: str) -> str:
    kind = doc["kind"]
    ns = doc["metadata"].get("namespace", namespace)
    if kind in _CORE:
        return f"/api/v1/namespaces/{ns}/{_CORE[kind]}"
    if kind in _GROUPED:
        group_version, plural = _GROUPED[kind].rsplit("/", 1)
        return f"/apis/{group_version}/namespaces/{ns}/{plural}"
    return f"/apis/{_CLUSTER[kind]}"


def _missing(written: Any, stored: Any, path: str = "") -> list[str]:
    """Fields of `written` that `stored` lacks or holds differently (the server may add defaults)."""
    if isinstance(written, dict):
        if not isinstance(stored, dict):
            return [path or "/"]
        return [m for k, v in written.items() for m in _missing(v, stored.get(k), f"{path}.{k}")]
    if isinstance(written, list):
        if not isinstance(stored, list) or len(stored) != len(written):
            return [path]
        return [m for i, (w, s) in enumerate(zip(written, stored, strict=True)) for m in _missing(w, s, f"{path}[{i}]")]
    return [] if written == stored or str(written) == str(stored) else [f"{path}: {written!r} != {stored!r}"]


@contextlib.contextmanager
def _installed(cp: ControlPlane, docs: list[dict[str, Any]], namespace: str) -> Iterator[list[dict[str, Any]]]:
    """Create every object as `helm install` would; delete the cluster-wide ones after."""
    created: list[tuple[str, dict[str, Any]]] = []
    with cp.client() as kube:
        with contextlib.suppress(KubeError):  # the dispatcher's Role lives in Kueue's namespace
            kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "kueue-system"}})  # fmt: skip
        try:
            for doc in docs:
                collection = _collection(doc, namespace)
                stored = kube.create(collection, doc)
                created.append((f"{collection}/{doc['metadata']['name']}", stored))
            yield [s for _, s in created]
        finally:
            for path, _ in reversed(created):
                with contextlib.suppress(KubeError):
                    kube.delete(path)


def _allowed(kube: KubeClient, user: str, **attributes: str) -> bool:
    review = kube.create(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
         "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                  "resourceAttributes": attributes}},
    )  # fmt: skip
    return bool(review["status"].get("allowed"))


def test_the_chart_applies_to_a_real_apiserver_and_its_rbac_is_what_ctwin_needs(
    k8s_control_plane: ControlPlane, tmp_path: Path
) -> None:
    cp = k8s_control_plane
    release = "r" + uuid.uuid4().hex[:6]
    v1beta1 = {"configApiVersion": "kubescheduler.config.k8s.io/v1beta1"}  # what 1.20 reads
    values = {**RELEASE_VALUES, "extender": {"enabled": True, "scheduler": v1beta1}}
    with cp.namespace() as ns:
        docs = [d for d in render_docs(values, name=release, namespace=ns) if d["kind"] != "ServiceMonitor"]
        with _installed(cp, docs, ns) as stored, cp.client() as kube:
            # 1. every field the chart wrote is one 1.20 knows (it would drop it silently otherwise)
            for doc, back in zip(docs, stored, strict=True):
                lost = _missing({k: v for k, v in doc.items() if k != "metadata"}, back)
                assert lost == [], f"{doc['kind']}/{doc['metadata']['name']}: {lost}"
            assert {d["kind"] for d in stored} >= {"Deployment", "DaemonSet", "ClusterRole", "PersistentVolumeClaim"}

            # 2. RBAC: what README's extender and dispatcher sections list, and nothing more
            serve_sa = f"system:serviceaccount:{ns}:{release}-ctwin"
            dispatcher_sa = f"system:serviceaccount:{ns}:{release}-ctwin-dispatcher"
            agent_sa = f"system:serviceaccount:{ns}:{release}-ctwin-agent"
            for verb in ("list", "watch"):
                assert _allowed(kube, serve_sa, verb=verb, resource="nodes")
                assert _allowed(kube, serve_sa, verb=verb, resource="pods")
            assert _allowed(kube, serve_sa, verb="patch", resource="pods", namespace="default")
            assert _allowed(kube, serve_sa, verb="create", resource="bindings", namespace="default")  # the scheduler
            assert not _allowed(kube, serve_sa, verb="get", resource="secrets", namespace=ns)
            kueue = {"group": "kueue.x-k8s.io"}
            assert _allowed(kube, dispatcher_sa, verb="watch", resource="workloads", **kueue)
            assert _allowed(kube, dispatcher_sa, verb="patch", resource="workloads", subresource="status", **kueue)
            assert _allowed(kube, dispatcher_sa, verb="list", resource="multikueueconfigs", **kueue)
            assert _allowed(kube, dispatcher_sa, verb="get", resource="admissionchecks", **kueue)
            assert _allowed(kube, dispatcher_sa, verb="get", resource="customresourcedefinitions",
                            group="apiextensions.k8s.io", name="workloads.kueue.x-k8s.io")  # fmt: skip
            assert _allowed(kube, dispatcher_sa, verb="get", resource="configmaps", namespace="kueue-system",
                            name="kueue-manager-config")  # fmt: skip
            assert not _allowed(kube, dispatcher_sa, verb="get", resource="configmaps", namespace="kueue-system",
                                name="something-else")  # fmt: skip
            assert not _allowed(kube, dispatcher_sa, verb="delete", resource="workloads", **kueue)
            assert not _allowed(kube, dispatcher_sa, verb="patch", resource="workloads", **kueue)
            assert not _allowed(kube, agent_sa, verb="list", resource="nodes")

            # 3. the rendered scheduler configuration is one a real kube-scheduler starts with
            [sched_cm] = by_kind(docs, "ConfigMap", f"{release}-ctwin-scheduler")
            sched_file = tmp_path / "scheduler-config.yaml"
            sched_file.write_text(sched_cm["data"]["scheduler-config.yaml"])
            with cp.scheduler_from_file(sched_file) as log:
                assert "ctwin-scheduler" in yaml.safe_load(sched_file.read_text())["profiles"][0]["schedulerName"]
                assert log.exists()

            # 4. ctwin serve, configured as the chart configures it, as the chart's service account
            [cm] = by_kind(docs, "ConfigMap", f"{release}-ctwin")
            rendered = cm["data"]["ctwin.yaml"]
            serve_config = _pod_config(rendered, cp, _sa_token(kube, ns, f"{release}-ctwin"), tmp_path, "serve")
            with cp.nodes(node_object(f"{release}-node")), _serve(serve_config, tmp_path) as url:
                assert _wait_metric(url, "ctwin_extender_node_cache_nodes", at_least=1) >= 1
                ready = httpx.get(f"{url}/readyz", timeout=5)  # the chart's readinessProbe
                assert ready.status_code == 200, ready.text

                # 5. ctwin dispatcher --once, as the dispatcher's service account, against that service
                install(kube, ["workloads", "clusterqueues", "admissionchecks", "multikueueconfigs"])
                with _kueue_config(kube, "continuum-twin/ctwin"):
                    sa = f"{release}-ctwin-dispatcher"
                    ok = _dispatch(_pod_config(rendered, cp, _sa_token(kube, ns, sa), tmp_path, "dispatcher", url))
                    assert ok.returncode == 0 and "0 Workload(s) nominated" in ok.stderr, ok.stderr
                    # the same as the agent's account, which the chart gives no API access: refused
                    sa = f"{release}-ctwin-agent"
                    refused = _dispatch(_pod_config(rendered, cp, _sa_token(kube, ns, sa), tmp_path, "agent", url))
                    assert refused.returncode != 0 and "403" in refused.stderr + refused.stdout, refused.stderr


def _sa_token(kube: KubeClient, namespace: str, account: str) -> str:
    """A token of the service account, as the kubelet would mount into the pod (TokenRequest)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}}
    return str(kube.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body)["status"]["token"])


@contextlib.contextmanager
def _kueue_config(kube: KubeClient, dispatcher_name: str) -> Iterator[None]:
    """Kueue's manager Configuration, as Kueue's own manifests install it, naming our dispatcher."""
    text = yaml.safe_dump({"apiVersion": "config.kueue.x-k8s.io/v1beta1", "kind": "Configuration",
                           "multiKueue": {"dispatcherName": dispatcher_name}})  # fmt: skip
    kube.create("/api/v1/namespaces/kueue-system/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kueue-manager-config"},
        "data": {"controller_manager_config.yaml": text}})  # fmt: skip
    try:
        yield
    finally:
        kube.delete("/api/v1/namespaces/kueue-system/configmaps/kueue-manager-config")


def _wait_metric(url: str, name: str, at_least: float, timeout_s: float = 60) -> float:
    deadline = time.monotonic() + timeout_s
    value = -1.0
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, StopIteration):
            text = httpx.get(f"{url}/metrics", timeout=5).text
            value = float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[-1])
            if value >= at_least:
                return value
        time.sleep(0.5)
    raise AssertionError(f"{name} stayed at {value} (< {at_least}) for {timeout_s} s")


CTWIN = [sys.executable, "-m", "service.cli"]


def _pod_config(rendered: str, cp: ControlPlane, sa_token: str, tmp: Path, who: str, url: str = "") -> Path:
    """The chart's config with the paths the pod mounts moved under `tmp`, and the in-cluster API
    (what a pod finds in its service-account mount) given explicitly."""
    config = yaml.safe_load(rendered)
    token_file = tmp / f"{who}-sa-token"
    token_file.write_text(sa_token)
    api = {"url": cp.url, "token_file": str(token_file), "ca_file": str(cp.ca_file)}
    config["data_dir"] = str(tmp / "data")
    config["auth"]["tokens_file"] = str(tmp / "tokens.json")
    config["schedulers"]["kubernetes"]["api"] = api
    config["schedulers"]["multikueue"]["api"] = api
    if url:  # the dispatcher: the service's address and an advise token, as its Secret would hold
        advise = tmp / f"{who}-advise-token"
        created = subprocess.run([*CTWIN, "token", "create", who, "--scope", "advise", "--json", "--config",
                                  str(tmp / "serve.yaml")], check=True, capture_output=True, text=True)  # fmt: skip
        advise.write_text(json.loads(created.stdout)["token"])
        config["schedulers"]["multikueue"].update(service_url=url, token_file=str(advise))
    path = tmp / f"{who}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _dispatch(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTWIN, "dispatcher", "--once", "--config", str(config)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@contextlib.contextmanager
def _serve(config: Path, tmp: Path) -> Iterator[str]:
    subprocess.run([*CTWIN, "token", "create", "admin", "--scope", "admin", "--config", str(config)],
                   check=True, capture_output=True)  # fmt: skip
    port = free_port()
    command = [*CTWIN, "serve", "--config", str(config), "--listen", "127.0.0.1", "--port", str(port), "--no-ui"]
    with serving(command, port=port, cwd=tmp) as served:
        yield served.url
