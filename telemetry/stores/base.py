"""The store contract every backend honours (embedded DuckDB now; InfluxDB later).

One contract test suite (tests/telemetry/test_store_contract.py) runs against every backend.
An `append` that returns has made the batch durable: the caller may acknowledge it upstream.
"""

from __future__ import annotations

import difflib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from telemetry.schema import Batch

Aggregation = Literal["avg", "min", "max", "last", "sum"]
AGGREGATIONS: tuple[str, ...] = ("avg", "min", "max", "last", "sum")
_LABEL_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "ExportResult",
    "QueryError",
    "Selection",
    "Store",
    "UnknownMetricError",
    "check_metrics",
]


class QueryError(ValueError):
    """A query the store cannot answer as asked (bad label key, empty range, bad step)."""


@dataclass(frozen=True)
class Selection:
    """Which samples: metric names (empty = all), exact label matches, half-open time range [start, end)."""

    metrics: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    start_ns: int | None = None
    end_ns: int | None = None

    def __post_init__(self) -> None:
        for key in self.labels:
            if not _LABEL_KEY.match(key):
                raise QueryError(f"label name {key!r} is not a valid Prometheus label name")
        if self.start_ns is not None and self.end_ns is not None and self.end_ns <= self.start_ns:
            raise QueryError(f"empty time range: end {self.end_ns} is not after start {self.start_ns}")

    def describe(self) -> dict[str, object]:
        return {
            "metrics": list(self.metrics),
            "labels": dict(self.labels),
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
        }


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    schema: list[tuple[str, str]]


ProgressCallback = Callable[[float], None]


class Store(ABC):
    """Samples, series, job history and the advice log. Thread-safe: the pipeline writes while
    the API reads."""

    @abstractmethod
    def append(self, batch: Batch) -> int:
        """Durably append a batch; returns the number of samples written."""

    @abstractmethod
    def query(self, selection: Selection, step_ns: int | None = None, agg: Aggregation = "avg") -> pl.DataFrame:
        """Samples (metric, labels, ts_ns, value) sorted by series then time; with a step, one
        value per series and step-aligned bucket (ts_ns = bucket start), aggregated by `agg`."""

    @abstractmethod
    def query_grouped(self, selection: Selection, step_ns: int, by: str, agg: Aggregation = "avg") -> pl.DataFrame:
        """Downsampled and pivoted in the store: one row per (value of label `by`, step-aligned
        bucket), one column per selected metric (null where it has no sample); columns `by`,
        ts_ns, then the metrics in selection order. For many series (a thousand hosts × a day)
        this is one pass instead of moving every series to the caller. Needs selection.metrics."""

    @abstractmethod
    def latest(self, selection: Selection) -> pl.DataFrame:
        """The newest sample of every matching series (metric, labels, ts_ns, value)."""

    @abstractmethod
    def series(self, selection: Selection) -> pl.DataFrame:
        """Known series (metric, labels) matching metric and labels (time range ignored)."""

    @abstractmethod
    def count(self, selection: Selection | None = None) -> int:
        """Number of stored samples matching the selection."""

    @abstractmethod
    def apply_retention(self, older_than_ns: int) -> int:
        """Delete samples older than the cut-off; returns how many were deleted."""

    @abstractmethod
    def export(
        self,
        selection: Selection,
        path: Path,
        fmt: Literal["parquet", "csv"],
        progress: ProgressCallback | None = None,
    ) -> ExportResult:
        """Stream matching samples to a file, one column per label key, without loading them all."""

    @abstractmethod
    def append_jobs(self, jobs: pl.DataFrame) -> int:
        """Insert or replace job-history rows (telemetry.jobs.JOB_SCHEMA), keyed by (site, job_id),
        never backwards: a stored row is replaced only by one of the same or a later lifecycle stage
        (telemetry.jobs.LIFECYCLE_STAGE; within one call, the last row of the latest stage). Returns
        the rows written."""

    @abstractmethod
    def jobs(
        self,
        site: str | None = None,
        states: Sequence[str] = (),
        submitted_from_s: int | None = None,
        submitted_to_s: int | None = None,
    ) -> pl.DataFrame:
        """Job-history rows in JOB_SCHEMA, ordered by submit time."""

    def job(self, site: str, job_id: str) -> pl.DataFrame:
        """One job's row (JOB_SCHEMA; empty when unknown). Backends with an index override this
        scan of the site's history."""
        return self.jobs(site=site).filter(pl.col("job_id") == job_id)

    @abstractmethod
    def append_advice(self, rows: pl.DataFrame) -> int:
        """Insert advice-log rows (telemetry.advice.ADVICE_SCHEMA); an existing advice_id is refused."""

    @abstractmethod
    def update_advice(self, advice_id: str, fields: Mapping[str, object]) -> bool:
        """Set columns of one advice row (the caller's report, the joined outcome); False if unknown."""

    @abstractmethod
    def advice(
        self,
        advice_id: str | None = None,
        *,
        reported_unjoined: bool = False,
        created_from_s: float | None = None,
        created_to_s: float | None = None,
    ) -> pl.DataFrame:
        """Advice rows in ADVICE_SCHEMA ordered by creation: one id, those reported back but not
        yet joined with their outcome, or a time range."""

    @abstractmethod
    def advice_summary(self, site: str) -> pl.DataFrame:
        """Per hook, the answers that recommended `site` and how they turned out
        (telemetry.advice.SUMMARY_SCHEMA), computed in the store."""

    @abstractmethod
    def ingest_key_seen(self, key: str) -> bool:
        """Whether a batch with this idempotency key (POST /v1/ingest) was stored already."""

    @abstractmethod
    def remember_ingest_key(self, key: str, site: str, rows: int, keep: int) -> None:
        """Record a stored batch's idempotency key; only the `keep` newest keys are kept, so a
        replay is recognised for as long as an agent's spool can plausibly hold it."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the backend; idempotent."""


class UnknownMetricError(LookupError):
    """A metric the store has never seen: an export of it would be silently empty."""

    code = "unknown_metric"

    def __init__(self, metric: str, close: Sequence[str] = ()) -> None:
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        self.message = f"no metric named {metric!r} in the store{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def check_metrics(store: Store, metrics: Iterable[str]) -> None:
    """UnknownMetricError (with the closest names) for the first of `metrics` the store has no
    series of; one check for the query API, the export API and `ctwin export samples`."""
    known: list[str] | None = None
    for metric in metrics:
        if store.series(Selection(metrics=(metric,))).is_empty():
            if known is None:
                known = store.series(Selection()).get_column("metric").unique().to_list()
            raise UnknownMetricError(metric, difflib.get_close_matches(metric, known, n=3))
