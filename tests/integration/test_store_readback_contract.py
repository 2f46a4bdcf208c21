"""The read-back part of the store contract, run against every backend that can read back: the
embedded DuckDB store and VictoriaMetrics written through the InfluxDB mirror (InfluxTarget)
and read through its export and series APIs (telemetry.stores.victoria).

The same assertions as tests/telemetry/test_store_contract.py for appends, label and time-range
queries, latest values and series. The rest of that suite (downsampling, grouping, retention,
export files, job history, advice) runs on DuckDB only: with `store.backend: influx` those
stay on the embedded store (README, "InfluxDB"). Skips without `victoria-metrics` unless
CTWIN_REQUIRE_SERVERS=1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import polars as pl
import pytest

from telemetry.influx import InfluxTarget
from telemetry.schema import Batch, Sample
from telemetry.stores.base import QueryError, Selection
from telemetry.stores.duckdb_store import DuckDBStore
from telemetry.stores.victoria import VictoriaMetricsReads, promql_selector
from tests.integration.victoria import VictoriaMetrics

S = 1_000_000_000
BASE = (time.time_ns() // (3600 * S)) * 3600 * S - 2 * 3600 * S  # within retention, whole seconds


class ReadBack(Protocol):
    def append(self, batch: Batch) -> int: ...
    def query(self, selection: Selection) -> pl.DataFrame: ...
    def latest(self, selection: Selection) -> pl.DataFrame: ...
    def series(self, selection: Selection) -> pl.DataFrame: ...
    def count(self, selection: Selection | None = None) -> int: ...


class ThroughInflux:
    """Writes through the InfluxDB target, reads through VictoriaMetrics' API."""

    def __init__(self, vm: VictoriaMetrics) -> None:
        self.target = InfluxTarget(vm.url, org="ctwin", bucket="telemetry")
        self.reads = VictoriaMetricsReads(vm.url)

    def append(self, batch: Batch) -> int:
        before = self.target.written_samples
        self.target.send(batch)
        self.reads.flush()
        return self.target.written_samples - before

    def query(self, selection: Selection) -> pl.DataFrame:
        return self.reads.query(selection)

    def latest(self, selection: Selection) -> pl.DataFrame:
        return self.reads.latest(selection)

    def series(self, selection: Selection) -> pl.DataFrame:
        return self.reads.series(selection)

    def count(self, selection: Selection | None = None) -> int:
        return self.reads.count(selection)

    def close(self) -> None:
        self.target.close()
        self.reads.close()


@pytest.fixture(params=["duckdb", "victoriametrics"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadBack]:
    if request.param == "duckdb":
        duck = DuckDBStore(tmp_path / "store.duckdb", memory_limit="256MB")
        yield duck
        duck.close()
        return
    vm = VictoriaMetrics(tmp_path / "vm", tmp_path / "vm.log").start()
    backend = ThroughInflux(vm)
    try:
        yield backend
    finally:
        backend.close()
        vm.stop()


def cpu_batch(t: int, hosts: int = 3, value: float = 0.0) -> Batch:
    return Batch.from_samples(
        Sample("node_cpu_seconds_total", value + h + t, {"host": f"h{h}", "cpu": "0", "mode": "idle"}, BASE + t * S)
        for h in range(hosts)
    )


def test_append_returns_count_and_is_queryable(store: ReadBack) -> None:
    assert store.append(cpu_batch(10)) == 3
    assert store.append(Batch.empty()) == 0
    assert store.count() == 3
    got = store.query(Selection(metrics=("node_cpu_seconds_total",)))
    assert got.columns == ["metric", "labels", "ts_ns", "value"]
    assert got["value"].to_list() == [10.0, 11.0, 12.0]
    assert json.loads(got["labels"][0]) == {"cpu": "0", "host": "h0", "mode": "idle"}


def test_query_filters_by_labels_and_half_open_time_range(store: ReadBack) -> None:
    for t in range(10, 20):
        store.append(cpu_batch(t))
    sel = Selection(
        metrics=("node_cpu_seconds_total",), labels={"host": "h1"}, start_ns=BASE + 12 * S, end_ns=BASE + 15 * S
    )
    got = store.query(sel)
    assert got["ts_ns"].to_list() == [BASE + 12 * S, BASE + 13 * S, BASE + 14 * S]
    assert got["value"].to_list() == [13.0, 14.0, 15.0]
    assert store.count(sel) == 3
    assert store.query(Selection(metrics=("nope",))).height == 0
    assert store.query(Selection(labels={"host": "h9"})).height == 0


def test_latest_is_newest_sample_of_each_series(store: ReadBack) -> None:
    store.append(cpu_batch(20, value=100))
    store.append(cpu_batch(10))  # older data arriving late must not win
    got = store.latest(Selection(metrics=("node_cpu_seconds_total",)))
    assert got.height == 3
    assert got["ts_ns"].to_list() == [BASE + 20 * S] * 3
    assert got["value"].to_list() == [120.0, 121.0, 122.0]
    assert store.latest(Selection(labels={"host": "h2"}))["value"].to_list() == [122.0]


def test_series_lists_distinct_series(store: ReadBack) -> None:
    store.append(cpu_batch(1))
    store.append(cpu_batch(2))
    store.append(Batch.from_samples([Sample("node_load1", 0.5, {"host": "h0"}, BASE + S)]))
    assert store.series(Selection()).height == 4
    assert store.series(Selection(labels={"host": "h0"}))["metric"].to_list() == [
        "node_cpu_seconds_total",
        "node_load1",
    ]


def test_victoriametrics_reads_refuse_what_stays_on_the_embedded_store(tmp_path: Path) -> None:
    reads = VictoriaMetricsReads("http://127.0.0.1:9")
    with pytest.raises(QueryError, match="embedded store"):
        reads.query(Selection(), step_ns=S)
    reads.close()
    assert promql_selector(Selection(metrics=("a.b", "c"), labels={"k": 'x"y\\z'})) == (
        '{__name__=~"a\\\\.b|c",k="x\\"y\\\\z"}'
    )
