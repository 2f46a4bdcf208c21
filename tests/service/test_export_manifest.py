"""The export manifest documents the dataset on its own (issue 17, item 5): checked on a real
service (a replayed SWF site, real collectors, DuckDB store, advisor and advice log) — units,
version, resolved time bounds in wall and trace time, one type vocabulary, separate pseudonym
namespaces, and joins that really join the exported rows."""

from __future__ import annotations

import io
import json
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from telemetry.catalog import catalog
from telemetry.export import (
    NAMESPACES,
    TYPE_VOCABULARY,
    ReplayClock,
    ReplayClockUnknownError,
    check_job_states,
    export_jobs,
    jobs_submitted,
    pseudonymise,
    replay_clocks,
    site_submit_bounds,
    stored_replay_clocks,
)
from telemetry.jobs import JOB_SCHEMA, JOB_STATES
from telemetry.stores.base import Selection
from tests.dashboards.export_service import CONFIG

SALT = "a-test-salt-of-enough-length"
PROJECT_VERSION = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
    "version"
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], object]]:
    data = tmp_path_factory.mktemp("export")
    loaded = parse_config(CONFIG)
    tokens = TokenStore(loaded.tokens_path(data))
    auth = {s: {"Authorization": f"Bearer {tokens.create(f't-{s}', [s])[1]}"} for s in ("read", "export", "advise")}
    app = create_app(loaded, data, ui=False)
    with TestClient(app) as client:
        service = app.state.service
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = service.store.jobs(site="kth", states=["COMPLETED"])
            if done.height >= 3 and service.store.count() > 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the replay never finished a job")
        yield client, auth, service


def _get(client: TestClient, url: str, auth: dict[str, str], **params: object) -> tuple[bytes, dict]:
    res = client.get(url, params=params, headers=auth)
    assert res.status_code == 200, res.text
    return res.content, json.loads(res.headers["x-ctwin-manifest"])


def _common(manifest: dict) -> None:
    assert manifest["manifest_version"] == 2
    assert manifest["ctwin_version"] == PROJECT_VERSION != ""
    assert manifest["type_vocabulary"] == TYPE_VOCABULARY
    for column in manifest["schema"]:
        assert column["type"] in TYPE_VOCABULARY, column
        assert "unit" in column and "source_type" in column
    clock = manifest["clocks"]["replayed"]
    assert [c["site"] for c in clock] == ["kth"] and clock[0]["speed"] == 3600
    assert clock[0]["formula"] == "trace_s = trace_origin_s + (wall_s - wall_origin_s) * speed"
    assert {j["name"] for j in manifest["joins"]} >= {"advice_to_job", "pod_to_remote_job", "samples_to_jobs"}


def test_samples_manifest_units_bounds_and_trace_clock(served: tuple) -> None:
    client, auth, _ = served
    start = "2020-01-01T00:00:00Z"
    content, manifest = _get(client, "/v1/export/samples", auth["export"], start=start, format="parquet")
    _common(manifest)
    frame = pl.read_parquet(io.BytesIO(content))
    assert frame.height == manifest["rows"] > 0
    types = {c["name"]: c["type"] for c in manifest["schema"]}
    assert types["time"] == "timestamp_ns" and types["value"] == "float64" and types["metric"] == "string"
    units = manifest["metrics"]
    assert set(units) == set(frame["metric"].unique().to_list())
    sized = [n for n in units if n.endswith("_bytes") and n in catalog]
    assert sized and all(units[n]["unit"] == "bytes" for n in sized)
    assert all(units[n]["type"] == catalog.get(n).type for n in units if n in catalog)
    assert units["batch_replay_trace_time_seconds"]["unit"] == "s"
    bounds = manifest["time_bounds"]
    assert bounds["resolved_from"] == {"start": "requested", "end": "data"}
    assert bounds["wall_utc"]["start"] == "2020-01-01T00:00:00+00:00"
    newest = frame["time"].max()
    assert isinstance(newest, datetime)
    assert bounds["wall_utc"]["end_s"] == pytest.approx(newest.replace(tzinfo=newest.tzinfo or UTC).timestamp())
    clock = ReplayClock(
        **{k: manifest["clocks"]["replayed"][0][k] for k in ("site", "wall_origin_s", "trace_origin_s", "speed")}
    )
    trace = bounds["trace"]["kth"]
    assert trace["end_s"] == pytest.approx(clock.trace_of(bounds["wall_utc"]["end_s"]))
    # the mapping is the one the replay shows: its trace-time series, read at a wall instant
    shown = frame.filter((pl.col("metric") == "batch_replay_trace_time_seconds") & (pl.col("site") == "kth"))
    last = shown.sort("time").row(-1, named=True)
    wall_s = last["time"].timestamp()
    assert clock.trace_of(wall_s) == pytest.approx(last["value"], abs=3600 * 1.0)  # within one gather


