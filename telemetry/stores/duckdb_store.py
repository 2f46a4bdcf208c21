"""The embedded default store: one DuckDB file (ACID, crash-safe through its write-ahead log).

Layout: `series(series_id, metric, labels)` holds each distinct series once; `samples(series_id,
ts_ns, value)` holds the numbers, three fixed-width columns that append fast from Arrow. Series
ids are sequential integers assigned here under the write lock (not hashes: polars hashes are
not stable across versions, and sequential ids cannot collide). `jobs` holds the job history.

Every append is one transaction; when `append` returns, DuckDB has committed it to its WAL, so a
`kill -9` afterwards loses nothing (tests/telemetry/test_crash_safety.py proves it with a real
subprocess). Reads run on their own cursors and see committed data only.

A full disk: an append whose WAL write fails is rolled back and the next one may succeed. A
checkpoint that fails (DuckDB writes the WAL into the file once it passes 16 MB) is fatal to
DuckDB: it invalidates the whole database in this process, and every later statement, reads
included, fails until the file is opened again. So the store reopens the file at its next use;
reopening replays the WAL, so nothing committed is lost (tests/telemetry/test_store_disk_full.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from telemetry.advice import ADVICE_SCHEMA, SUMMARY_SCHEMA, summary_sql
from telemetry.filemodes import make_private_dir, tighten
from telemetry.jobs import JOB_SCHEMA, LIFECYCLE_STAGE, conform_jobs, lifecycle_stage
from telemetry.schema import Batch
from telemetry.stores.base import (
    AGGREGATIONS,
    Aggregation,
    ExportResult,
    ProgressCallback,
    QueryError,
    Selection,
    Store,
)

__all__ = ["DuckDBStore"]

log = logging.getLogger(__name__)

_PRUNE_KEYS_EVERY = 100
"""Ingest keys beyond the bound are deleted every this many inserts (one scan, not one per batch)."""
_SAMPLES_COLUMNS = ["metric", "labels", "ts_ns", "value"]
_AGG_SQL = {
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    "last": "arg_max(value, ts_ns)",
}
_DUCK_TYPES = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE",
}


_STAGE_SQL = (
    "CASE jobs.state "
    + " ".join(f"WHEN '{state}' THEN {stage}" for state, stage in LIFECYCLE_STAGE.items())
    + " ELSE 0 END"
)
"""The stored row's LIFECYCLE_STAGE, in SQL (the same table as telemetry.jobs.lifecycle_stage)."""


def _job_columns_sql() -> str:
    return _columns_sql(JOB_SCHEMA)


def _columns_sql(schema: dict[str, pl.DataType]) -> str:
    return ", ".join(f'"{name}" {_DUCK_TYPES[type(dtype)]}' for name, dtype in schema.items())


