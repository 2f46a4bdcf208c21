"""The store contract. Every backend runs this same suite: add it to BACKENDS."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from telemetry.jobs import JOB_SCHEMA
from telemetry.schema import Batch, Sample
from telemetry.stores.base import QueryError, Selection, Store
from telemetry.stores.duckdb_store import DuckDBStore

S = 1_000_000_000


def _duckdb(tmp: Path) -> Store:
    return DuckDBStore(tmp / "store.duckdb", memory_limit="256MB")


BACKENDS: dict[str, Callable[[Path], Store]] = {"duckdb": _duckdb}


@pytest.fixture(params=sorted(BACKENDS))
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return lambda: BACKENDS[request.param](tmp_path)


@pytest.fixture
def store(factory: Callable[[], Store]) -> Iterator[Store]:
    s = factory()
    yield s
    s.close()


def cpu_batch(t: int, hosts: int = 3, value: float = 0.0) -> Batch:
    return Batch.from_samples(
        Sample("node_cpu_seconds_total", value + h + t, {"host": f"h{h}", "cpu": "0", "mode": "idle"}, t * S)
        for h in range(hosts)
    )


def test_append_returns_count_and_is_queryable(store: Store) -> None:
    assert store.append(cpu_batch(10)) == 3
    assert store.append(Batch.empty()) == 0
    assert store.count() == 3
    got = store.query(Selection(metrics=("node_cpu_seconds_total",)))
    assert got.columns == ["metric", "labels", "ts_ns", "value"]
    assert got["value"].to_list() == [10.0, 11.0, 12.0]
    assert json.loads(got["labels"][0]) == {"cpu": "0", "host": "h0", "mode": "idle"}


def test_query_filters_by_labels_and_half_open_time_range(store: Store) -> None:
    for t in range(10, 20):
        store.append(cpu_batch(t))
    sel = Selection(metrics=("node_cpu_seconds_total",), labels={"host": "h1"}, start_ns=12 * S, end_ns=15 * S)
    got = store.query(sel)
    assert got["ts_ns"].to_list() == [12 * S, 13 * S, 14 * S]
    assert got["value"].to_list() == [13.0, 14.0, 15.0]
    assert store.count(sel) == 3
    assert store.query(Selection(metrics=("nope",))).height == 0
    assert store.query(Selection(labels={"host": "h9"})).height == 0


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        ("avg", [11.5, 13.5]),
        ("max", [12.0, 14.0]),
        ("min", [11.0, 13.0]),
        ("last", [12.0, 14.0]),
        ("sum", [23.0, 27.0]),
    ],
)
def test_step_downsampling(store: Store, agg: str, expected: list[float]) -> None:
    for t in range(10, 14):  # h1 values 11, 12, 13, 14 at t = 10..13
        store.append(cpu_batch(t))
    got = store.query(Selection(labels={"host": "h1"}), step_ns=2 * S, agg=agg)  # type: ignore[arg-type]
    assert got["ts_ns"].to_list() == [10 * S, 12 * S]
    assert got["value"].to_list() == expected


def test_latest_is_newest_sample_of_each_series(store: Store) -> None:
    store.append(cpu_batch(20, value=100))
    store.append(cpu_batch(10))  # older data arriving late must not win
    got = store.latest(Selection(metrics=("node_cpu_seconds_total",)))
    assert got.height == 3
    assert got["ts_ns"].to_list() == [20 * S] * 3
    assert got["value"].to_list() == [120.0, 121.0, 122.0]
    assert store.latest(Selection(labels={"host": "h2"}))["value"].to_list() == [122.0]


def test_series_lists_distinct_series(store: Store) -> None:
    store.append(cpu_batch(1))
    store.append(cpu_batch(2))
    store.append(Batch.from_samples([Sample("node_load1", 0.5, {"host": "h0"}, S)]))
    assert store.series(Selection()).height == 4
    assert store.series(Selection(labels={"host": "h0"}))["metric"].to_list() == [
        "node_cpu_seconds_total",
        "node_load1",
    ]


def test_retention_deletes_only_older_samples(store: Store) -> None:
    for t in range(10, 20):
        store.append(cpu_batch(t))
    assert store.apply_retention(15 * S) == 15
    assert store.count() == 15
    assert store.query(Selection())["ts_ns"].min() == 15 * S


def test_data_survives_reopen(factory: Callable[[], Store]) -> None:
    s = factory()
    s.append(cpu_batch(1))
    s.close()
    s.close()  # idempotent
    s = factory()
    s.append(cpu_batch(2))  # series ids continue, no duplicate series
    assert s.count() == 6
    assert s.series(Selection()).height == 3
    s.close()


def test_bad_queries_are_refused_with_a_reason(store: Store) -> None:
    with pytest.raises(QueryError, match="label name"):
        Selection(labels={"bad-key": "x"})
    with pytest.raises(QueryError, match="empty time range"):
        Selection(start_ns=10, end_ns=10)
    with pytest.raises(QueryError, match="step must be positive"):
        store.query(Selection(), step_ns=0)
    with pytest.raises(QueryError, match="unknown aggregation"):
        store.query(Selection(), step_ns=S, agg="median")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_one_column_per_label(store: Store, tmp_path: Path, fmt: str) -> None:
    for t in range(10, 15):
        store.append(cpu_batch(t))
    store.append(Batch.from_samples([Sample("node_load1", 0.5, {"host": "h0"}, 12 * S)]))
    out = tmp_path / f"x.{fmt}"
    seen: list[float] = []
    res = store.export(Selection(metrics=("node_cpu_seconds_total",), start_ns=11 * S), out, fmt, seen.append)  # type: ignore[arg-type]
    assert res.rows == 12
    assert seen and seen[-1] == 1.0
    frame = pl.read_parquet(out) if fmt == "parquet" else pl.read_csv(out)
    assert frame.columns == ["time", "metric", "value", "cpu", "host", "mode"]
    assert frame.height == 12
    assert sorted(frame.filter(pl.col("host") == "h2")["value"].to_list()) == [13.0, 14.0, 15.0, 16.0]


def test_jobs_upsert_by_site_and_job_id(store: Store) -> None:
    first = pl.DataFrame(
        {"site": ["a", "a"], "job_id": ["1", "2"], "state": ["PENDING", "PENDING"], "submit_s": [100, 200]}
    )
    assert store.append_jobs(first) == 2
    update = pl.DataFrame({"site": ["a"], "job_id": ["1"], "state": ["RUNNING"], "submit_s": [100], "start_s": [150]})
    store.append_jobs(update)
    got = store.jobs(site="a")
    assert got.columns == list(JOB_SCHEMA)
    assert got.select("job_id", "state", "start_s").rows() == [("1", "RUNNING", 150), ("2", "PENDING", None)]
    assert store.jobs(states=["PENDING"])["job_id"].to_list() == ["2"]
    assert store.jobs(submitted_from_s=150).height == 1
    with pytest.raises(ValueError, match="site and a job_id"):
        store.append_jobs(
            pl.DataFrame({"site": ["a"], "job_id": [None]}, schema={"site": pl.String, "job_id": pl.String})
        )


def test_one_job_is_found_by_site_and_id_with_the_join_columns(store: Store) -> None:
    store.append_jobs(
        _jobs(site=["k", "k", "h"], job_id=["ns/p", "ns/q", "ns/p"], state=["RUNNING"] * 3,
              remote_site=["h", None, None], remote_job_id=["7", None, None], nodes=["vk", "n1", "c1,c2"])
    )  # fmt: skip
    (row,) = store.job("k", "ns/p").to_dicts()
    assert (row["remote_site"], row["remote_job_id"], row["nodes"]) == ("h", "7", "vk")
    assert store.job("h", "ns/p")["nodes"].to_list() == ["c1,c2"]
    assert store.job("k", "ns/none").is_empty() and store.job("k", "ns/none").columns == list(JOB_SCHEMA)


def _jobs(**columns: list[object]) -> pl.DataFrame:
    return pl.DataFrame(columns, schema={k: JOB_SCHEMA[k] for k in columns})


def _rows(store: Store, site: str = "a") -> dict[str, tuple[object, ...]]:
    got = store.jobs(site=site).select("job_id", "state", "start_s", "end_s", "exit_code")
    return {r[0]: r[1:] for r in got.rows()}


def test_job_upsert_never_moves_a_job_backwards_in_its_lifecycle(store: Store) -> None:
    store.append_jobs(
        _jobs(site=["a"] * 3, job_id=["1", "2", "3"], state=["COMPLETED", "RUNNING", "PENDING"],
              submit_s=[100, 200, 300], start_s=[110, 210, None], end_s=[150, None, None], exit_code=[0, None, None])
    )  # fmt: skip
    # the same jobs as an older view saw them (a replay restarted from an earlier instant)
    stale = _jobs(site=["a"] * 3, job_id=["1", "2", "3"], state=["PENDING"] * 3, submit_s=[100, 200, 300])
    assert store.append_jobs(stale) == 1  # only job 3, which was pending anyway
    assert store.append_jobs(_jobs(site=["a"], job_id=["1"], state=["RUNNING"], start_s=[110])) == 0
    assert store.append_jobs(_jobs(site=["a"], job_id=["1"], state=["UNKNOWN"])) == 0
    assert _rows(store) == {"1": ("COMPLETED", 110, 150, 0), "2": ("RUNNING", 210, None, None),
                            "3": ("PENDING", None, None, None)}  # fmt: skip

    # forward and same-stage updates still apply and fill in fields; a final record may be corrected
    store.append_jobs(
        _jobs(site=["a"] * 3, job_id=["3", "2", "1"], state=["RUNNING", "SUSPENDED", "FAILED"],
              start_s=[320, 210, 110], end_s=[None, None, 150], exit_code=[None, None, 1])
    )  # fmt: skip
    assert store.append_jobs(_jobs(site=["a"], job_id=["2"], state=["RUNNING"], start_s=[210])) == 1
    assert _rows(store) == {"1": ("FAILED", 110, 150, 1), "2": ("RUNNING", 210, None, None),
                            "3": ("RUNNING", 320, None, None)}  # fmt: skip

    # within one append the latest row of the latest stage wins, whatever the row order
    store.append_jobs(
        _jobs(site=["a"] * 4, job_id=["4", "4", "4", "4"], state=["RUNNING", "COMPLETED", "PENDING", "COMPLETED"],
              start_s=[400, 400, None, 400], end_s=[None, 450, None, 460], exit_code=[None, 0, None, 0])
    )  # fmt: skip
    assert _rows(store)["4"] == ("COMPLETED", 400, 460, 0)
    # (site, job_id) is the key: job 1 of another site is another job
    assert store.append_jobs(_jobs(site=["b"], job_id=["1"], state=["PENDING"])) == 1
    assert _rows(store, "b") == {"1": ("PENDING", None, None, None)}
    assert _rows(store)["1"] == ("FAILED", 110, 150, 1)


def test_reads_while_writing(store: Store) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        t = 0
        while not stop.is_set():
            try:
                store.append(cpu_batch(t := t + 1, hosts=50))
            except BaseException as exc:
                errors.append(exc)
                return

    th = threading.Thread(target=writer)
    th.start()
    counts = []
    for _ in range(20):
        counts.append(store.count())
        store.latest(Selection(labels={"host": "h3"}))
    stop.set()
    th.join()
    assert not errors
    assert counts == sorted(counts)  # readers see committed, growing data
    assert store.count() % 50 == 0  # never a half-written batch


def test_grouped_query_pivots_metrics_per_label_value_and_bucket(store: Store) -> None:
    samples = []
    for t in range(0, 120, 10):  # two 60 s buckets per host
        for h in ("a", "b"):
            labels = {"site": "s", "host": h}
            samples.append(Sample("node_cpu_busy_ratio", t / 100 + (h == "b"), labels, t * 1_000_000_000))
            if t < 60:  # memory only in the first bucket
                samples.append(Sample("node_memory_used_ratio", 0.5, labels, t * 1_000_000_000))
    samples.append(Sample("node_cpu_busy_ratio", 9.0, {"site": "other", "host": "a"}, 0))
    store.append(Batch.from_samples(samples))
    sel = Selection(metrics=("node_cpu_busy_ratio", "node_memory_used_ratio"), labels={"site": "s"})
    grouped = store.query_grouped(sel, step_ns=60_000_000_000, by="host")
    assert grouped.columns == ["host", "ts_ns", "node_cpu_busy_ratio", "node_memory_used_ratio"]
    assert grouped["host"].to_list() == ["a", "a", "b", "b"]
    assert grouped["ts_ns"].to_list() == [0, 60_000_000_000] * 2
    assert grouped["node_cpu_busy_ratio"].to_list() == pytest.approx([0.25, 0.85, 1.25, 1.85])
    assert grouped["node_memory_used_ratio"].to_list() == [0.5, None, 0.5, None]
    last = store.query_grouped(sel, step_ns=60_000_000_000, by="host", agg="max")
    assert last["node_cpu_busy_ratio"].to_list() == pytest.approx([0.5, 1.1, 1.5, 2.1])
    with pytest.raises(QueryError):
        store.query_grouped(Selection(), step_ns=1, by="host")
    with pytest.raises(QueryError):
        store.query_grouped(sel, step_ns=1, by="bad-label")
    empty = store.query_grouped(Selection(metrics=("nothing",)), step_ns=1, by="host")
    assert empty.is_empty() and empty.columns == ["host", "ts_ns", "nothing"]
