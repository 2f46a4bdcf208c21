"""The read-back part of the store contract, run against every backend that can read back: the
embedded DuckDB store and VictoriaMetrics written through the InfluxDB mirror (InfluxTarget)
and read through its export API (telemetry.stores.victoria).

The contract suite's own tests for appends, label and time-range queries, latest values and
series (tests/telemetry/test_store_contract.py) run here on both backends side by side. The rest
of that suite (downsampling, grouping, retention, export files, job history, advice) runs on
DuckDB only: with `store.backend: influx` those stay on the embedded store (README, "InfluxDB").
Skips without `victoria-metrics` unless CTWIN_REQUIRE_SERVERS=1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import polars as pl
import pytest

from telemetry.influx import InfluxTarget
from telemetry.schema import Batch
from telemetry.stores.base import QueryError, Selection
from telemetry.stores.duckdb_store import DuckDBStore
from telemetry.stores.victoria import VictoriaMetricsReads, promql_selector
from tests.integration.victoria import VictoriaMetrics
from tests.telemetry import test_store_contract as contract

S = 1_000_000_000


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


READ_BACK = [
    contract.test_append_returns_count_and_is_queryable,
    contract.test_query_filters_by_labels_and_half_open_time_range,
    contract.test_latest_is_newest_sample_of_each_series,
    contract.test_series_lists_distinct_series,
]


@pytest.mark.parametrize("check", READ_BACK, ids=[check.__name__.removeprefix("test_") for check in READ_BACK])
def test_store_contract_reads_back(store: ReadBack, check: Callable[[ReadBack], None]) -> None:
    check(store)


def test_victoriametrics_reads_refuse_what_stays_on_the_embedded_store(tmp_path: Path) -> None:
    reads = VictoriaMetricsReads("http://127.0.0.1:9")
    with pytest.raises(QueryError, match="embedded store"):
        reads.query(Selection(), step_ns=S)
    reads.close()
    assert promql_selector(Selection(metrics=("a.b", "c"), labels={"k": 'x"y\\z'})) == (
        '{__name__=~"a\\\\.b|c",k="x\\"y\\\\z"}'
    )
