"""Restarting the service on the same data dir (issue 13, item 1): a replayed site goes on from
where it stopped instead of playing its trace again, and no job row ever moves backwards.

The real service: `create_app` with its lifespan (the one `ctwin serve` runs), a real replay of the
KTH-SP2 log at six trace hours per second and the real DuckDB store, started three times on one
data dir, a day of trace before the end of the log: a later run goes on in its second pass. While each run serves,
the test reads the job history from the running store, so a row that goes back and forward again
within a run is seen too.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from fastapi.testclient import TestClient

from collectors.replay import resolve_trace
from collectors.swf import read_swf, to_job_history
from service.app import create_app
from service.config import parse_config
from telemetry.catalog.batch import REPLAY_TIME
from telemetry.jobs import lifecycle_stage
from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore

TRACE = "KTH-SP2-1996-2.1-cln.swf.gz"
SPEED = 6 * 3600.0
GATHERS = (15, 10, 10)  # per run; later runs shorter than the first: a trace played again ends behind it
INSTANTS = Selection(metrics=(REPLAY_TIME.name,), labels={"site": "kth"})
CONFIG = """
data_dir: {data}
sites:
  - name: kth
    kind: hpc
    collectors:
      - {{type: replay, trace: {trace}, interval: 0.2s, speed: {speed}, start_offset: {start}}}
"""


def _log_period() -> int:
    jobs = to_job_history(read_swf(resolve_trace(TRACE)), "kth").drop_nulls(["submit_s", "end_s"]).collect()
    return int(jobs["end_s"].max()) - int(jobs["submit_s"].min())  # type: ignore[arg-type]


def _serve_once(loaded: object, data: Path, gathers: int, seen: list[pl.DataFrame]) -> None:
    """Serve until the replay has stored `gathers` more instants (counted, not timed: the trace
    clock starts at the first gather, after the log is read, however long that takes)."""
    with TestClient(create_app(loaded, data, ui=False)) as client:  # type: ignore[arg-type]
        store = client.app.state.service.store  # type: ignore[attr-defined]
        until, deadline = store.count(INSTANTS) + gathers, time.monotonic() + 60
        while store.count(INSTANTS) < until and time.monotonic() < deadline:
            seen.append(store.jobs(site="kth").with_columns(pl.lit(len(seen)).alias("seen")))
            time.sleep(0.15)
    store = DuckDBStore(data / "ctwin.duckdb", read_only=True)  # after the final flush
    try:
        seen.append(store.jobs(site="kth").with_columns(pl.lit(len(seen)).alias("seen")))
    finally:
        store.close()


def test_restarting_twice_neither_replays_trace_hours_nor_moves_a_job_backwards(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start = _log_period() - 24 * 3600  # a day before the log starts over
    loaded = parse_config(CONFIG.format(data=data, trace=TRACE, speed=SPEED, start=start))
    seen: list[pl.DataFrame] = []
    for gathers in GATHERS:
        _serve_once(loaded, data, gathers, seen)

    store = DuckDBStore(data / "ctwin.duckdb", read_only=True)
    try:
        instants = store.query(INSTANTS)
        final = store.jobs(site="kth")
    finally:
        store.close()
    assert instants["labels"].n_unique() == 1 and instants.height >= sum(GATHERS)
    shown = instants.sort("ts_ns")["value"]
    assert shown.is_unique().all(), "a trace instant was stored twice"
    assert shown.diff().drop_nulls().min() > 0, "the replay went back in trace time"  # type: ignore[operator]
    assert shown.max() - shown.min() > 24 * 3600  # type: ignore[operator]  # past the end of the log

    history = pl.concat(seen).with_columns(lifecycle_stage().alias("stage")).sort("job_id", "seen")
    went_back = history.filter(
        (pl.col("stage") < pl.col("stage").shift(1).over("job_id"))
        | (pl.col("start_s") != pl.col("start_s").shift(1).over("job_id"))
        | (pl.col("end_s") != pl.col("end_s").shift(1).over("job_id"))
    )
    assert went_back.is_empty(), went_back.select("job_id", "seen", "state", "start_s", "end_s")
    # not vacuous: jobs of both passes, and jobs seen waiting or running that later ended
    assert final["job_id"].str.ends_with("~1").any() and (~final["job_id"].str.contains("~")).any()
    stages = history.group_by("job_id").agg(pl.col("stage").min().alias("lo"), pl.col("stage").max().alias("hi"))
    assert stages.filter((pl.col("lo") < 2) & (pl.col("hi") == 2)).height > 10


def test_ctwin_run_resumes_the_replay_too(tmp_path: Path) -> None:
    """`ctwin run` (the agent without API, same composition) on one data dir, twice."""
    data, cfg = tmp_path / "data", tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(data=data, trace=TRACE, speed=SPEED, start="30d"))
    for _ in range(2):
        res = subprocess.run(
            [sys.executable, "-m", "service.cli", "run", "--for", "1.5", "--config", str(cfg)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
    store = DuckDBStore(data / "ctwin.duckdb", read_only=True)
    try:
        shown = store.query(Selection(metrics=(REPLAY_TIME.name,))).sort("ts_ns")["value"]
    finally:
        store.close()
    assert shown.len() > 5 and shown.diff().drop_nulls().min() > 0  # type: ignore[operator]
    assert "kth/replay: resuming the replay after trace instant" in res.stderr
