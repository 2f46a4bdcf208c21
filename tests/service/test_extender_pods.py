"""A pod as advice sees it (resources counted as the kube-scheduler counts them, ctwin
annotations), and which site a node is (config, label, interLink virtual node, local)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from service.hooks.extender_wire import Node
from service.hooks.k8s_sites import NodeSites, is_virtual
from service.hooks.pods import PodError, parse_quantity, pod_request


def _pod(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "uid": "u", "annotations": annotations or {}}, "spec": spec}


def _c(**requests: str) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": requests}}


@pytest.mark.parametrize(
    ("text", "value"),
    [("100m", "0.1"), ("2", "2"), ("1.5", "1.5"), ("64Mi", str(64 * 2**20)), ("1G", "1e9"), ("2e3", "2000")],
)
def test_quantities(text: str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


def test_requests_are_summed_init_containers_count_as_their_peak_and_cpu_rounds_up() -> None:
    spec = {
        "containers": [_c(cpu="1500m", memory="1Gi"), _c(cpu="700m", **{"nvidia.com/gpu": "1"})],
        "initContainers": [_c(cpu="3", memory="512Mi"), {"name": "side", "restartPolicy": "Always", **_c(cpu="1")}],
        "overhead": {"cpu": "100m"},
    }
    job = pod_request(_pod(spec), default_walltime_s=3600)
    # app 2.2 + sidecar 1 = 3.2 against the init container's 3 (+ no sidecar before it); + 0.1 overhead
    assert (job.cores, job.gpus, job.memory_bytes, job.walltime_s) == (4, 1, 2**30, 3600)
    limits_only = {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]}
    assert pod_request(_pod(limits_only), default_walltime_s=60).cores == 2
    assert pod_request(_pod({"containers": [{"name": "c"}]}), default_walltime_s=60).cores == 1


def test_annotations_and_the_walltime_default() -> None:
    notes = {
        "ctwin.io/walltime": "2h",
        "ctwin.io/input": "20GB@kth",
        "ctwin.io/output": "1GB",
        "ctwin.io/objective": "cost",
        "ctwin.io/risk": "p90",
        "ctwin.io/user": "alice",
    }
    job = pod_request(_pod({"containers": [_c(cpu="1")]}, notes), default_walltime_s=60, allowed_sites=["kth"])
    assert (job.walltime_s, job.input.size_bytes, job.input.site, job.output.site) == (7200, 20e9, "kth", None)
    assert (job.objective, job.risk, job.user, job.constraints.allowed_sites) == ("cost", "p90", "alice", ("kth",))
    deadline = {"containers": [_c(cpu="1")], "activeDeadlineSeconds": 900}
    assert pod_request(_pod(deadline), default_walltime_s=60).walltime_s == 900


@pytest.mark.parametrize(
    ("notes", "spec", "says"),
    [
        ({"ctwin.io/walltime": "soon"}, {}, "walltime"),
        ({"ctwin.io/input": "lots@x"}, {}, "input"),
        ({"ctwin.io/objective": "speed"}, {}, "objective"),
        ({"ctwin.io/risk": "p99"}, {}, "risk"),
        ({}, {"containers": [_c(cpu="two")]}, "quantity"),
    ],
)
def test_what_cannot_be_read_is_a_pod_error(notes: dict[str, str], spec: dict[str, Any], says: str) -> None:
    with pytest.raises(PodError, match=says):
        pod_request(_pod(spec or {"containers": []}, notes), default_walltime_s=60)


VIRTUAL_LABEL = {"virtual-node.interlink/type": "virtual-kubelet"}


def test_nodes_map_to_sites_by_config_label_virtual_name_or_as_the_local_site() -> None:
    sites = NodeSites(["local", "kth", "sdsc"], "local", {"vk-1": "kth"}, "ctwin.io/site")
    assert sites.site_of(Node("vk-1", VIRTUAL_LABEL, raw="{}")) == "kth"
    assert sites.site_of(Node("vk-2", {**VIRTUAL_LABEL, "ctwin.io/site": "sdsc"}, raw="{}")) == "sdsc"
    assert sites.site_of(Node("sdsc", {}, operating_system="virtual-kubelet", raw="{}")) == "sdsc"
    tainted = Node("vk-3", {}, ({"key": "virtual-node.interlink/no-schedule", "effect": "NoSchedule"},), raw="{}")
    assert is_virtual(tainted) and sites.site_of(tainted) is None  # fronts something ctwin does not know
    assert sites.site_of(Node("worker-1", {"kubernetes.io/hostname": "worker-1"}, raw="{}")) == "local"
    # names only (nodeCacheCapable): what was seen before, else the config
    assert sites.site_of(Node("vk-2", by_name=True)) == "sdsc"
    assert sites.site_of(Node("vk-1", by_name=True)) == "kth"
    assert sites.site_of(Node("never-seen", by_name=True)) is None
    with pytest.raises(ValueError, match="no site named 'x'"):
        NodeSites(["local"], "local", {"n": "x"}, "ctwin.io/site")
