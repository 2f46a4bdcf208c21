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
    assert all(s["labels"]["site"] == "local" for s in data["samples"])


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
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
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
    assert {"name": "time", "type": "TIMESTAMP_NS"} in manifest["schema"]

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


def test_plugins_lists_each_collector_and_why_not() -> None:
    res = ctwin("plugins", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["node"]["available"] is True and rows["node"]["configured"] is True
    assert "prometheus" in rows
    assert all(r["available"] or r["reason"] for r in rows.values())
