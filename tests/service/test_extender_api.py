"""The extender routes of the service (in-process): decisions from real advice over config-only
sites, the neutral fallback (no data, a pod ctwin cannot read, an internal error), and the
routes' own access rule, body limit and refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import parse_config

SITES = """
sites:
  - {name: cluster, kind: cloud, speed: 1, cloud: {quota_cores: 8, provisioning: {p10: 1s, p50: 2s, p90: 5s}}}
  - {name: fast, kind: cloud, speed: 1, cloud: {quota_cores: 64, provisioning: {p10: 10s, p50: 20s, p90: 40s}}}
  - {name: slow, kind: cloud, speed: 1, cloud: {quota_cores: 64, provisioning: {p10: 1h, p50: 2h, p90: 3h}}}
  - name: hpc
    kind: hpc
    collectors: [{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz}]
links:
  - {between: [cluster, fast], bandwidth_gbps: 10}
  - {between: [cluster, slow], bandwidth_gbps: 10}
  - {between: [cluster, hpc], bandwidth_gbps: 10}
advice: {home: cluster, stay_home: false}
schedulers:
  kubernetes:
    enabled: true
    nodes: {vk-fast: fast, vk-slow: slow, vk-hpc: hpc}
"""
LOOPBACK = ("127.0.0.1", 40000)
FILTER, PRIORITIZE = "/k8s/extender/v1/filter", "/k8s/extender/v1/prioritize"


def _client(tmp_path: Path, extra: str = "", client: tuple[str, int] = LOOPBACK) -> TestClient:
    return TestClient(create_app(parse_config(SITES + extra), tmp_path, ui=False, collect=False), client=client)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as client:
        yield client


def _args(cpu: str, names: list[str], uid: str = "uid-1", **annotations: str) -> dict[str, Any]:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": uid, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
    }
    return {"Pod": pod, "Nodes": None, "NodeNames": names}


def _metric(client: TestClient, line: str) -> float:
    text = client.get("/metrics").text
    return float(next(x for x in text.splitlines() if x.startswith(line + " ")).split()[-1])


def test_filter_drops_the_sites_that_cannot_run_the_pod_and_prioritize_ranks_the_rest(service: TestClient) -> None:
    nodes = ["node-a", "vk-fast", "vk-slow", "vk-unknown"]
    service.post(FILTER, json=_args("1", nodes))  # node-a, seen by name only, is no site yet
    body = _args("16", nodes, **{"ctwin.io/walltime": "4h"})
    answer = service.post(FILTER, json=body).json()
    assert answer["Nodes"] is None and answer["Error"] == ""
    assert answer["NodeNames"] == nodes  # 16 cores: only `cluster` (quota 8) could not, and no node is known as it
    scores = dict((h["Host"], h["Score"]) for h in service.post(PRIORITIZE, json=body).json())
    # 4 h at fast after 20 s, at slow after 2 h: 10 and round(10 x 14420 / 21600) = 7; unknown nodes neutral
    assert scores == {"node-a": 5, "vk-fast": 10, "vk-slow": 7, "vk-unknown": 5}
    assert _metric(service, 'ctwin_extender_requests_total{verb="filter"}') == 2


def test_full_nodes_are_mapped_by_their_objects_and_infeasible_sites_fail_with_the_reason(
    service: TestClient,
) -> None:
    plain = {"metadata": {"name": "node-a", "labels": {}}, "spec": {}, "status": {}}
    labelled = {"metadata": {"name": "vk-x", "labels": {"ctwin.io/site": "slow"}}, "status": {}}
    body = {**_args("16", []), "NodeNames": None, "Nodes": {"metadata": {}, "items": [plain, labelled]}}
    answer = service.post(FILTER, json=body).json()
    assert list(answer["FailedNodes"]) == ["node-a"]
    assert answer["FailedNodes"]["node-a"] == "ctwin: site cluster cannot run this pod: needs 16 cores; cluster has 8"
    assert answer["Nodes"]["items"] == [labelled] and answer["NodeNames"] == ["vk-x"]
    assert service.post(PRIORITIZE, json=body).json() == [{"Host": "node-a", "Score": 0}, {"Host": "vk-x", "Score": 10}]
    assert _metric(service, "ctwin_extender_failed_nodes_total") == 1


def test_no_data_a_bad_pod_or_an_internal_error_give_neutral_answers(service: TestClient) -> None:
    only_hpc = _args("4", ["vk-hpc"])  # a replayed site with no collected state (collect=False): no data
    assert service.post(FILTER, json=only_hpc).json()["FailedNodes"] == {}
    assert service.post(PRIORITIZE, json=only_hpc).json() == [{"Host": "vk-hpc", "Score": 5}]
    assert _metric(service, 'ctwin_extender_fallback_total{reason="stale"}') == 2
    # with a site that has data, the site without stays in, at the neutral score
    mixed = _args("4", ["vk-hpc", "vk-fast"], uid="uid-2")
    assert service.post(PRIORITIZE, json=mixed).json() == [
        {"Host": "vk-hpc", "Score": 5},
        {"Host": "vk-fast", "Score": 10},
    ]
    bad = _args("4", ["vk-fast"], uid="uid-3", **{"ctwin.io/walltime": "soon"})
    assert service.post(FILTER, json=bad).json()["FailedNodes"] == {}
    assert _metric(service, 'ctwin_extender_fallback_total{reason="bad_pod"}') == 1
    unknown_site = _args("4", ["vk-fast"], uid="uid-4", **{"ctwin.io/input": "1GB@atlantis"})
    assert service.post(FILTER, json=unknown_site).json()["FailedNodes"] == {}

    advisor = service.app.state.service.advisor  # type: ignore[attr-defined]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine bug")

    advisor.advise = broken
    body = _args("16", ["node-x", "vk-fast", "vk-slow"], uid="uid-5")
    assert service.post(FILTER, json=body).json()["FailedNodes"] == {}
    assert {h["Score"] for h in service.post(PRIORITIZE, json=body).json()} == {5}
    assert _metric(service, 'ctwin_extender_fallback_total{reason="error"}') == 2


def test_prioritize_reuses_the_filters_advice_and_a_new_filter_advises_anew(service: TestClient) -> None:
    body = _args("2", ["vk-fast", "vk-slow"], uid="uid-9")
    advised = service.app.state.service.advisor.log._advised  # type: ignore[attr-defined]
    service.post(FILTER, json=body)
    service.post(PRIORITIZE, json=body)
    assert sum(advised.values()) == 1
    service.post(FILTER, json=body)
    assert sum(advised.values()) == 2


def test_the_routes_refuse_what_they_cannot_serve(tmp_path: Path) -> None:
    with _client(tmp_path, "    max_body: 4KiB\n") as client:
        assert client.post(FILTER, content=b"{nope").status_code == 400
        assert client.get(FILTER).status_code == 405
        assert client.post("/k8s/extender/v1/bind", json={}).status_code == 404
        big = json.dumps(_args("1", ["n"] * 1000)).encode()
        answer = client.post(FILTER, content=big)
        assert answer.status_code == 413 and "nodeCacheCapable" in answer.text
    with _client(tmp_path / "remote", client=("10.1.2.3", 5000)) as client:
        answer = client.post(FILTER, json=_args("1", ["n"]))
        assert answer.status_code == 403 and "path_secret" in answer.text


def test_a_path_secret_opens_the_routes_beyond_loopback_under_that_path(tmp_path: Path) -> None:
    secret = "s3cr3t-0123456789abcdef"
    with _client(tmp_path, f"    path_secret: {secret}\n", client=("10.1.2.3", 5000)) as client:
        assert client.post(FILTER, json=_args("1", ["vk-fast"])).status_code == 404
        answer = client.post(f"/k8s/extender/{secret}/v1/filter", json=_args("1", ["vk-fast"]))
        assert answer.status_code == 200 and answer.json()["NodeNames"] == ["vk-fast"]
        metrics = client.get("/metrics", headers={})
        assert secret not in metrics.text


def test_big_bodies_pass_beyond_the_api_body_limit(service: TestClient) -> None:
    item = {"metadata": {"name": "n", "managedFields": [{"fieldsV1": {f"f:{i}": {} for i in range(200)}}]}}
    items = [{**item, "metadata": {**item["metadata"], "name": f"vk-fast-{i}"}} for i in range(2000)]
    body = json.dumps({**_args("1", []), "NodeNames": None, "Nodes": {"items": items}}).encode()
    assert len(body) > 4 * 2**20  # serve.max_body is 4 MiB
    answer = service.post(FILTER, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200 and len(answer.json()["Nodes"]["items"]) == 2000
