"""`GET /v1/jobs/{site}/{job_id}`: a pod on an interLink virtual node (the real apiserver capture,
tests/fixtures/kubernetes) joined with the Slurm job it became at the remote site (the real squeue
capture, job 2 on node[1-3]) and the series of both jobs' nodes, from a real DuckDB store behind
the app; and the job export carrying the new columns with the join in its manifest."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from collectors.kube_cluster import node_facts
from collectors.kube_jobs import pod_rows
from collectors.slurm_json import parse_jobs
from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from telemetry.schema import Batch, Sample

FIXTURES = Path(__file__).parents[1] / "fixtures"
CLUSTER = FIXTURES / "kubernetes" / "cluster"
SQUEUE = FIXTURES / "slurm" / "v0.0.38" / "four_emulated_nodes" / "squeue_4nodes_t2s.json"
NS = "t-3ada89fe23"
POD_START = 1_796_292_000  # remote-1's status.startTime
SLURM_START = 1_795_279_281  # job 2's start_time
NOW = 1_796_293_000

CONFIG = """
sites:
  - {name: k8s, kind: cloud}
  - {name: hpc, kind: hpc}
"""


def _items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((CLUSTER / name).read_text())["items"]
    return items


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    data = tmp_path_factory.mktemp("graph")
    loaded = parse_config(CONFIG)
    tokens = TokenStore(loaded.tokens_path(data))
    headers = {s: {"Authorization": f"Bearer {tokens.create(f't-{s}', [s])[1]}"} for s in ("read", "export")}
    app = create_app(loaded, data, ui=False)
    with TestClient(app) as client:
        service = app.state.service
        nodes = [node_facts(n, {}, "ctwin.io/site") for n in _items("nodes.json")]
        store = service.store
        store.append_jobs(pod_rows(_items("pods.json"), nodes, site="k8s", observed_s=NOW))
        store.append_jobs(parse_jobs(SQUEUE.read_text(), SQUEUE.name, site="hpc", observed_s=NOW).frame)
        samples = [
            Sample("node_cpu_busy_ratio", 0.5 + i / 10, {"site": "hpc", "host": host}, (SLURM_START + t) * 10**9)
            for i, host in enumerate(("node1", "node2", "node3", "node4"))
            for t in range(-600, 1200, 60)
        ]
        samples += [
            Sample("node_cpu_usage_cores", 3.0, {"site": "k8s", "host": "kc-vk-hpc"}, (POD_START + t) * 10**9)
            for t in range(0, 900, 30)
        ]
        samples.append(Sample("node_cpu_busy_ratio", 0.9, {"site": "hpc", "host": "node1"}, 1_000 * 10**9))  # far off
        store.append(Batch.from_samples(samples))
        yield client, headers


def test_a_pod_on_a_virtual_node_is_joined_with_its_remote_job_and_their_nodes(served: Any) -> None:
    client, headers = served
    res = client.get(f"/v1/jobs/k8s/{NS}/remote-1", headers=headers["read"])
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["site"], body["job_id"], body["nodes"]) == ("k8s", f"{NS}/remote-1", ["kc-vk-hpc"])
    assert body["job"]["remote_site"] == "hpc" and body["job"]["remote_job_id"] == "2"
    assert "user" not in body["job"] and "group" not in body["job"]
    (pod_series,) = body["series"]
    assert pod_series["host"] == "kc-vk-hpc" and pod_series["metric"] == "node_cpu_usage_cores"
    assert body["window"]["start_s"] == POD_START - 300  # running: up to now + pad
    assert body["window"]["end_s"] >= time.time() + 300  # it has not ended: the window runs to now
    remote = body["remote"]
    assert (remote["site"], remote["job_id"], remote["reason"]) == ("hpc", "2", None)
    assert remote["nodes"] == ["node1", "node2", "node3"] and remote["job"]["state"] == "RUNNING"
    by_host = {s["host"]: s for s in remote["series"]}
    assert set(by_host) == {"node1", "node2", "node3"}  # node4 ran other jobs, not this one
    points = by_host["node2"]["points"]
    step = remote["window"]["step_s"]
    assert remote["window"]["start_s"] == SLURM_START - 300
    assert all(SLURM_START - 300 - step < ts < time.time() + 301 for ts, _ in points)
    assert all(v != 0.9 for _, v in by_host["node1"]["points"])  # the 1970 sample is outside the window
    assert 0 < len(points) <= 120 and points[0][1] == pytest.approx(0.6)


def test_unknown_sites_and_jobs_are_404_with_a_reason_and_a_plain_pod_has_no_remote(served: Any) -> None:
    client, headers = served
    res = client.get(f"/v1/jobs/k8s/{NS}/nope", headers=headers["read"])
    assert res.status_code == 404 and "no job 't-3ada89fe23/nope' at site 'k8s'" in res.json()["error"]["message"]
    assert client.get("/v1/jobs/mars/1", headers=headers["read"]).status_code == 404
    plain = client.get(f"/v1/jobs/k8s/{NS}/big-1", headers=headers["read"]).json()
    assert plain["remote"] is None and plain["window"] is None and plain["job"]["reason"] == "Unschedulable"
    only = client.get("/v1/jobs/hpc/2", params={"metric": "nope", "max_points": 5}, headers=headers["read"]).json()
    assert only["nodes"] == ["node1", "node2", "node3"] and only["series"] == []
    assert client.get("/v1/jobs/hpc/2", headers=headers["export"]).status_code == 403


def test_the_job_export_carries_the_new_columns_and_states_the_join(served: Any) -> None:
    client, headers = served
    res = client.get("/v1/export/jobs", params={"site": "k8s"}, headers=headers["export"])
    assert res.status_code == 200
    jobs = pl.read_parquet(io.BytesIO(res.content))
    remote = jobs.filter(pl.col("job_id") == f"{NS}/remote-1").row(0, named=True)
    assert (remote["nodes"], remote["remote_site"], remote["remote_job_id"]) == ("kc-vk-hpc", "hpc", "2")
    manifest = json.loads(res.headers["x-ctwin-manifest"])
    joins = {j["name"]: j for j in manifest["joins"]}
    assert joins["pod_to_remote_job"]["left"] == {"table": "jobs", "columns": ["remote_site", "remote_job_id"]}
    assert joins["pod_to_remote_job"]["right"] == {"table": "jobs", "columns": ["site", "job_id"]}
    assert {"nodes", "reason", "remote_site", "remote_job_id"} <= {c["name"] for c in manifest["schema"]}