def test_jobs_manifest_job_units_trace_bounds_and_namespaces(served: tuple) -> None:
    client, auth, _ = served
    content, manifest = _get(client, "/v1/export/jobs", auth["export"], site="kth", format="csv")
    _common(manifest)
    jobs = pl.read_csv(io.BytesIO(content), schema_overrides=JOB_SCHEMA)
    assert jobs.height == manifest["rows"] > 0
    units = {c["name"]: c["unit"] for c in manifest["schema"]}
    assert units["submit_s"] == "unix_s" and units["req_walltime_s"] == "s"
    assert units["req_cores"] == units["alloc_cores"] == "cores" and units["req_mem_bytes"] == "bytes"
    assert {c["name"]: c["type"] for c in manifest["schema"]}["submit_s"] == "int64"
    bounds = manifest["time_bounds"]
    assert bounds["column"] == "submit_s" and bounds["resolved_from"] == {"start": "data", "end": "data"}
    first, last = jobs["submit_s"].min(), jobs["submit_s"].max()
    assert isinstance(first, int) and isinstance(last, int)
    assert bounds["trace"]["kth"] == {"start_s": first, "end_s": last + 1}
    assert bounds["trace"]["kth"]["start_s"] < 1e9  # a 1996 trace: trace time, not wall time
    assert bounds["wall_utc"]["start_s"] > 1.6e9  # ... played now
    pseudo = manifest["pseudonymisation"]
    assert pseudo["namespaces"] == {"user": NAMESPACES["user"], "group": NAMESPACES["group"]}
    assert NAMESPACES["user"] != NAMESPACES["group"]
    assert (
        jobs["user"].drop_nulls().str.starts_with("u_").all() and jobs["group"].drop_nulls().str.starts_with("g_").all()
    )


def test_a_user_and_a_group_of_one_name_get_different_pseudonyms() -> None:
    frame = pl.DataFrame({"user": ["alice", "bob", "alice"], "group": ["alice", "alice", "staff"]})
    out = pseudonymise(frame, SALT)
    assert out["user"][0] == out["user"][2]  # stable
    assert out["user"][0][2:] != out["group"][0][2:]  # same name, other namespace: unrelated hashes
    assert out["group"][0] == out["group"][1]


def test_the_advice_to_job_join_in_the_manifest_joins_rows(served: tuple) -> None:
    client, auth, service = served
    res = client.post(
        "/v1/advice", json={"cores": 4, "walltime": "1h", "user": "alice", "home": "local"}, headers=auth["advise"]
    )
    assert res.status_code == 200, res.text
    advice_id = res.json()["advice_id"]
    kth = service.twin.site("kth")  # the advised job is one submitted after the answer (trace clock)
    given = kth.trace_time_s + (res.json()["created_s"] - kth.trace_wall_s) * kth.trace_speed
    deadline = time.monotonic() + 60
    while True:
        done = service.store.jobs(site="kth", states=["COMPLETED"]).filter(pl.col("submit_s") >= given)
        if done.height or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done.height, "the replay never finished a job submitted after the advice"
    finished = done.row(0, named=True)
    res = client.post(
        f"/v1/advice/{advice_id}/outcome", json={"site": "kth", "job_id": finished["job_id"]}, headers=auth["advise"]
    )
    assert res.status_code == 200, res.text
    service.advisor.log.flush()
    advice_bytes, advice_manifest = _get(client, "/v1/export/advice", auth["export"])
    jobs_bytes, _ = _get(client, "/v1/export/jobs", auth["export"], site="kth")
    _common(advice_manifest)
    advice, jobs = pl.read_parquet(io.BytesIO(advice_bytes)), pl.read_parquet(io.BytesIO(jobs_bytes))
    assert advice_manifest["rows"] == advice.height >= 1
    assert {c["name"]: c["unit"] for c in advice_manifest["schema"]}["created_s"].startswith("unix_s (wall")
    assert advice_manifest["time_bounds"]["wall_utc"]["start_s"] == advice["created_s"].min()
    assert advice_manifest["time_bounds"]["wall_utc"]["end_s"] > advice["created_s"].max()  # type: ignore[operator]
    join = next(j for j in advice_manifest["joins"] if j["name"] == "advice_to_job")
    joined = advice.join(jobs, left_on=join["left"]["columns"], right_on=join["right"]["columns"], suffix="_job")
    assert joined.height == 1 and joined["advice_id"][0] == advice_id
    row = joined.row(0, named=True)
    assert row["realised_run_s"] == row["end_s"] - row["start_s"]


