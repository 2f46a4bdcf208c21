"""The HTTP service end to end in-process: real collectors, real DuckDB store, real twin, the
FastAPI app through its lifespan. Access control, error bodies, a failing site, export, /metrics."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from tests.conftest import free_port

CONFIG = """
sites:
  - name: local
    kind: edge
    collectors:
      - {{type: node, interval: 0.3s}}
  - name: broken
    kind: cloud
    description: a site whose only exporter is unreachable
    collectors:
      - {{type: prometheus, url: "http://127.0.0.1:{port}/metrics", interval: 0.3s, timeout: 1s}}
  - name: kth
    kind: hpc
    collectors:
      - {{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 0.3s, speed: 3600, start_offset: 30d}}
links:
  - {{between: [local, kth], bandwidth_gbps: 10, latency_ms: 30}}
{extra}
"""


def _config(extra: str = "") -> str:
    return CONFIG.format(port=free_port(), extra=extra)


def _wait(client: TestClient, headers: dict[str, str], ready: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + 20
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get("/v1/sites", headers=headers).json()
        if ready(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"the twin never got ready: {body}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    data = tmp_path_factory.mktemp("api")
    loaded = parse_config(_config())
    tokens = TokenStore(loaded.tokens_path(data))
    tokens_by_scope = {
        scope: tokens.create(f"t-{scope}", [scope])[1] for scope in ("read", "export", "advise", "admin")
    }
    revoked = tokens.create("gone", ["admin"])
    tokens.revoke(revoked[0].id)
    tokens_by_scope["revoked"] = revoked[1]
    app = create_app(loaded, data, ui=False)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {tokens_by_scope['read']}"}

        def ready(body: dict) -> bool:
            by = {s["name"]: s for s in body.get("items", [])}
            return (
                by.get("local", {}).get("load") is not None
                and by.get("broken", {}).get("state") == "down"
                and by.get("kth", {}).get("jobs_running") is not None
            )

        _wait(client, headers, ready)
        yield client, tokens_by_scope, data


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _v1_routes(client: TestClient) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [(m.upper(), p.replace("{site}", "kth")) for p, ms in paths.items() if p.startswith("/v1/") for m in ms]


def test_every_v1_route_refuses_missing_wrong_and_revoked_tokens(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    routes = _v1_routes(client)
    assert len(routes) >= 10
    job = {"cores": 1, "walltime_s": 60}
    for method, path in routes:
        missing = client.request(method, path, params={"metric": "node_load1"}, json=job)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert set(missing.json()) == {"error"} and missing.json()["error"]["code"] == "missing_token"
        for bad in ("nonsense", tokens["read"][:-2] + "xx", tokens["revoked"]):
            refused = client.request(method, path, params={"metric": "node_load1"}, json=job, headers=_auth(bad))
            assert refused.status_code == 401, (path, bad)
            assert "items" not in refused.text and "local" not in refused.text


def test_scopes_are_enforced_per_route(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    assert client.get("/v1/nodes", headers=_auth(tokens["advise"])).status_code == 403
    assert client.get("/v1/nodes", headers=_auth(tokens["export"])).status_code == 403
    assert client.get("/v1/nodes", headers=_auth(tokens["read"])).status_code == 200
    assert client.get("/v1/nodes", headers=_auth(tokens["admin"])).status_code == 200
    denied = client.get("/v1/export/jobs", headers=_auth(tokens["read"]))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
    assert client.get("/v1/export/jobs", headers=_auth(tokens["export"])).status_code == 200


def test_sites_show_every_site_even_a_failing_one_with_its_staleness(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    body = client.get("/v1/sites", headers=_auth(tokens["read"])).json()
    by = {s["name"]: s for s in body["items"]}
    assert set(by) == {"local", "broken", "kth"}
    broken = by["broken"]
    assert broken["state"] == "down" and broken["data_age_s"] is None
    (collector,) = broken["collectors"]
    assert collector["errors"] >= 1 and "127.0.0.1" in collector["last_error"]
    assert by["local"]["state"] == "ok" and 0 <= by["local"]["load"] <= 1 and by["local"]["hosts"] == 1
    kth = by["kth"]
    assert kth["is_replay"] and kth["kind"] == "hpc" and kth["cpus_total"] == 100
    assert kth["trace_time_s"] > 8e8  # unix seconds of the 1996-97 log


def test_nodes_give_latest_values_with_data_age(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    body = client.get("/v1/nodes", params={"site": "local"}, headers=_auth(tokens["read"])).json()
    (node,) = body["items"]
    assert node["site"] == "local" and node["state"] == "ok"
    assert 0 <= node["data_age_s"] < 5
    assert node["mem_total_bytes"] > node["mem_used_bytes"] > 0 and node["cpus"] >= 1
    assert client.get("/v1/nodes", params={"site": "nope"}, headers=_auth(tokens["read"])).status_code == 404


def test_queue_of_a_replayed_site_names_no_people(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    body = client.get("/v1/sites/kth/jobs", headers=_auth(tokens["read"])).json()
    assert body["jobs"], "the replayed site has running jobs"
    assert {j["state"] for j in body["jobs"]} <= {"PENDING", "RUNNING"}
    assert all("user" not in j and "group" not in j for j in body["jobs"])


def test_query_downsamples_on_the_server(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    body = client.get(
        "/v1/query",
        params={"metric": "node_load1", "label": "site=local", "start": "-1h", "max_points": 10},
        headers=_auth(tokens["read"]),
    ).json()
    assert body["step_s"] >= 360  # one hour in at most 10 buckets
    (series,) = body["series"]
    assert series["labels"]["site"] == "local" and 1 <= len(series["points"]) <= 10


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"metric": "node_load1", "start": "yesterday-ish"}, 400, "bad_time"),
        ({"metric": "node_load1", "start": "now", "end": "-1h"}, 400, "bad_query"),
        ({"metric": "node_load1", "label": "site"}, 400, "bad_label"),
        ({"metric": "node_load1", "label": "9bad=x"}, 400, "bad_query"),
        ({"metric": "node_load1", "agg": "median"}, 422, "invalid_request"),
        ({"metric": "node_load1", "max_points": 0}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
    ],
)
def test_bad_query_input_gets_a_4xx_with_a_reason(
    served: tuple[TestClient, dict, Path], params: dict, status: int, code: str
) -> None:
    client, tokens, _ = served
    res = client.get("/v1/query", params=params, headers=_auth(tokens["read"]))
    assert res.status_code == status, res.text
    error = res.json()["error"]
    assert error["code"] == code and error["status"] == status and error["message"]


def test_unknown_route_uses_the_error_body(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    res = client.get("/v1/nothing-here", headers=_auth(tokens["read"]))
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"


def test_export_samples_streams_a_file_with_its_manifest(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    res = client.get(
        "/v1/export/samples",
        params={"metric": "node_load1", "format": "csv"},
        headers=_auth(tokens["export"]),
    )
    assert res.status_code == 200, res.text
    manifest = json.loads(res.headers["x-ctwin-manifest"])
    assert manifest["sha256"] == hashlib.sha256(res.content).hexdigest() == res.headers["x-ctwin-sha256"]
    frame = pl.read_csv(io.BytesIO(res.content))
    assert frame.height == manifest["rows"] > 0
    assert set(frame["metric"].to_list()) == {"node_load1"} and "site" in frame.columns


def test_export_jobs_over_the_api_is_pseudonymised(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, data = served
    res = client.get("/v1/export/jobs", params={"site": "kth"}, headers=_auth(tokens["export"]))
    assert res.status_code == 200
    jobs = pl.read_parquet(io.BytesIO(res.content))
    manifest = json.loads(res.headers["x-ctwin-manifest"])
    assert jobs.height == manifest["rows"] > 0
    assert set(jobs["site"].to_list()) == {"kth"}
    users = jobs["user"].drop_nulls().to_list()
    assert users and all(u.startswith("u_") for u in users)
    salt = (data / "pseudonym.salt").read_text().strip()
    assert salt not in res.text and salt not in res.headers["x-ctwin-manifest"]


def test_health_endpoints_and_metrics_are_open_on_loopback(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    assert client.get("/v1/nodes", headers={"Authorization": f"Bearer {tokens['read']}"}).status_code == 200
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json()["status"] == "ready"
    text = client.get("/metrics").text
    assert 'node_memory_MemTotal_bytes{host="' in text and 'site="local"' in text
    assert 'ctwin_site_up{kind="cloud",site="broken"} 0.0' in text
    assert 'ctwin_site_up{kind="edge",site="local"} 1.0' in text
    assert 'ctwin_collector_errors_total{collector="broken/prometheus",site="broken"}' in text
    assert 'ctwin_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/nodes"' in text
    # any token is an HTTP method: unknown ones share one label, so clients cannot grow the label set
    for method in ("BREW", "X-SPAM-1", "X-SPAM-2"):
        assert client.request(method, "/v1/nodes").status_code in (401, 405)
    text = client.get("/metrics").text
    assert 'method="other",route="/v1/nodes"' in text and "BREW" not in text and "SPAM" not in text


def test_closed_metrics_need_a_token_and_shutdown_flushes(tmp_path: Path) -> None:
    loaded = parse_config(_config('auth: {open_endpoints: ["/healthz"]}'))
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=_auth(token)).status_code == 200
        time.sleep(1.0)
        written = client.app.state.service.pipeline  # type: ignore[attr-defined]
    health = written.health()
    assert health["buffered_samples"] == 0 and health["written_samples"] > 0
    from telemetry.stores.duckdb_store import DuckDBStore

    store = DuckDBStore(tmp_path / "ctwin.duckdb", read_only=True)
    try:
        assert store.count() >= health["written_samples"] - health["dropped_samples"]
        assert store.jobs(site="kth").height > 0
    finally:
        store.close()


def test_fast_path_and_fastapi_route_answer_the_same(served: tuple[TestClient, dict, Path]) -> None:
    """`/v1/nodes?site=local` takes the fast path; an extra parameter sends it through FastAPI."""
    client, tokens, _ = served
    fast = client.get("/v1/nodes", params={"site": "local"}, headers=_auth(tokens["read"]))
    routed = client.get("/v1/nodes", params={"site": "local", "extra": "1"}, headers=_auth(tokens["read"]))
    assert fast.status_code == routed.status_code == 200
    assert fast.json()["items"][0]["host"] == routed.json()["items"][0]["host"]
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    # refusals and unknown sites are never answered by the fast path
    assert client.get("/v1/nodes", params={"site": "nope"}, headers=_auth(tokens["read"])).status_code == 404
    assert client.get("/v1/nodes", headers=_auth(tokens["advise"])).status_code == 403
    text = client.get("/metrics").text
    assert 'route="/v1/nodes",status="200"' in text


def test_default_config_serves_this_host_and_two_replayed_hpc_sites_advancing(tmp_path: Path) -> None:
    from service.config import load_config

    loaded = load_config(None)
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:

        def replays(body: dict) -> bool:
            by = {s["name"]: s for s in body["items"]}
            return all(by[n]["trace_time_s"] is not None for n in ("kth-sp2", "sdsc-sp2"))

        first = {s["name"]: s for s in _wait(client, _auth(token), replays)["items"]}
        time.sleep(5.5)  # one more collection at the default 5 s interval
        later = {s["name"]: s for s in client.get("/v1/sites", headers=_auth(token)).json()["items"]}
        nodes = client.get("/v1/nodes", headers=_auth(token)).json()["items"]
    assert set(first) == {"local", "kth-sp2", "sdsc-sp2", "cloud-eu"}
    for name in ("kth-sp2", "sdsc-sp2"):
        assert later[name]["is_replay"] and later[name]["kind"] == "hpc"
        assert later[name]["trace_time_s"] > first[name]["trace_time_s"]  # the replay advances
    assert [n["site"] for n in nodes] == ["local"]


def test_a_failing_slurm_source_and_a_malformed_trace_never_stop_the_service(tmp_path: Path) -> None:
    """Bad input (issue 4): a Slurm command that cannot run, an SWF log with a broken line. The
    service keeps serving; the Slurm site shows down with an error naming the command; the replay
    plays every good line."""
    import gzip

    from collectors.traces import TRACES_DIR

    lines = gzip.decompress((TRACES_DIR / "KTH-SP2-1996-2.1-cln.swf.gz").read_bytes()).decode().splitlines()
    body = [i for i, line in enumerate(lines) if line.strip() and not line.startswith(";")]
    lines[body[5]] = "this is not an SWF record"
    trace = tmp_path / "broken.swf"
    trace.write_text("\n".join(lines) + "\n")
    config = f"""
