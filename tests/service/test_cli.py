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
        "node_memory_total_bytes",
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
        "node_memory_total_bytes",
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
        "source_type": "TIMESTAMP_NS",
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