def test_export_jobs_without_clocks_says_wall_only(served: tuple, tmp_path: Path) -> None:
    _, _, service = served
    manifest = export_jobs(service.store, tmp_path / "j.parquet", "parquet", SALT, site="kth", wall_from_s=0)
    assert manifest.clocks == {"default": "wall clock UTC (a live site)", "replayed": []}
    assert manifest.time_bounds is not None and manifest.time_bounds["resolved_from"]["start"] == "requested"
    assert manifest.time_bounds["wall_utc"]["start_s"] == 0


def test_an_offline_export_reads_the_replay_clock_from_the_store(served: tuple) -> None:
    _, _, service = served
    (stored,) = stored_replay_clocks(service.store, {"kth": 3600.0})
    kth = service.twin.site("kth")
    assert stored.site == "kth" and stored.speed == 3600.0
    # the same mapping as the twin's, up to the readings between the two origins
    assert stored.trace_of(kth.trace_wall_s) == pytest.approx(kth.trace_time_s, abs=3600 * 2.0)
    assert stored_replay_clocks(service.store, {}) == [] and stored_replay_clocks(service.store, {"mars": 1.0}) == []


# --- a wall-clock range on a replayed site's jobs (their times are trace times) -----------------


def _estimate(service: object, site: str | None, range_: str, now_s: float) -> int:
    """The Export page's row estimate for the same choice (dashboards.export.estimate_rows)."""
    from dashboards.export import Choice, ExportSource, estimate_rows

    source = ExportSource(service.store, service.salt)  # type: ignore[attr-defined]
    clocks = replay_clocks(service.twin.sites())  # type: ignore[attr-defined]
    return estimate_rows(source, Choice("jobs", site, range_, "parquet"), clocks, now_s)


@pytest.mark.parametrize("range_", ["1h", "24h"])
def test_a_relative_range_selects_a_replayed_sites_jobs_in_its_trace_clock(served: tuple, range_: str) -> None:
    client, auth, service = served
    now = int(time.time())
    span = {"1h": 3600, "24h": 86400}[range_]
    content, manifest = _get(client, "/v1/export/jobs", auth["export"], site="kth", start=str(now - span), end=str(now))
    jobs = pl.read_parquet(io.BytesIO(content))
    (clock,) = replay_clocks(service.twin.sites())
    lo, hi = site_submit_bounds(now - span, now, clock)
    assert lo is not None and hi is not None and lo < 1e9  # a 1996 trace instant, not the wall time
    assert jobs.height == manifest["rows"] > 0
    assert jobs["submit_s"].min() >= lo and jobs["submit_s"].max() < hi  # type: ignore[operator]
    assert manifest["rows"] == service.store.jobs(site="kth", submitted_from_s=lo, submitted_to_s=hi).height
    assert manifest["rows"] == _estimate(service, "kth", range_, now)  # what the Export page promised
    bounds = manifest["time_bounds"]
    assert bounds["trace"] == {"kth": {"start_s": lo, "end_s": hi}}
    assert bounds["wall_utc"]["start_s"] == now - span and bounds["wall_utc"]["end_s"] == now
    assert bounds["wall_utc"]["start"] == datetime.fromtimestamp(now - span, UTC).isoformat(timespec="seconds")


def test_an_all_sites_job_export_maps_the_range_per_site_and_labels_wall_as_wall(served: tuple) -> None:
    client, auth, service = served
    now = int(time.time())
    content, manifest = _get(client, "/v1/export/jobs", auth["export"], start=str(now - 86400), end=str(now))
    jobs = pl.read_parquet(io.BytesIO(content))
    assert jobs.filter(pl.col("site") == "kth").height > 0  # the replayed site's jobs are in range too
    assert manifest["rows"] == jobs.height == _estimate(service, None, "24h", now)
    bounds = manifest["time_bounds"]
    assert bounds["wall_utc"]["start_s"] == now - 86400 and bounds["wall_utc"]["end_s"] == now
    assert bounds["trace"]["kth"]["start_s"] < 1e9 < bounds["wall_utc"]["start_s"]
    assert "own clock" in bounds["note"]
    # without a range the bounds come from the rows: trace times stay under trace, wall under wall_utc
    _, whole = _get(client, "/v1/export/jobs", auth["export"])
    assert whole["time_bounds"]["wall_utc"]["start_s"] > 1.6e9  # not a 1996 trace time labelled UTC
    assert whole["time_bounds"]["trace"]["kth"]["start_s"] < 1e9