class DuckDBStore(Store):
    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit: str = "1GB",
        threads: int | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not read_only:
            make_private_dir(self.path.parent)
        self._config: dict[str, Any] = {"memory_limit": memory_limit}
        if threads:
            self._config["threads"] = threads
        # Reentrant: a writer holding it may reopen the file (`_cursor`) before its transaction.
        self._write_lock = threading.RLock()
        self._closed = False
        self._invalidated: str | None = None
        """DuckDB's fatal error, from the write that invalidated the database until it is reopened."""
        self.reopens = 0
        self._ingest_inserts = 0
        self._connect()

    def _connect(self) -> None:
        self._con = duckdb.connect(str(self.path), read_only=self.read_only, config=self._config)
        if not self.read_only:  # owner-only, also a file an older version left readable (telemetry.filemodes)
            for own in (self.path, self.path.with_name(self.path.name + ".wal")):
                tighten(own)
            self._create_schema()
        # metric+labels → id, for every series ever written (the join index of `_series_ids`).
        index = _frame(self._con.cursor(), "SELECT metric, labels, series_id FROM series")
        self._index = index.cast({"series_id": pl.Int64})
        top = self._index["series_id"].max() if self._index.height else 0
        self._next_id = int(top) + 1 if isinstance(top, int) else 1

    def _reopen(self) -> None:
        """Open the file again after DuckDB invalidated the database (see the module docstring).
        Raises what opening raises; the store stays invalidated and the next use tries again."""
        with self._write_lock:
            if self._invalidated is None or self._closed:
                return
            with contextlib.suppress(duckdb.Error):
                self._con.close()  # also closes every cursor still held by a reader
            self._connect()  # the index is read again from the file: it holds what was committed
            log.debug("reopened %s after: %s", self.path, self._invalidated)
            self._invalidated = None
            self.reopens += 1

    @contextmanager
    def _fatal(self) -> Iterator[None]:
        """Note a fatal error, so the next use of the store reopens the file."""
        try:
            yield
        except duckdb.FatalException as exc:
            self._invalidated = str(exc)
            raise

    # ---------------------------------------------------------------- schema
    def _create_schema(self) -> None:
        con = self._con
        con.execute(
            "CREATE TABLE IF NOT EXISTS series (series_id BIGINT NOT NULL, metric VARCHAR NOT NULL,"
            " labels VARCHAR NOT NULL)"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS samples (series_id BIGINT NOT NULL, ts_ns BIGINT NOT NULL, value DOUBLE)"
        )
        con.execute(f"CREATE TABLE IF NOT EXISTS jobs ({_job_columns_sql()})")
        # a file written before a JOB_SCHEMA column existed gains it, null for the rows it holds
        for name, dtype in JOB_SCHEMA.items():
            con.execute(f'ALTER TABLE jobs ADD COLUMN IF NOT EXISTS "{name}" {_DUCK_TYPES[type(dtype)]}')
        con.execute(f"CREATE TABLE IF NOT EXISTS advice ({_columns_sql(ADVICE_SCHEMA)}, PRIMARY KEY (advice_id))")
        # a log written before the hook column existed gains it (its answers came through the API)
        con.execute("ALTER TABLE advice ADD COLUMN IF NOT EXISTS hook VARCHAR DEFAULT 'api'")
        con.execute(
            "CREATE TABLE IF NOT EXISTS ingest_keys (key VARCHAR PRIMARY KEY, site VARCHAR, rows BIGINT,"
            " received_ns BIGINT NOT NULL)"
        )

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise RuntimeError("store is closed")
        if self._invalidated is not None:
            self._reopen()
        return self._con.cursor()

    # ---------------------------------------------------------------- writes
    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on a fresh cursor: committed on success, rolled back on any error
        (after a fatal error there is nothing to roll back: the database is invalidated)."""
        with self._fatal():
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except duckdb.FatalException:
                raise
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _series_ids(self, frame: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
        """Ids for the batch's series, and the frame of series seen for the first time."""
        keyed = frame.select("metric", "labels").join(
            self._index, on=["metric", "labels"], how="left", maintain_order="left"
        )
        ids = keyed["series_id"]
        if ids.null_count() == 0:
            return ids, self._index.clear()
        new = keyed.filter(pl.col("series_id").is_null()).select("metric", "labels").unique(maintain_order=True)
        new = new.with_columns(
            pl.int_range(self._next_id, self._next_id + new.height, dtype=pl.Int64).alias("series_id")
        )
        ids = keyed.select("metric", "labels").join(
            pl.concat([self._index, new]), on=["metric", "labels"], how="left", maintain_order="left"
        )["series_id"]
        return ids, new

    def append(self, batch: Batch) -> int:
        if not len(batch):
            return 0
        with self._write_lock:
            if self._invalidated is not None:
                self._reopen()  # before the ids: they come from the index the file holds
            ids, new = self._series_ids(batch.frame)
            rows = pl.DataFrame(  # noqa: F841 (read by DuckDB's replacement scan below)
                {"series_id": ids, "ts_ns": batch.frame["ts_ns"], "value": batch.frame["value"]}
            )
            with self._transaction() as cur:
                if new.height:
                    new_series = new.select("series_id", "metric", "labels")  # noqa: F841 (read by SQL)
                    cur.execute("INSERT INTO series SELECT * FROM new_series")
                cur.execute("INSERT INTO samples SELECT * FROM rows")
            if new.height:
                self._index = pl.concat([self._index, new])
                self._next_id += new.height
        return len(batch)

    def append_jobs(self, jobs: pl.DataFrame) -> int:
        """Upsert by (site, job_id), never backwards in the job's lifecycle (telemetry.jobs
        LIFECYCLE_STAGE): a row replaces the stored one only if its stage is the same or later, so
        a replay restarted from an older trace instant, or a queue snapshot older than the
        accounting record, cannot turn an ended job back into a pending one. Within one call the
        latest row of the latest stage wins. Returns the rows written."""
        if jobs.height == 0:
            return 0
        frame = (  # read by DuckDB's replacement scan below
            conform_jobs(jobs)
            .with_columns(lifecycle_stage().alias("_stage"))
            .with_row_index("_order")
            .sort("_stage", "_order")
            .unique(subset=["site", "job_id"], keep="last")
            .collect()
        )
        if frame.select(pl.col("site").is_null() | pl.col("job_id").is_null()).to_series().any():
            raise ValueError("job rows need a site and a job_id")
        columns = ", ".join(f'f."{name}"' for name in JOB_SCHEMA)
        names = ", ".join(f'"{name}"' for name in JOB_SCHEMA)  # by name: a migrated table's order may differ
        with self._write_lock, self._transaction() as cur:
            cur.execute(
                "DELETE FROM jobs USING frame f WHERE jobs.site = f.site AND jobs.job_id = f.job_id"
                f" AND f._stage >= {_STAGE_SQL}"
            )
            row = cur.execute(
                f"INSERT INTO jobs ({names}) SELECT {columns} FROM frame f WHERE NOT EXISTS"
                " (SELECT 1 FROM jobs WHERE jobs.site = f.site AND jobs.job_id = f.job_id)"
            ).fetchone()
        return int(row[0]) if row else 0

    def apply_retention(self, older_than_ns: int) -> int:
        with self._write_lock, self._fatal():
            cur = self._cursor()
            row = cur.execute("DELETE FROM samples WHERE ts_ns < ?", [older_than_ns]).fetchone()
        return int(row[0]) if row else 0

    # ---------------------------------------------------------------- reads
    @staticmethod
    def _series_filter(selection: Selection) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if selection.metrics:
            clauses.append(f"metric IN ({', '.join('?' for _ in selection.metrics)})")
            params.extend(selection.metrics)
        for key, value in selection.labels.items():
            clauses.append(f"json_extract_string(labels, '$.\"{key}\"') = ?")
            params.append(value)
        return (" AND ".join(clauses) or "TRUE"), params

    @staticmethod
    def _time_filter(selection: Selection) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if selection.start_ns is not None:
            clauses.append("ts_ns >= ?")
            params.append(selection.start_ns)
        if selection.end_ns is not None:
            clauses.append("ts_ns < ?")
            params.append(selection.end_ns)
        return (" AND ".join(clauses) or "TRUE"), params

    def _selected(self, selection: Selection) -> tuple[str, list[Any]]:
        """SQL for the matching samples joined with their series."""
        where_series, p1 = self._series_filter(selection)
        where_time, p2 = self._time_filter(selection)
        sql = (
            "SELECT s.metric, s.labels, x.ts_ns, x.value FROM samples x "
            f"JOIN (SELECT series_id, metric, labels FROM series WHERE {where_series}) s USING (series_id) "
            f"WHERE {where_time}"
        )
        return sql, p1 + p2

    def query(self, selection: Selection, step_ns: int | None = None, agg: Aggregation = "avg") -> pl.DataFrame:
        if agg not in AGGREGATIONS:
            raise QueryError(f"unknown aggregation {agg!r}; use one of {', '.join(AGGREGATIONS)}")
        inner, params = self._selected(selection)
        if step_ns is None:
            sql = f"SELECT * FROM ({inner}) ORDER BY metric, labels, ts_ns"
        else:
            if step_ns <= 0:
                raise QueryError(f"step must be positive, got {step_ns} ns")
            bucket = f"ts_ns - (ts_ns % {int(step_ns)})"
            sql = (
                f"SELECT metric, labels, {bucket} AS bucket, {_AGG_SQL[agg]} AS value "
                f"FROM ({inner}) GROUP BY metric, labels, bucket ORDER BY metric, labels, bucket"
            )
        frame = _frame(self._cursor(), sql, params)
        if step_ns is not None:
            frame = frame.rename({"bucket": "ts_ns"})
        return self._typed(frame)

    def query_grouped(self, selection: Selection, step_ns: int, by: str, agg: Aggregation = "avg") -> pl.DataFrame:
        if agg not in AGGREGATIONS:
            raise QueryError(f"unknown aggregation {agg!r}; use one of {', '.join(AGGREGATIONS)}")
        if not selection.metrics:
            raise QueryError("a grouped query needs at least one metric")
        if step_ns <= 0:
            raise QueryError(f"step must be positive, got {step_ns} ns")
        Selection(labels={by: ""})  # validates `by` as a label name before it goes into SQL
        where_series, p1 = self._series_filter(selection)
        where_time, p2 = self._time_filter(selection)
        columns = ", ".join(
            f"{_AGG_SQL[agg]} FILTER (WHERE s.metric = ?) AS m{i}" for i in range(len(selection.metrics))
        )
        sql = (
            f"SELECT s.grp, x.ts_ns - (x.ts_ns % {int(step_ns)}) AS bucket, {columns} FROM samples x "
            f"JOIN (SELECT series_id, metric, json_extract_string(labels, '$.\"{by}\"') AS grp FROM series "
            f"WHERE {where_series}) s USING (series_id) WHERE {where_time} GROUP BY 1, 2 ORDER BY 1, 2"
        )
        frame = _frame(self._cursor(), sql, [*selection.metrics, *p1, *p2])
        names = {"grp": by, "bucket": "ts_ns", **{f"m{i}": m for i, m in enumerate(selection.metrics)}}
        schema = {by: pl.String, "ts_ns": pl.Int64, **{m: pl.Float64 for m in selection.metrics}}
        if frame.is_empty():
            return pl.DataFrame(schema=schema)
        return frame.rename(names).cast(schema)  # type: ignore[arg-type]

    def latest(self, selection: Selection) -> pl.DataFrame:
        inner, params = self._selected(selection)
        sql = (
            "SELECT metric, labels, max(ts_ns) AS ts_ns, arg_max(value, ts_ns) AS value "
            f"FROM ({inner}) GROUP BY metric, labels ORDER BY metric, labels"
        )
        return self._typed(_frame(self._cursor(), sql, params))

    def series(self, selection: Selection) -> pl.DataFrame:
        where, params = self._series_filter(selection)
        sql = f"SELECT DISTINCT metric, labels FROM series WHERE {where} ORDER BY metric, labels"
        return _frame(self._cursor(), sql, params).cast({"metric": pl.String, "labels": pl.String})

    def count(self, selection: Selection | None = None) -> int:
        inner, params = self._selected(selection or Selection())
        row = self._cursor().execute(f"SELECT count(*) FROM ({inner})", params).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _typed(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(_SAMPLES_COLUMNS).cast(
            {"metric": pl.String, "labels": pl.String, "ts_ns": pl.Int64, "value": pl.Float64}
        )

    def jobs(
        self,
        site: str | None = None,
        states: Sequence[str] = (),
        submitted_from_s: int | None = None,
        submitted_to_s: int | None = None,
    ) -> pl.DataFrame:
        clauses: list[str] = []
        params: list[Any] = []
        if site is not None:
            clauses.append("site = ?")
            params.append(site)
        if states:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(states)
        if submitted_from_s is not None:
            clauses.append("submit_s >= ?")
            params.append(submitted_from_s)
        if submitted_to_s is not None:
            clauses.append("submit_s < ?")
            params.append(submitted_to_s)
        where = " AND ".join(clauses) or "TRUE"
        frame = _frame(self._cursor(), f"SELECT * FROM jobs WHERE {where} ORDER BY submit_s, site, job_id", params)
        return conform_jobs(frame).collect()

    def job(self, site: str, job_id: str) -> pl.DataFrame:
        frame = _frame(self._cursor(), "SELECT * FROM jobs WHERE site = ? AND job_id = ?", [site, job_id])
        return conform_jobs(frame).collect()

    # ---------------------------------------------------------------- export
    def _label_keys(self, selection: Selection) -> list[str]:
        where, params = self._series_filter(selection)
        sql = f"SELECT DISTINCT unnest(json_keys(labels)) AS k FROM series WHERE {where} ORDER BY k"
        return [r[0] for r in self._cursor().execute(sql, params).fetchall()]

    def export_sql(self, selection: Selection, fmt: Literal["parquet", "csv"] = "parquet") -> tuple[str, list[Any]]:
        """The export query: time as a UTC instant, then metric, value and one column per label key.

        `time` is a TIMESTAMPTZ_NS made by timezone('UTC', …), not a bare TIMESTAMP_NS: Parquet then
        marks it adjusted to UTC (readers see a UTC zone, not a naive time), and unlike a cast it
        does not depend on the session's TimeZone. CSV gets ISO-8601 text ending in Z, written
        from the naive UTC timestamp, because DuckDB prints a TIMESTAMPTZ_NS in CSV with the
        session's offset but without converting to it."""
        keys = [k for k in self._label_keys(selection) if k not in _RESERVED]
        where_series, p1 = self._series_filter(selection)
        where_time, p2 = self._time_filter(selection)
        # Labels are parsed once per series (in the subquery), not once per sample: JSON parsing of
        # every row was two thirds of the export's CPU. Positional aliases (l0, l1...) inside the
        # subquery cannot collide with series_id/metric whatever the label keys are called.
        extract = "".join(f", json_extract_string(labels, '$.\"{k}\"') AS l{i}" for i, k in enumerate(keys))
        label_cols = "".join(f', s.l{i} AS "{k}"' for i, k in enumerate(keys))
        time = (
            "strftime(make_timestamp_ns(x.ts_ns), '%Y-%m-%dT%H:%M:%S.%nZ')"
            if fmt == "csv"
            else "timezone('UTC', make_timestamp_ns(x.ts_ns))"
        )
        sql = (
            f"SELECT {time} AS time, s.metric, x.value"
            f"{label_cols} FROM samples x "
            f"JOIN (SELECT series_id, metric{extract} FROM series WHERE {where_series}) s USING (series_id) "
            f"WHERE {where_time}"
        )
        return sql, p1 + p2

    def export(
        self,
        selection: Selection,
        path: Path,
        fmt: Literal["parquet", "csv"],
        progress: ProgressCallback | None = None,
    ) -> ExportResult:
        if fmt not in ("parquet", "csv"):
            raise QueryError(f"unknown export format {fmt!r}; use parquet or csv")
        sql, params = self.export_sql(selection, fmt)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER true"
        cur = self._cursor()
        # the schema is the instant's, whatever the format: CSV spells the same UTC instant as text
        typed_sql, typed_params = self.export_sql(selection) if fmt == "csv" else (sql, params)
        schema = [(str(n), str(t)) for n, t in zip(*_describe(cur, typed_sql, typed_params), strict=True)]
        copy = f"COPY ({sql}) TO '{_sql_str(str(path))}' ({options})"
        rows = _run_with_progress(cur, copy, params, progress)
        return ExportResult(path=path, rows=rows, schema=schema)

    # ---------------------------------------------------------------- advice log
    def append_advice(self, rows: pl.DataFrame) -> int:
        if rows.height == 0:
            return 0
        have = set(rows.columns)
        columns = [pl.col(c).cast(t) if c in have else pl.lit(None, t).alias(c) for c, t in ADVICE_SCHEMA.items()]
        frame = rows.select(columns)  # noqa: F841 (read by DuckDB's replacement scan below)
        with self._write_lock, self._transaction() as cur:
            names = ", ".join(f'"{c}"' for c in ADVICE_SCHEMA)  # by name: an old file has hook last
            cur.execute(f"INSERT INTO advice ({names}) SELECT {names} FROM frame")
        return rows.height

    def update_advice(self, advice_id: str, fields: Mapping[str, object]) -> bool:
        unknown = set(fields) - set(ADVICE_SCHEMA) | ({"advice_id"} & set(fields))
        if unknown:
            raise ValueError(f"cannot set advice columns {sorted(unknown)}")
        if not fields:
            return bool(self.advice(advice_id).height)
        assignments = ", ".join(f'"{k}" = ?' for k in fields)
        with self._write_lock, self._transaction() as cur:
            cur.execute(f"UPDATE advice SET {assignments} WHERE advice_id = ?", [*fields.values(), advice_id])
            row = cur.execute("SELECT count(*) FROM advice WHERE advice_id = ?", [advice_id]).fetchone()
        return bool(row and row[0])

    def advice(
        self,
        advice_id: str | None = None,
        *,
        reported_unjoined: bool = False,
        created_from_s: float | None = None,
        created_to_s: float | None = None,
    ) -> pl.DataFrame:
        clauses: list[str] = []
        params: list[Any] = []
        if advice_id is not None:
            clauses.append("advice_id = ?")
            params.append(advice_id)
        if reported_unjoined:
            clauses.append("job_id IS NOT NULL AND joined_s IS NULL")
        if created_from_s is not None:
            clauses.append("created_s >= ?")
            params.append(created_from_s)
        if created_to_s is not None:
            clauses.append("created_s < ?")
            params.append(created_to_s)
        where = " AND ".join(clauses) or "TRUE"
        frame = _frame(self._cursor(), f"SELECT * FROM advice WHERE {where} ORDER BY created_s, advice_id", params)
        if frame.width == 0:
            return pl.DataFrame(schema=ADVICE_SCHEMA)
        return frame.cast(ADVICE_SCHEMA)  # type: ignore[arg-type]

    def advice_summary(self, site: str) -> pl.DataFrame:
        frame = _frame(self._cursor(), summary_sql("advice"), [site])
        return frame.cast(SUMMARY_SCHEMA) if frame.width else pl.DataFrame(schema=SUMMARY_SCHEMA)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- ingest idempotency keys
    def ingest_key_seen(self, key: str) -> bool:
        row = self._cursor().execute("SELECT count(*) FROM ingest_keys WHERE key = ?", [key]).fetchone()
        return bool(row and row[0])

    def remember_ingest_key(self, key: str, site: str, rows: int, keep: int) -> None:
        if keep < 1:
            raise ValueError("keep at least one ingest key")
        with self._write_lock, self._transaction() as cur:
            cur.execute(
                "INSERT INTO ingest_keys VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", [key, site, rows, time.time_ns()]
            )
            self._ingest_inserts += 1
            if self._ingest_inserts % _PRUNE_KEYS_EVERY == 0 or keep < _PRUNE_KEYS_EVERY:
                cur.execute(
                    "DELETE FROM ingest_keys WHERE key NOT IN"
                    " (SELECT key FROM ingest_keys ORDER BY received_ns DESC, key LIMIT ?)",
                    [keep],
                )

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            self._con.close()

    def stats(self) -> dict[str, Any]:
        row = self._cursor().execute("SELECT count(*) FROM samples").fetchone()
        return {
            "backend": "duckdb",
            "path": str(self.path),
            "series": self._index.height,
            "samples": int(row[0]) if row else 0,
        }


_RESERVED = {"time", "metric", "value"}


def _frame(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    result = pl.from_arrow(cur.sql(sql, params=params or None).to_arrow_table())
    assert isinstance(result, pl.DataFrame)
    return result


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def _describe(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> tuple[list[str], list[str]]:
    rel = cur.execute(f"DESCRIBE {sql}", params).fetchall()
    return [r[0] for r in rel], [r[1] for r in rel]


def _run_with_progress(
    cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any], progress: ProgressCallback | None
) -> int:
    """Run a COPY; while it runs, report DuckDB's own progress estimate (0..1) from this thread."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            row = cur.execute(sql, params).fetchone()
            result["rows"] = int(row[0]) if row else 0
        except BaseException as exc:  # re-raised below, in the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=work, name="ctwin-export", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        if progress is not None:
            pct = cur.query_progress()
            if pct >= 0:
                progress(min(pct / 100.0, 0.99))
    if "error" in result:
        raise result["error"]
    if progress is not None:
        progress(1.0)
    return int(result["rows"])
