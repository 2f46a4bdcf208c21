"""The MultiKueue dispatcher's pure decisions (service/hooks/multikueue.py) on Kueue-shaped JSON:
the Workload of Kueue's own documentation (tests/fixtures/kueue/workload-sample-job.yaml), and
objects built from the published CRD schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from service.config import ConfigError, parse_config
from service.hooks.multikueue import (
    ALL_AT_ONCE,
    INCREMENTAL,
    AdmissionCheckRef,
    advice_job,
    dispatcher_kind,
    dispatcher_name_from_kueue_config,
    multikueue_check,
    needs_nomination,
    nomination,
    parse_quantity,
    pod_demand,
    status_apply,
)
from tests.conftest import FIXTURES

SAMPLE = yaml.safe_load((FIXTURES / "kueue" / "workload-sample-job.yaml").read_text())
CHECK = AdmissionCheckRef("mk", "mk-config", ("w1", "w2", "w3"))
STAMP = "2026-01-01T00:00:00Z"


def _pending(workload: dict[str, Any], **status: Any) -> dict[str, Any]:
    wl = copy.deepcopy(workload)
    wl["metadata"].update(uid="u1", resourceVersion="7")
    wl["status"] = {
        "admission": {"clusterQueue": "cq", "podSetAssignments": [{"name": "main"}]},
        "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "",
                        "lastTransitionTime": STAMP}],
        "admissionChecks": [{"name": "mk", "state": "Pending", "message": "", "lastTransitionTime": STAMP}],
        **status,
    }  # fmt: skip
    return wl


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("4", 4.0), ("200Mi", 200 * 2**20), ("64Gi", 64 * 2**30), ("1e3", 1000.0), ("2k", 2000.0)],
)
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


def test_an_invalid_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity("lots")


def test_kueues_documented_workload_becomes_an_advice_request() -> None:
    job = advice_job(SAMPLE, ["kth-sp2", "cloud-eu"], default_walltime_s=3600, walltime_annotation="ctwin.io/walltime")
    # 3 pods x 1 CPU; memory is per pod (advice reads memory per node); no maximumExecutionTimeSeconds: the default
    assert job == {
        "cores": 3, "walltime": 3600, "gpus": 0, "memory": 200 * 2**20,
        "constraints": {"allowed_sites": ["kth-sp2", "cloud-eu"]},
    }  # fmt: skip


def test_the_request_sums_pod_sets_uses_limits_init_containers_gpus_and_the_time_limit() -> None:
    wl = {
        "metadata": {"name": "w", "namespace": "n", "annotations": {"ctwin.io/walltime": "2h"}},
        "spec": {
            "maximumExecutionTimeSeconds": 900,
            "podSets": [
                {"name": "driver", "count": 1, "template": {"spec": {
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                                   {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "4"}}}]}}},
                {"name": "workers", "count": 4, "template": {"spec": {"containers": [
                    {"name": "w", "resources": {"requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}}}]}}},
            ],
        },
    }  # fmt: skip
    driver = pod_demand(wl["spec"]["podSets"][0])
    assert (driver.cpu, driver.memory_bytes) == (4.0, 2 * 2**30)  # the init container's 4 CPUs are the larger
    job = advice_job(wl, ["a"], default_walltime_s=60, walltime_annotation="ctwin.io/walltime")
    assert (job["cores"], job["gpus"], job["memory"], job["walltime"]) == (12, 4, 8 * 2**30, 900.0)
    del wl["spec"]["maximumExecutionTimeSeconds"]
    assert advice_job(wl, ["a"], default_walltime_s=60, walltime_annotation="ctwin.io/walltime")["walltime"] == 7200


def test_whose_dispatcher_kueue_waits_for() -> None:
    assert dispatcher_name_from_kueue_config(None) == ALL_AT_ONCE  # Kueue's default
    assert dispatcher_name_from_kueue_config("apiVersion: config.kueue.x-k8s.io/v1beta1\nkind: Configuration\n") == (
        ALL_AT_ONCE
    )
    text = "multiKueue:\n  gcInterval: 1m\n  dispatcherName: ctwin.example/advice\n"
    assert dispatcher_name_from_kueue_config(text) == "ctwin.example/advice"
    assert dispatcher_kind("ctwin.example/advice", "ctwin.example/advice") == "ours"
    assert dispatcher_kind(INCREMENTAL, "ctwin.example/advice") == "builtin"
    assert dispatcher_kind(ALL_AT_ONCE, "ctwin.example/advice") == "builtin"
    assert dispatcher_kind("acme.io/placer", "ctwin.example/advice") == "other"


def test_only_multikueue_admission_checks_name_a_multikueue_config() -> None:
    params = {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": "cfg"}
    mk = {"spec": {"controllerName": "kueue.x-k8s.io/multikueue", "parameters": params}}
    assert multikueue_check(mk) == "cfg"
    assert multikueue_check({"spec": {"controllerName": "kueue.x-k8s.io/provisioning-request"}}) is None
    assert multikueue_check({"spec": {"controllerName": "kueue.x-k8s.io/multikueue"}}) is None


def test_which_workloads_need_a_nomination() -> None:
    checks = {"mk": CHECK}
    kw: dict[str, Any] = {"nominated_at_s": None, "now_s": 1000.0, "renominate_after_s": 600.0}
    check, why = needs_nomination(_pending(SAMPLE), checks, **kw)
    assert check == CHECK and why == "not nominated"
    assert needs_nomination(_pending(SAMPLE, clusterName="w1"), checks, **kw) == (None, "admitted to w1")
    no_quota = _pending(SAMPLE)
    no_quota["status"]["conditions"][0]["status"] = "False"
    assert needs_nomination(no_quota, checks, **kw)[0] is None
    ready = _pending(SAMPLE)
    ready["status"]["admissionChecks"][0]["state"] = "Ready"
    assert needs_nomination(ready, checks, **kw) == (None, "MultiKueue check mk is Ready")
    assert needs_nomination(_pending(SAMPLE), {}, **kw) == (None, "no MultiKueue admission check")
    finished = _pending(SAMPLE)
    finished["status"]["conditions"].append({"type": "Finished", "status": "True"})
    assert needs_nomination(finished, checks, **kw) == (None, "finished")

    # a standing nomination is kept until stale: a cluster left the config, or renominate_after passed
    nominated = _pending(SAMPLE, nominatedClusterNames=["w2"])
    assert needs_nomination(nominated, checks, **{**kw, "nominated_at_s": 900.0})[0] is None
    assert needs_nomination(nominated, checks, **{**kw, "nominated_at_s": 300.0})[1].startswith("stale: nominated")
    gone = _pending(SAMPLE, nominatedClusterNames=["w9"])
    assert "w9 no longer in MultiKueueConfig mk-config" in needs_nomination(gone, checks, **kw)[1]


def _advice(*sites: tuple[str, bool], recommended: str | None = None) -> dict[str, Any]:
    ranked = [{"site": s, "feasible": f, "reason": "ok" if f else "needs 112 cores; it has 100",
               "excluded_because": None if f else "capacity"} for s, f in sites]  # fmt: skip
    first = next((s for s, f in sites if f), None)
    return {"advice_id": "adv-1", "recommended": recommended or first, "sites": ranked}


def test_the_nomination_follows_the_ranking_and_never_names_an_infeasible_cluster() -> None:
    clusters = {"sdsc": ["w-sdsc"], "cloud": ["w-cloud"], "kth": ["w-kth"]}
    names, skipped = nomination(_advice(("cloud", True), ("sdsc", True), ("kth", False)), clusters, 10)
    assert names == ["w-cloud", "w-sdsc"] and skipped == ["kth: needs 112 cores; it has 100"]
    # the stay-home rule: the recommendation comes first even when ranked lower
    names, _ = nomination(_advice(("cloud", True), ("sdsc", True), recommended="sdsc"), clusters, 10)
    assert names == ["w-sdsc", "w-cloud"]
    assert nomination(_advice(("kth", False)), clusters, 10)[0] == []


def test_the_nomination_is_capped_best_first_and_a_site_can_serve_several_clusters() -> None:
    sites = [(f"s{i:02d}", True) for i in range(25)]
    clusters = {name: [f"w-{name}"] for name, _ in sites}
    names, skipped = nomination(_advice(*sites), clusters, 20)
    assert names == [f"w-s{i:02d}" for i in range(20)] and skipped[-1].startswith("capped at 20: w-s20")
    names, _ = nomination(_advice(("hpc", True), ("cloud", True)), {"hpc": ["a", "b"], "cloud": ["c"]}, 10)
    assert names == ["a", "b", "c"]


def test_max_nominated_is_at_most_20() -> None:
    with pytest.raises(ConfigError, match="max_nominated"):
        parse_config("schedulers: {multikueue: {max_nominated: 21}}")
    loaded = parse_config("schedulers: {multikueue: {max_nominated: 20}}")
    assert loaded.config.schedulers.multikueue.max_nominated == 20


def test_the_apply_repeats_what_kueue_admission_owns_and_carries_the_resource_version() -> None:
    wl = _pending(SAMPLE, requeueState={"count": 1})
    owned = {"f:status": {"f:admission": {".": {}, "f:clusterQueue": {}},
                          "f:conditions": {'k:{"type":"QuotaReserved"}': {".": {}, "f:status": {}}},
                          "f:admissionChecks": {'k:{"name":"mk"}': {".": {}}}}}  # fmt: skip
    wl["status"]["conditions"].append({"type": "Finished", "status": "False", "reason": "X", "message": "",
                                       "lastTransitionTime": STAMP})  # fmt: skip
    wl["metadata"]["managedFields"] = [
        {"manager": "kueue-admission", "operation": "Apply", "fieldsV1": owned},
        {"manager": "someone", "operation": "Update", "fieldsV1": {"f:status": {"f:requeueState": {}}}},
    ]
    body = status_apply(wl, ["w2", "w1"])
    assert body["metadata"] == {"name": "sample-job", "namespace": "team-a", "resourceVersion": "7"}
    status = body["status"]
    assert status["nominatedClusterNames"] == ["w2", "w1"]
    assert status["admission"] == wl["status"]["admission"]
    assert [c["type"] for c in status["conditions"]] == ["QuotaReserved"]  # only the items the manager owns
    assert status["admissionChecks"] == wl["status"]["admissionChecks"]
    assert "requeueState" not in status  # another manager's field is not claimed
    json.dumps(body)