def test_a_replayed_site_whose_clock_is_unknown_is_not_read_as_wall_time(served: tuple, tmp_path: Path) -> None:
    """Before its replay has shown a trace instant, a replayed site's job times cannot be put
    against a wall-clock range: asked alone, refused with the reason (the CLI and the API's 409
    say the same); in an all-sites export it is left out, and the manifest says so."""
    from dashboards.export import Choice, ExportSource, estimate_rows

    _, _, service = served
    now = time.time()
    with pytest.raises(ReplayClockUnknownError, match="kth is replayed and its trace clock is not known yet"):
        jobs_submitted(service.store, site="kth", wall_from_s=now - 86400, wall_to_s=now, replayed=["kth"])
    source = ExportSource(service.store, service.salt)
    with pytest.raises(ReplayClockUnknownError):
        estimate_rows(source, Choice("jobs", "kth", "24h", "parquet"), [], now, ["kth"])
    as_wall = jobs_submitted(service.store, wall_from_s=0, wall_to_s=now)  # not told kth is replayed
    assert "kth" in set(as_wall["site"])  # its 1996 trace times read as wall instants "since 1970"
    every = jobs_submitted(service.store, wall_from_s=0, wall_to_s=now, replayed=["kth"])
    assert "kth" not in set(every["site"])
    manifest = export_jobs(
        service.store, tmp_path / "j.parquet", "parquet", SALT, wall_from_s=0, wall_to_s=now, replayed=["kth"]
    )
    assert manifest.rows == every.height
    assert manifest.clocks is not None and manifest.clocks["unmapped_replays"]["sites"] == ["kth"]
    # without a range nothing needs mapping: every row, no note
    whole = export_jobs(service.store, tmp_path / "w.parquet", "parquet", SALT, replayed=["kth"])
    assert "unmapped_replays" not in (whole.clocks or {}) and whole.rows > every.height


def test_the_api_refuses_an_unknown_metric_and_site_and_takes_every_job_state(served: tuple) -> None:
    client, auth, _ = served
    res = client.get("/v1/export/samples", params={"metric": "node_lod1"}, headers=auth["export"])
    assert res.status_code == 404 and res.json()["error"]["code"] == "unknown_metric"
    assert "did you mean node_load1" in res.json()["error"]["message"]
    res = client.get("/v1/export/jobs", params={"site": "nowhere"}, headers=auth["export"])
    assert res.status_code == 404 and "no site named 'nowhere'" in res.json()["error"]["message"]
    res = client.get("/v1/export/jobs", params={"state": list(JOB_STATES)}, headers=auth["export"])
    assert res.status_code == 200, res.text  # the states the history holds, as `ctwin export jobs` takes them
    assert client.get("/v1/export/jobs", params={"state": "DONE"}, headers=auth["export"]).status_code == 422
    assert check_job_states(["boot_fail", "DEADLINE", "SUSPENDED", "UNKNOWN"]) == [
        "BOOT_FAIL",
        "DEADLINE",
        "SUSPENDED",
        "UNKNOWN",
    ]
    with pytest.raises(ValueError, match="unknown job state"):
        check_job_states(["DONE"])


def test_exported_instants_are_utc_in_parquet_and_csv(served: tuple) -> None:
    client, auth, service = served
    metric, end = "batch_replay_trace_time_seconds", int(time.time())  # a fixed end: the replay goes on
    content, _ = _get(client, "/v1/export/samples", auth["export"], metric=metric, end=str(end))
    frame = pl.read_parquet(io.BytesIO(content))
    assert frame.schema["time"] == pl.Datetime("ns", "UTC")
    stored = service.store.query(Selection(metrics=(metric,), end_ns=end * 1_000_000_000))
    assert set(frame["time"].dt.epoch("ns").to_list()) == set(stored["ts_ns"].to_list())  # same instants
    text, _ = _get(client, "/v1/export/samples", auth["export"], metric=metric, end=str(end), format="csv")
    stamps = [line.split(",")[0] for line in text.decode().splitlines()[1:]]
    assert stamps and all(s.endswith("Z") and "T" in s for s in stamps)  # ISO-8601 UTC, 9 fraction digits
    parsed = pl.Series(stamps).str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ns", time_zone="UTC")
    assert set(parsed.dt.epoch("ns").to_list()) == set(stored["ts_ns"].to_list())
    # the job and advice exports carry instants as unix seconds (unit unix_s), never a zone-less datetime
    for route in ("/v1/export/jobs", "/v1/export/advice"):
        data, manifest = _get(client, route, auth["export"])
        schema = pl.read_parquet(io.BytesIO(data)).schema
        assert not [n for n, t in schema.items() if isinstance(t, pl.Datetime) and t.time_zone is None]
        assert all(c["type"] != "timestamp_ns" for c in manifest["schema"])
