"""The `ctwin` command line, run as a user runs it: a real subprocess of the installed entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore

FAST = """
data_dir: {data}
sites:
  - name: local
    kind: edge
    collectors:
      - {{type: node, interval: 500ms}}
      - {{type: containers, interval: 500ms}}
      - {{type: interconnect, interval: 500ms}}
"""


def ctwin(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_collect_once_json_shows_cpu_memory_network_and_containers() -> None:
    res = ctwin("collect", "--once", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    names = {s["metric"] for s in data["samples"]}
    for wanted in (
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_network_receive_bytes_total",
        "container_cpu_usage_seconds_total",
        "container_memory_usage_bytes",
    ):
        assert wanted in names
    sites = {s["labels"]["site"] for s in data["samples"]}
    assert sites == {"local", "kth-sp2", "sdsc-sp2"}  # this machine and the two replayed HPC sites
    node_sites = {s["labels"]["site"] for s in data["samples"] if s["metric"].startswith("node_")}
    assert node_sites == {"local"}
    replayed = {s["labels"]["site"] for s in data["samples"] if s["metric"] == "batch_replay_trace_time_seconds"}
    assert replayed == {"kth-sp2", "sdsc-sp2"}


def test_collect_once_table() -> None:
    res = ctwin("collect", "--once", "-m", "node_load1")
    assert res.returncode == 0, res.stderr
    assert "node_load1" in res.stdout and "1 samples" in res.stdout


def test_run_until_sigterm_flushes_then_export(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(FAST.format(data=tmp_path / "data"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    # until it says it collects (its imports take seconds on a loaded machine; a SIGTERM before its
    # handler is installed kills it), then a few collections
    assert proc.stderr is not None
    started: list[str] = []
    while not any("collecting" in line for line in started):
        line = proc.stderr.readline()
        assert line, "".join(started)  # it exited before collecting
        started.append(line)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=30)
    stderr = "".join(started) + rest
    assert proc.returncode == 0, stderr
    assert "stopped;" in stderr and "0 dropped" in stderr

    store = DuckDBStore(tmp_path / "data" / "ctwin.duckdb", read_only=True)
    for metric in (
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_network_receive_bytes_total",
        "container_cpu_usage_seconds_total",
        "ctwin_collector_last_success_timestamp_seconds",
    ):
        assert store.count(Selection(metrics=(metric,))) > 0, metric
    store.close()

    out = tmp_path / "cpu.parquet"
    res = ctwin(
        "export",
        "samples",
        "--config",
        str(cfg),
        "-o",
        str(out),
        "-m",
        "node_cpu_seconds_total",
        "-l",
        "mode=idle",
        "--start",
        "-1h",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    frame = pl.read_parquet(out)
    assert manifest["rows"] == frame.height > 0
    assert set(frame["mode"].unique()) == {"idle"}
    assert json.loads((tmp_path / "cpu.parquet.manifest.json").read_text())["query"]["labels"] == {"mode": "idle"}
    assert {
        "name": "time",
        "type": "timestamp_ns",
        "source_type": "TIMESTAMPTZ_NS",
        "unit": "timestamp (wall clock UTC)",
    } in (manifest["schema"])

    csv = tmp_path / "all.csv"
    res = ctwin("export", "samples", "--data-dir", str(tmp_path / "data"), "-o", str(csv))
    assert res.returncode == 0, res.stderr
    assert pl.read_csv(csv).height > manifest["rows"]


def test_export_bad_input_is_a_clear_message(tmp_path: Path) -> None:
    res = ctwin("export", "samples", "--data-dir", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.parquet"))
    assert res.returncode == 2
    assert "no store at" in res.stderr
    res = ctwin("export", "samples", "--data-dir", str(tmp_path), "-o", "x.parquet", "--start", "yesterday-ish")
    assert res.returncode == 2
    assert "cannot read the time" in res.stderr


def test_config_check_reports_location(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sites:\n  - name: a\n    collectors:\n      - type: node\n        intervl: 5s\n")
    res = ctwin("config", "check", "--config", str(cfg))
    assert res.returncode == 1
    assert f"{cfg}:5: sites[0].collectors[0].intervl: unknown key" in res.stderr
    res = ctwin("config", "check", "--config", str(cfg), "--json")
    assert json.loads(res.stdout)["problems"][0]["line"] == 5
    ok = ctwin("config", "check", "--config", "deploy/ctwin.example.yaml", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True


def test_config_check_refuses_nan_intervals_and_a_second_auth_block(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        'auth: {open_endpoints: ["/healthz"]}\nstore: {retention: .nan}\n'
        "sites:\n  - name: a\n    collectors:\n      - {type: node, interval: .nan}\n"
        'auth: {open_endpoints: ["/healthz", "/readyz", "/metrics", "/"]}\n'
    )
    dup = ctwin("config", "check", "--config", str(cfg))
    assert dup.returncode == 1
    assert dup.stderr.splitlines() == [f"{cfg}:7: auth: duplicate key (first given at line 1); remove one"]
    cfg.write_text(cfg.read_text().rsplit("auth:", 1)[0])
    bad = ctwin("config", "check", "--config", str(cfg))
    assert bad.returncode == 1
    why = "Value error, a duration must be a finite number of seconds, got nan"
    assert bad.stderr.splitlines() == [
        f"{cfg}:2: store.retention: {why}",
        f"{cfg}:6: sites[0].collectors[0].interval: {why}",
    ]


def test_plugins_lists_each_collector_and_why_not() -> None:
    res = ctwin("plugins", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["node"]["available"] is True and rows["node"]["configured"] is True
    assert "prometheus" in rows
    assert all(r["available"] or r["reason"] for r in rows.values())


def _store_with_trace_jobs(data_dir: Path) -> pl.DataFrame:
    from collectors.swf import read_swf, to_job_history
    from collectors.traces import TRACES_DIR

    jobs = to_job_history(read_swf(TRACES_DIR / "KTH-SP2-1996-2.1-cln.swf.gz"), site="kth-sp2").collect()
    jobs = jobs.head(2000)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(data_dir / "ctwin.duckdb")
    store.append_jobs(jobs)
    store.close()
    return jobs


def test_export_jobs_pseudonymises_users_and_never_writes_the_salt(tmp_path: Path) -> None:
    data = tmp_path / "data"
    original = _store_with_trace_jobs(data)
    salt = "a-secret-salt-0123456789-abcdef"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"privacy:\n  salt: {salt}\nsites: [{{name: kth-sp2, kind: hpc}}]\n")
    out = tmp_path / "jobs.parquet"
    res = ctwin("export", "jobs", "-o", str(out), "-c", str(cfg), "-d", str(data), "--json")
    assert res.returncode == 0, res.stderr
    manifest = json.loads(res.stdout)
    exported = pl.read_parquet(out)
    assert manifest["rows"] == exported.height == original.height
    assert manifest["pseudonymisation"]["columns"] == ["user", "group"]
    # same person, same pseudonym; distinct people stay distinct; no real name survives
    pairs = original.select("job_id", "user").join(exported.select("job_id", pl.col("user").alias("p")), on="job_id")
    assert pairs.group_by("user").agg(pl.col("p").n_unique())["p"].max() == 1
    assert pairs["p"].n_unique() == original["user"].n_unique()
    assert set(exported["user"].drop_nulls().to_list()).isdisjoint(set(original["user"].drop_nulls().to_list()))
    assert all(u.startswith("u_") and len(u) == 18 for u in exported["user"].drop_nulls().to_list())
    for path in (out, out.with_name(out.name + ".manifest.json")):
        assert salt.encode() not in path.read_bytes()
    # another salt gives unlinkable pseudonyms
    cfg.write_text("privacy:\n  salt: another-secret-salt-987654321\nsites: [{name: kth-sp2, kind: hpc}]\n")
    out2 = tmp_path / "jobs2.csv"
    res = ctwin("export", "jobs", "-o", str(out2), "-c", str(cfg), "-d", str(data), "--site", "kth-sp2")
    assert res.returncode == 0, res.stderr
    assert set(pl.read_csv(out2)["user"].drop_nulls().to_list()).isdisjoint(set(exported["user"].to_list()))


def test_export_jobs_default_salt_is_private_and_stable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _store_with_trace_jobs(data)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (first, second):
        res = ctwin("export", "jobs", "-o", str(out), "-d", str(data))
        assert res.returncode == 0, res.stderr
    salt_file = data / "pseudonym.salt"
    assert salt_file.stat().st_mode & 0o777 == 0o600
    assert pl.read_parquet(first)["user"].equals(pl.read_parquet(second)["user"])


def test_export_jobs_rejects_an_unknown_state_with_the_valid_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _store_with_trace_jobs(data)
    res = ctwin("export", "jobs", "-o", str(tmp_path / "x.parquet"), "-d", str(data), "--state", "DONE")
    assert res.returncode == 2
    assert "unknown job state" in res.stderr and "COMPLETED" in res.stderr


def _replayed_store(data_dir: Path, wall_now_s: float) -> tuple[pl.DataFrame, float]:
    """KTH SP2 jobs of site kth-sp2 (a replayed site of the default config, ×60) in a store whose
    replay clock reads, at `wall_now_s`, the last job's submit time, as a replay writes it;
    and one sample at an instant with nanoseconds. Returns the jobs and that trace instant."""
    from telemetry.schema import Batch, Sample

    jobs = _store_with_trace_jobs(data_dir)
    trace_now = float(jobs["submit_s"][-1])  # type: ignore[arg-type]
    store = DuckDBStore(data_dir / "ctwin.duckdb")
    wall_ns = int(wall_now_s * 1e9)
    store.append(
        Batch.from_samples(
            [
                Sample("batch_replay_trace_time_seconds", trace_now, {"site": "kth-sp2"}, wall_ns),
                Sample("node_load1", 0.5, {"site": "local", "host": "h"}, 1_796_000_000_123_456_789),
            ]
        )
    )
    store.close()
    return jobs, trace_now


def test_export_jobs_maps_a_relative_range_to_the_replayed_sites_trace_clock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wall_now = time.time()
    jobs, trace_now = _replayed_store(data, wall_now)
    out = tmp_path / "jobs.parquet"
    res = ctwin("export", "jobs", "-d", str(data), "-o", str(out), "--site", "kth-sp2", "--start", "-1h", "--json")
    assert res.returncode == 0, res.stderr
    manifest, exported = json.loads(res.stdout), pl.read_parquet(out)
    trace = manifest["time_bounds"]["trace"]["kth-sp2"]
    # one wall hour at ×60 is 60 trace hours before the replay's instant (the CLI ran a little later)
    assert trace["start_s"] == pytest.approx(trace_now - 60 * 3600, abs=60 * 30)
    expected = jobs.filter(pl.col("submit_s") >= trace["start_s"])
    assert 0 < manifest["rows"] == exported.height == expected.height < jobs.height
    wall = manifest["time_bounds"]["wall_utc"]
    assert wall["start_s"] == pytest.approx(wall_now - 3600, abs=30) and wall["start"] < wall["end"]
    assert wall["end_s"] == pytest.approx(wall_now, abs=1)  # the newest submit time, as wall time: now


def test_export_refuses_what_the_api_refuses_with_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _replayed_store(data, time.time())
    out = str(tmp_path / "x.parquet")
    site = ctwin("export", "jobs", "-d", str(data), "-o", out, "--site", "nowhere")
    assert site.returncode == 2 and "no site named 'nowhere'" in site.stderr and "--site" in site.stderr
    metric = ctwin("export", "samples", "-d", str(data), "-o", out, "-m", "node_lod1")
    assert metric.returncode == 2 and "no metric named 'node_lod1'" in metric.stderr
    assert "node_load1" in metric.stderr  # the closest name, as the API's 404 gives it
    state = ctwin("export", "jobs", "-d", str(data), "-o", out, "--state", "DONE")
    assert state.returncode == 2 and "unknown job state" in state.stderr
    assert not Path(out).exists()
    # every state the history holds (the API's Literal is the same JOB_STATES)
    states = [a for s in ("boot_fail", "DEADLINE", "SUSPENDED", "UNKNOWN", "COMPLETED") for a in ("--state", s)]
    ok = ctwin("export", "jobs", "-d", str(data), "-o", out, *states, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["query"]["states"] == ["BOOT_FAIL", "DEADLINE", "SUSPENDED", "UNKNOWN", "COMPLETED"]


def test_export_output_names_its_format_and_an_existing_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _replayed_store(data, time.time())
    txt = tmp_path / "jobs.txt"
    res = ctwin("export", "jobs", "-d", str(data), "-o", str(txt))
    assert res.returncode == 2 and ".parquet or .csv" in res.stderr and not txt.exists()
    res = ctwin("export", "jobs", "-d", str(data), "-o", str(txt), "--format", "csv")  # asked for: honoured
    assert res.returncode == 0, res.stderr
    assert pl.read_csv(txt).height > 0
    res = ctwin("export", "jobs", "-d", str(data), "-o", str(tmp_path / "j.csv"), "--format", "parquet")
    assert res.returncode == 2 and "names a csv file" in res.stderr
    missing = tmp_path / "no" / "such" / "x.parquet"
    res = ctwin("export", "samples", "-d", str(data), "-o", str(missing))
    assert res.returncode == 2 and "no directory" in res.stderr and "mkdir -p" in res.stderr
    assert not (tmp_path / "no").exists()


def test_export_while_the_service_holds_the_store_names_its_route(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _replayed_store(data, time.time())
    held = DuckDBStore(data / "ctwin.duckdb")  # as a running `ctwin serve` holds it
    try:
        for kind in ("samples", "jobs", "advice"):
            res = ctwin("export", kind, "-d", str(data), "-o", str(tmp_path / f"{kind}.parquet"))
            assert res.returncode == 2, res.stderr
            assert f"GET http://127.0.0.1:8080/v1/export/{kind} " in res.stderr, res.stderr
            assert "--scope export" in res.stderr
    finally:
        held.close()


def test_exported_sample_times_are_utc_whatever_the_local_zone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _replayed_store(data, time.time())
    env = {**os.environ, "TZ": "Asia/Kolkata"}  # +05:30: a naive or session-zoned time would show it
    parquet, csv = tmp_path / "load.parquet", tmp_path / "load.csv"
    for out in (parquet, csv):
        args = ["export", "samples", "-d", str(data), "-o", str(out), "-m", "node_load1"]
        res = subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert res.returncode == 0, res.stderr
    frame = pl.read_parquet(parquet)
    assert frame.schema["time"] == pl.Datetime("ns", "UTC")
    assert frame["time"].dt.epoch("ns").to_list() == [1_796_000_000_123_456_789]
    assert csv.read_text().splitlines()[1].startswith("2026-11-30T00:53:20.123456789Z,node_load1,0.5")