sites:
  - name: cluster
    kind: hpc
    collectors: [{{type: slurm, interval: 0.3s, command_prefix: ["/nonexistent/ssh-wrapper"], accounting: false}}]
  - name: replayed
    kind: hpc
    collectors: [{{type: replay, trace: "{trace}", interval: 0.3s, start_offset: 30d}}]
"""
    loaded = parse_config(config)
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        body_ = _wait(
            client,
            _auth(token),
            lambda b: (
                {s["name"]: s["state"] for s in b["items"]} == {"cluster": "down", "replayed": "ok"}
                and all(s["jobs_running"] is not None for s in b["items"] if s["name"] == "replayed")
            ),
        )
        assert client.get("/healthz").status_code == 200
    cluster = next(s for s in body_["items"] if s["name"] == "cluster")
    assert "/nonexistent/ssh-wrapper" in cluster["collectors"][0]["last_error"]
    replayed = next(s for s in body_["items"] if s["name"] == "replayed")
    assert replayed["jobs_running"] is not None


def test_forecast_and_whatif_of_a_replayed_site(served: tuple[TestClient, dict, Path]) -> None:
    client, tokens, _ = served
    res = client.get("/v1/sites/kth/forecast", headers=_auth(tokens["read"]))
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["processors"] == 100 and body["predictor"] == "ave2" and body["now_s"] > 8e8
    for job in body["jobs"]:
        assert job["predicted_start_s"] >= body["now_s"]
        assert job["predicted_wait_s"] == job["predicted_start_s"] - body["now_s"]
    requested = client.get("/v1/sites/kth/forecast", params={"predictor": "requested"}, headers=_auth(tokens["read"]))
    assert requested.json()["predictor"] == "requested"
    job = {"cores": 8, "walltime_s": 3600}
    assert client.post("/v1/sites/kth/whatif", json=job, headers=_auth(tokens["read"])).status_code == 403
    whatif = client.post("/v1/sites/kth/whatif", json=job, headers=_auth(tokens["advise"]))
    assert whatif.status_code == 200, whatif.text
    answer = whatif.json()
    assert answer["predicted_start_s"] >= answer["now_s"] and answer["queue_pending"] == len(body["jobs"])
    too_wide = client.post(
        "/v1/sites/kth/whatif", json={"cores": 101, "walltime_s": 60}, headers=_auth(tokens["advise"])
    )
    assert too_wide.status_code == 400 and "100" in too_wide.json()["error"]["message"]
    no_queue = client.get("/v1/sites/local/forecast", headers=_auth(tokens["read"]))
    assert no_queue.status_code == 409 and no_queue.json()["error"]["code"] == "no_batch_queue"
    unknown = client.post("/v1/sites/kth/whatif", json={**job, "gpus": 1}, headers=_auth(tokens["advise"]))
    assert unknown.status_code == 422


def test_site_whatif_takes_the_walltime_as_advice_does_and_walltime_s_still(
    served: tuple[TestClient, dict, Path],
) -> None:
    client, tokens, _ = served
    asked = {}
    for walltime in ({"walltime": "1h"}, {"walltime": 3600}, {"walltime": "59.5m"}, {"walltime_s": 3600}):
        answer = client.post("/v1/sites/kth/whatif", json={"cores": 8, **walltime}, headers=_auth(tokens["advise"]))
        assert answer.status_code == 200, (walltime, answer.text)
        asked[str(walltime)] = answer.json()
    assert all(a["predicted_start_s"] >= a["now_s"] for a in asked.values())
    for wrong, says in (
        ({"walltime": "soon"}, "invalid duration"),
        ({"walltime": "400d"}, "at most 366 days"),
        ({"walltime": "1h", "walltime_s": 3600}, "give the requested time once"),
        ({}, "give the requested time once"),
    ):
        refused = client.post("/v1/sites/kth/whatif", json={"cores": 8, **wrong}, headers=_auth(tokens["advise"]))
        assert refused.status_code == 422 and says in refused.json()["error"]["message"], (wrong, refused.text)


def test_forecasts_are_scored_when_the_jobs_start(served: tuple[TestClient, dict, Path]) -> None:
    """The replay runs at one trace hour per second: forecasts made now are scored within seconds."""
    client, tokens, _ = served
    client.get("/v1/sites/kth/forecast", headers=_auth(tokens["read"]))
    deadline = time.monotonic() + 20
    accuracy: dict = {}
    while time.monotonic() < deadline:
        accuracy = client.get("/v1/sites/kth/forecast", headers=_auth(tokens["read"])).json()["accuracy"]
        if accuracy["scored"] >= 5:
            break
        time.sleep(0.5)
    assert accuracy["scored"] >= 5, accuracy
    assert 0 <= accuracy["within_1h"] <= 1 and accuracy["median_abs_error_s"] >= 0


def test_a_config_only_site_and_its_links_say_configured_not_starting_or_stale(tmp_path: Path) -> None:
    """The default continuum's cloud-eu has no collector: it is `configured` (not `starting` forever),
    has no `ctwin_site_up` to alert on, and links whose figures are only configured say so."""
    from dashboards.overview import _summary
    from service.config import load_config

    loaded = load_config(None)
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:

        def collected(body: dict) -> bool:
            return all(s["state"] == "ok" for s in body["items"] if s["name"] != "cloud-eu")

        sites = {s["name"]: s for s in _wait(client, _auth(token), collected)["items"]}
        cloud = client.get("/v1/sites/cloud-eu", headers=_auth(token)).json()
        links = {(lk["a"], lk["b"]): lk for lk in client.get("/v1/links", headers=_auth(token)).json()["items"]}
        metrics = client.get("/metrics").text
        summary = _summary(client.app.state.service.twin.sites(), time.time())  # type: ignore[attr-defined]
    assert sites["cloud-eu"]["state"] == cloud["state"] == "configured"
    assert cloud["collectors"] == [] and cloud["data_age_s"] is None
    assert set(links) == {("local", "kth-sp2"), ("local", "sdsc-sp2"), ("local", "cloud-eu")}
    for link in links.values():  # no interface, no probe: the configured figures, which cannot age
        assert link["state"] == "configured" and link["data_age_s"] is None, link
        assert link["bandwidth_bps"] and link["latency_s"]
    assert 'ctwin_site_up{kind="edge",site="local"} 1.0' in metrics
    assert 'ctwin_site_up{kind="hpc",site="kth-sp2"} 1.0' in metrics
    assert 'site="cloud-eu"' not in "".join(line for line in metrics.splitlines() if line.startswith("ctwin_site_up"))
    assert 'ctwin_site_state{kind="cloud",site="cloud-eu",state="configured"} 1.0' in metrics
    assert 'ctwin_site_state{kind="cloud",site="cloud-eu",state="starting"} 0.0' in metrics
    assert 'ctwin_site_state{kind="edge",site="local",state="ok"} 1.0' in metrics
    assert "4 sites · 3 ok · 1 configured · updated" in summary and "starting" not in summary


def test_a_measured_link_to_a_config_only_site_follows_the_measuring_end(tmp_path: Path) -> None:
    """A link whose traffic an interface measures keeps its freshness: `ok` with a data age while the
    measuring site is fresh, whatever the config-only end (which measures nothing) says."""
    config = """
sites:
  - name: local
    kind: edge
    collectors: [{type: interconnect, interval: 0.3s}]
  - name: cloud
    kind: cloud
    cloud: {quota_cores: 64}
links:
  - {between: [local, cloud], bandwidth_gbps: 1, latency_ms: 25, interface: lo}
"""
    loaded = parse_config(config)
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        _wait(client, _auth(token), lambda b: any(s["state"] == "ok" for s in b["items"]))
        deadline = time.monotonic() + 10
        while True:
            (link,) = client.get("/v1/links", headers=_auth(token)).json()["items"]
            if link["rx_bps"] is not None or time.monotonic() > deadline:  # a rate needs two readings
                break
            time.sleep(0.1)
    assert link["state"] == "ok", link
    assert link["data_age_s"] is not None and 0 <= link["data_age_s"] < 5 and link["rx_bps"] is not None
