"""The running-collector wrapper and the bounded pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from collectors.base import CollectorError
from telemetry.catalog import node as nm
from telemetry.pipeline import Pipeline, RunningCollector, StoreSink
from telemetry.schema import Batch
from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore


class Steady:
    def __init__(self, value: float = 1.0) -> None:
        self.value = value
        self.calls = 0

    def gather(self, emit: Callable[..., None]) -> None:
        self.calls += 1
        emit(nm.LOAD1, self.value)
        emit(nm.CPU_SECONDS, 2.0, {"cpu": "0", "mode": "user"})


class Failing:
    def gather(self, emit: Callable[..., None]) -> None:
        raise CollectorError("/proc/stat: no such file")


class Hanging:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def gather(self, emit: Callable[..., None]) -> None:
        self.calls += 1
        self.release.wait(10)


class BadLabels:
    def gather(self, emit: Callable[..., None]) -> None:
        emit(nm.LOAD1, 1.0, {"job_id": "123"})


class ListSink:
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[Batch] = []
        self.delay = delay

    def write(self, batch: Batch) -> None:
        time.sleep(self.delay)
        self.batches.append(batch)

    def samples(self) -> int:
        return sum(len(b) for b in self.batches)


def rc(name: str, collector: object, interval: float = 0.05, timeout: float = 0.2) -> RunningCollector:
    return RunningCollector(
        name,
        collector,
        interval_s=interval,
        timeout_s=timeout,  # type: ignore[arg-type]
        labels={"site": "s1", "host": "h1"},
    )


def test_collect_adds_site_host_labels_and_self_metrics() -> None:
    batch = rc("steady", Steady()).collect()
    samples = {s.metric: s for s in batch.samples()}
    assert samples["node_load1"].labels == {"site": "s1", "host": "h1"}
    assert samples["node_cpu_seconds_total"].labels == {"site": "s1", "host": "h1", "cpu": "0", "mode": "user"}
    assert samples["ctwin_collector_errors_total"].value == 0
    assert samples["ctwin_collector_samples_total"].value == 2
    assert samples["ctwin_collector_last_success_timestamp_seconds"].labels["collector"] == "steady"


def test_failure_is_recorded_not_raised() -> None:
    r = rc("bad", Failing())
    batch = r.collect()
    assert r.stats.errors == 1
    assert r.stats.last_error == "CollectorError: /proc/stat: no such file"
    assert r.stats.last_success_s is None
    assert {s.metric for s in batch.samples()} == {
        "ctwin_collector_duration_seconds",
        "ctwin_collector_errors_total",
        "ctwin_collector_samples_total",
    }


def test_labels_outside_the_catalog_are_an_error_of_that_collector() -> None:
    r = rc("labels", BadLabels())
    r.collect()
    assert r.stats.errors == 1
    assert "not allowed by the catalog" in (r.stats.last_error or "")


def test_hanging_collector_times_out_and_is_not_restarted_while_busy() -> None:
    h = Hanging()
    r = rc("hang", h, timeout=0.1)
    started = time.perf_counter()
    r.collect()
    assert time.perf_counter() - started < 1.0
    assert r.stats.last_error == "timed out after 0.1s"
    r.collect()  # still hung: skipped, no second thread
    assert h.calls == 1
    assert r.stats.skipped == 1
    h.release.set()
    time.sleep(0.05)
    r.collect()
    assert h.calls == 2
    r.close()


def test_failing_and_hanging_collectors_never_stop_the_others() -> None:
    steady, hanging = Steady(), Hanging()
    sink = ListSink()
    p = Pipeline([rc("steady", steady), rc("bad", Failing()), rc("hang", hanging, timeout=0.1)], [sink])
    p.start()
    time.sleep(1.0)
    hanging.release.set()
    p.stop()
    assert steady.calls >= 10
    stats = p.health()["collectors"]
    assert stats["bad"]["errors"] >= 10  # type: ignore[index]
    assert stats["hang"]["errors"] >= 2  # type: ignore[index]
    assert any(s.metric == "node_load1" for b in sink.batches for s in b.samples())


def test_bounded_buffer_drops_and_counts_under_overload() -> None:
    sink = ListSink(delay=10)  # a stuck sink
    p = Pipeline([], [sink], buffer_samples=100)
    accepted = sum(p.submit(rc("s", Steady()).collect()) for _ in range(50))
    assert p.buffered_samples <= 100
    assert accepted < 50
    assert p.dropped_samples > 0
    assert p.dropped_samples + p.buffered_samples == 50 * 6  # 2 samples + 4 self-metrics per cycle


def test_stop_flushes_everything_buffered(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    sink = StoreSink(store)
    p = Pipeline([rc("steady", Steady(), interval=0.01)], [sink])
    p.start()
    time.sleep(0.5)
    p.stop()
    written = p.health()["written_samples"]
    assert p.buffered_samples == 0
    assert store.count() == written
    assert store.count(Selection(metrics=("node_load1",))) >= 10
    store.close()


def test_a_failing_sink_is_counted_and_others_still_get_data() -> None:
    class Broken:
        def write(self, batch: Batch) -> None:
            raise OSError("disk full")

    good = ListSink()
    p = Pipeline([], [Broken(), good])
    p.start()
    p.submit(rc("s", Steady()).collect())
    p.stop()
    assert p.sink_errors == 1
    assert "disk full" in (p.last_sink_error or "")
    assert good.samples() == 6


def test_partial_failure_keeps_what_was_emitted_and_records_the_error() -> None:
    class Partial(CollectorError):
        partial = True

    class HalfWorking:
        def gather(self, emit: Callable[..., None]) -> None:
            emit(nm.LOAD1, 3.0)
            raise Partial("sinfo --json: exit 1: slurm_load_partitions error")

    r = rc("half", HalfWorking())
    batch = r.collect()
    assert any(s.metric == "node_load1" and s.value == 3.0 for s in batch.samples())
    assert r.stats.errors == 1
    assert r.stats.last_success_s is None
    assert "slurm_load_partitions" in (r.stats.last_error or "")


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        self.t += 600.0  # every read moves the replay on by 10 wall minutes
        return self.t


def test_job_rows_of_a_batch_site_reach_the_store_under_the_configured_site(tmp_path: Path) -> None:
    """A replayed site's queue and finished jobs land in the job history, named by the site config."""
    import polars as pl

    from collectors.replay import ReplayCollector, ReplayConfig

    replay = ReplayCollector(ReplayConfig(trace="KTH-SP2-1996-2.1-cln.swf.gz", speed=60.0), clock=_Clock())
    store = DuckDBStore(tmp_path / "s.duckdb")
    rc = RunningCollector("kth/replay", replay, interval_s=0.02, timeout_s=30.0, labels={"site": "kth", "host": "h"})
    pipeline = Pipeline([rc], [StoreSink(store)])
    pipeline.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pipeline.written_job_rows < 500:
        time.sleep(0.05)
    pipeline.stop()
    jobs = store.jobs()
    store.close()
    assert jobs.height > 0
    assert jobs["site"].unique().to_list() == ["kth"]
    states = set(jobs["state"].to_list())
    assert "COMPLETED" in states or "FAILED" in states or "CANCELLED" in states
    finished = jobs.filter(pl.col("end_s").is_not_null())
    assert (finished["end_s"] >= finished["start_s"]).all()
    assert pipeline.health()["written_job_rows"] == pipeline.written_job_rows > 0
