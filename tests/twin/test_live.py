"""The live twin over a real DuckDB store: snapshot views and downsampled history."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from telemetry.schema import Batch, Sample
from telemetry.stores.duckdb_store import DuckDBStore
from twin.live import build_twin
from twin.topology import CollectorSpec, SiteSpec, Topology

S = 1_000_000_000


def test_node_history_is_downsampled_per_host_and_views_come_from_the_snapshot(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    topology = Topology((SiteSpec("edge", "edge", collectors=(CollectorSpec("edge/node", "node", 60.0),)),))
    twin = build_twin(topology, store, clock=lambda: 3600.0)
    samples = [
        Sample(metric, value, {"site": "edge", "host": host}, t * S)
        for t in range(0, 3600, 60)
        for host in ("h1", "h2")
        for metric, value in (("node_cpu_busy_ratio", t / 3600), ("node_memory_used_ratio", 0.25))
    ]
    batch = Batch.from_samples(samples)
    store.append(batch)
    twin.state.write(batch)
    history = twin.node_history("edge", None, 0, 3600, max_points=6)  # 10-minute buckets
    assert history.columns == ["host", "ts_s", "cpu_util", "mem_used_frac"]
    assert history.filter(history["host"] == "h1").height == 6
    first = history.row(0, named=True)
    assert first["ts_s"] == 0 and first["cpu_util"] == pytest.approx(sum(range(0, 600, 60)) / 10 / 3600)
    assert twin.node_history("edge", ["h2"], 0, 3600)["host"].unique().to_list() == ["h2"]
    nodes = twin.nodes("edge")
    assert [n.host for n in nodes] == ["h1", "h2"]
    assert nodes[0].cpu_util == pytest.approx(3540 / 3600) and nodes[0].data_age_s == pytest.approx(60)
    store.close()


def test_node_history_band_aggregates_across_hosts_in_the_store(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    topology = Topology((SiteSpec("edge", "edge", collectors=(CollectorSpec("edge/node", "node", 60.0),)),))
    twin = build_twin(topology, store, clock=lambda: 600.0)
    samples = [
        Sample(metric, value + h / 10, {"site": "edge", "host": f"h{h}"}, t * S)
        for t in range(0, 600, 60)
        for h in range(3)
        for metric, value in (("node_cpu_busy_ratio", 0.5), ("node_memory_used_ratio", 0.2))
    ]
    store.append(Batch.from_samples(samples))
    band = twin.node_history_band("edge", 0, 600, max_points=10)
    assert band.height == 10
    row = band.row(0, named=True)
    assert row["cpu_util"] == pytest.approx(0.6) and row["cpu_util_min"] == 0.5 and row["cpu_util_max"] == 0.7
    assert row["mem_used_frac_min"] == pytest.approx(0.2) and row["mem_used_frac_max"] == pytest.approx(0.4)
    store.close()


def test_forecasts_are_shared_until_the_site_reports_a_new_queue() -> None:
    import polars as pl

    from telemetry.jobs import conform_jobs

    topology = Topology((SiteSpec("hpc", "hpc", collectors=(CollectorSpec("hpc/slurm", "slurm", 30.0),)),))
    twin = build_twin(topology, None, clock=lambda: 1_000.0)
    twin.state.write(Batch.from_samples([Sample("batch_cpus", 8, {"site": "hpc", "state": "idle"}, 1)]))

    def queue(observed: int) -> pl.DataFrame:
        row = {"site": "hpc", "job_id": "1", "state": "PENDING", "submit_s": 900, "req_walltime_s": 60,
               "req_cores": 2, "observed_s": observed}  # fmt: skip
        return conform_jobs(pl.DataFrame([row])).collect()

    twin.state.write_jobs(queue(950))
    first = twin.forecast("hpc", "requested")
    assert twin.forecast("hpc", "requested") is first  # nothing new: the same answer, not a new simulation
    assert twin.forecast("hpc", "ave2") is not first
    twin.state.write_jobs(queue(960))
    assert twin.forecast("hpc", "requested").now_s == 960


def test_with_background_refresh_a_new_queue_is_folded_in_off_the_request_path() -> None:
    """The service's twin: the first caller after a queue change gets the previous base at once
    (its ages say how old) while a thread builds the new one, which later callers then get."""
    import time

    import polars as pl

    from telemetry.jobs import conform_jobs

    topology = Topology((SiteSpec("hpc", "hpc", collectors=(CollectorSpec("hpc/slurm", "slurm", 30.0),)),))
    twin = build_twin(topology, None, clock=lambda: 1_000.0, background_refresh=True)
    twin.state.write(Batch.from_samples([Sample("batch_cpus", 8, {"site": "hpc", "state": "idle"}, 1)]))

    def queue(observed: int, jobs: int) -> pl.DataFrame:
        rows = [{"site": "hpc", "job_id": str(i), "state": "PENDING", "submit_s": 900, "req_walltime_s": 60,
                 "req_cores": 2, "observed_s": observed} for i in range(jobs)]  # fmt: skip
        return conform_jobs(pl.DataFrame(rows)).collect()

    twin.state.write_jobs(queue(950, 1))
    first = twin.queues.base("hpc")  # nothing to serve yet: built inline
    assert first.now_s == 950
    twin.state.write_jobs(queue(960, 3))
    assert twin.queues.base("hpc") is first  # answered from the previous base, the new one on its way
    deadline = time.monotonic() + 10
    while (fresh := twin.queues.base("hpc")) is first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fresh.now_s == 960 and fresh.forecast.jobs.height == 3
    assert twin.queues.base("hpc") is fresh
    twin.state.write_jobs(queue(970, 2))
    assert twin.queues.base("hpc") is fresh  # a rebuild starts...
    twin.queues.close()  # ...and shutting down waits for it (the store it reads closes next)
    assert twin.queues.base("hpc").now_s == 970
    twin.state.write_jobs(queue(980, 1))
    assert twin.queues.base("hpc").now_s == 970  # closed: no more rebuilds in the background


def test_host_series_gives_one_hosts_gauges_and_counter_rates_downsampled_in_the_store(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    topology = Topology((SiteSpec("edge", "edge", collectors=(CollectorSpec("edge/node", "node", 60.0),)),))
    twin = build_twin(topology, store, clock=lambda: 3600.0)
    samples = []
    for t in range(0, 3600, 60):
        for host in ("h1", "h2"):
            mode_labels = {"site": "edge", "host": host, "cpu": "0"}
            # user: 0.25 s/s; idle: 0.75 s/s until a counter reset at 1800 s (a restart)
            samples.append(Sample("node_cpu_seconds_total", 0.25 * t, {**mode_labels, "mode": "user"}, t * S))
            idle = 0.75 * (t if t < 1800 else t - 1800)
            samples.append(Sample("node_cpu_seconds_total", idle, {**mode_labels, "mode": "idle"}, t * S))
            samples.append(Sample("node_memory_MemTotal_bytes", 2.0**34, {"site": "edge", "host": host}, t * S))
    store.append(Batch.from_samples(samples))
    metrics = ("node_cpu_seconds_total", "node_memory_MemTotal_bytes")
    frame = twin.host_series("edge", "h1", metrics, 0, 3600, max_points=6)  # 10-minute buckets
    assert frame.columns == ["metric", "labels", "ts_s", "value"]
    assert set(frame["labels"].str.json_path_match("$.host").to_list()) == {"h1"}
    mem = frame.filter(pl.col("metric") == "node_memory_MemTotal_bytes")
    assert mem.height == 6 and mem["value"].to_list() == [2.0**34] * 6
    cpu = frame.filter(pl.col("metric") == "node_cpu_seconds_total")
    mode = cpu["labels"].str.json_path_match("$.mode")
    user = cpu.filter(mode == "user")
    assert user["ts_s"].to_list() == [600, 1200, 1800, 2400, 3000]  # a rate needs the bucket before
    assert user["value"].to_list() == pytest.approx([0.25] * 5)
    idle = cpu.filter(mode == "idle")
    assert 1800 not in idle["ts_s"].to_list() and idle["value"].to_list() == pytest.approx([0.75] * 4)
    assert twin.host_series("edge", "nobody", metrics, 0, 3600).is_empty()
    with pytest.raises(KeyError):
        twin.host_series("nowhere", "h1", metrics, 0, 3600)
    store.close()
