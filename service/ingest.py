"""What `POST /v1/ingest` and `/v1/ingest/jobs` do with a batch a remote `ctwin agent` pushed:
decode it, check it strictly, store it once, and keep its site's freshness.

Why each rule:
- The body is an Arrow IPC stream of the sample schema (telemetry.schema.BATCH_SCHEMA) or of
  JOB_SCHEMA: the form the pipeline already holds batches in, so nothing is parsed row by row.
  Each batch's rows are counted from its header before it is decoded, and compressed batches are
  refused, so no body expands beyond its own size (service/ingest_stream.py); more than
  `max_rows` rows is a 413.
- A token writes only the sites that name it (`sites[].push.tokens`), so a leaked agent token can
  pollute one site, never the twin's view of the others (403). Metrics must be in the catalog, with
  the labels the catalog allows them (422): what the twin and /metrics read is the catalog's.
- An `Idempotency-Key` (the agent sends a digest of the body under its own token's name) is kept
  in the store for the newest `keep_keys` batches: an agent whose acknowledgement was lost on a
  cut link sends the batch again, and the repeat is answered as stored without storing it twice.
- Accepted batches go into the central pipeline as a local collector's would (the store and the
  twin), and each one marks its site as just heard from: `<site>/push` is the site's collector in
  the twin's health, so a site whose agent stopped pushing turns stale like one whose collector failed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import polars as pl

from service.api.errors import ApiError
from service.ingest_stream import read_stream
from telemetry.catalog import catalog
from telemetry.jobs import JOB_SCHEMA, conform_jobs
from telemetry.pipeline import CollectorStats, Pipeline
from telemetry.schema import BATCH_SCHEMA, Batch, canonical_labels
from telemetry.serve_target import INGEST_MEDIA_TYPE
from telemetry.stores.base import Store

__all__ = ["INGEST_MEDIA_TYPE", "IngestResult", "Ingestor", "push_collector_name"]

log = logging.getLogger(__name__)

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+=-]{7,199}$")
_FUTURE_S = 86400.0
"""A timestamp further ahead of the server's clock than this is a broken clock, refused (422)."""


def push_collector_name(site: str) -> str:
    """The name of a pushed site's one collector in the twin's topology and health."""
    return f"{site}/push"


@dataclass(frozen=True)
class IngestResult:
    rows: int
    sites: list[str]
    duplicate: bool


def _refuse(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message)


def _decode(body: bytes, schema: Mapping[str, pl.DataType], max_rows: int, what: str) -> pl.DataFrame:
    """The body as a frame of exactly `schema`'s columns (dtypes checked, not coerced)."""
    if not body:
        raise _refuse(422, "empty_body", f"the body is empty: send an Arrow IPC stream of {what}")
    table = read_stream(body, max_rows)
    if table.num_rows == 0:
        raise _refuse(422, "no_rows", f"the stream holds no rows: send at least one of {what}")
    try:
        frame = pl.from_arrow(table)
    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:  # a type polars cannot hold
        raise _refuse(422, "bad_schema", f"not the {what} schema: {exc}") from None
    assert isinstance(frame, pl.DataFrame)
    got = dict(frame.schema)
    missing = [c for c in schema if c not in got]
    extra = [c for c in got if c not in schema]
    if missing or extra:
        parts = [f"missing columns {missing}" if missing else "", f"unknown columns {extra}" if extra else ""]
        raise _refuse(422, "bad_schema", f"not the {what} schema: {'; '.join(p for p in parts if p)}")
    wrong = [f"{c} is {got[c]}, not {dtype}" for c, dtype in schema.items() if got[c] != dtype]
    if wrong:
        raise _refuse(422, "bad_schema", f"not the {what} schema: {'; '.join(wrong)}")
    return frame.select(list(schema))


def _parse_labels(text: str) -> dict[str, str]:
    try:
        labels = json.loads(text)
    except ValueError:
        raise _refuse(422, "bad_labels", f"labels {text[:80]!r} are not a JSON object") from None
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise _refuse(422, "bad_labels", f"labels {text[:80]!r} are not a JSON object of strings")
    return labels


@dataclass
class Ingestor:
    """The checks and the hand-over into the pipeline; thread-safe (routes run in a thread pool)."""

    pipeline: Pipeline
    store: Store
    pushers: Mapping[str, frozenset[str]]
    """Pushed site -> the token names allowed to write it (sites[].push.tokens)."""
    max_rows: int = 100_000
    keep_keys: int = 100_000
    health: dict[str, CollectorStats] = field(default_factory=dict)
    """`<site>/push` -> its freshness, read by the twin like a collector's stats."""
    accepted_samples: int = 0
    accepted_job_rows: int = 0
    duplicates: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for site in self.pushers:
            self.health.setdefault(push_collector_name(site), CollectorStats(push_collector_name(site)))

    def sites_of(self, token_name: str) -> list[str]:
        return sorted(site for site, names in self.pushers.items() if token_name in names)

    # ------------------------------------------------------------ the two routes
    def samples(self, body: bytes, token_name: str, key: str | None) -> IngestResult:
        frame = _decode(body, BATCH_SCHEMA, self.max_rows, "samples (metric, labels, value, ts_ns)")
        if frame.null_count().select(pl.sum_horizontal(pl.col("metric", "labels", "ts_ns"))).item():
            raise _refuse(422, "null_values", "metric, labels and ts_ns must not be null")
        sites, frame = self._check_samples(frame, token_name)
        return self._take(frame.height, sites, token_name, key, lambda: self.pipeline.submit(Batch(frame)), "samples")

    def jobs(self, body: bytes, token_name: str, key: str | None) -> IngestResult:
        frame = _decode(body, JOB_SCHEMA, self.max_rows, "job-history rows (JOB_SCHEMA)")
        frame = conform_jobs(frame).collect()
        if frame["site"].null_count() or frame["job_id"].null_count():
            raise _refuse(422, "null_values", "every job row needs its site and job_id")
        sites = sorted(frame["site"].unique().to_list())
        self._check_sites(sites, token_name)

        def submit() -> bool:
            self.pipeline.submit_jobs(frame)
            return True

        return self._take(frame.height, sites, token_name, key, submit, "job rows")

    # ------------------------------------------------------------ checks
    def _check_sites(self, sites: list[str], token_name: str) -> None:
        allowed = self.sites_of(token_name)
        foreign = [s for s in sites if s not in allowed]
        if foreign:
            mine = f"only {', '.join(allowed)}" if allowed else "no site (list it in sites[].push.tokens)"
            raise _refuse(403, "foreign_site", f"token {token_name!r} may push {mine}, not {', '.join(foreign)}")

    def _check_samples(self, frame: pl.DataFrame, token_name: str) -> tuple[list[str], pl.DataFrame]:
        unknown = sorted(m for m in frame["metric"].unique().to_list() if m not in catalog)
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise _refuse(422, "unknown_metric", f"metrics not in the catalog: {shown}")
        now_ns = time.time_ns()
        ts = frame["ts_ns"]
        if ts.min() <= 0 or ts.max() > now_ns + int(_FUTURE_S * 1e9):  # type: ignore[operator]
            raise _refuse(422, "bad_timestamp", "ts_ns must be unix nanoseconds, at most a day ahead of the server")
        canonical: dict[str, str] = {}
        sites: set[str] = set()
        for metric, text in frame.select("metric", "labels").unique().iter_rows():
            labels = _parse_labels(text)
            site = labels.get("site")
            if not site:
                raise _refuse(422, "no_site", f"a {metric} sample has no site label")
            sites.add(site)
            extra = set(labels) - catalog.get(metric).allowed_labels
            if extra:
                raise _refuse(422, "bad_labels", f"{metric}: labels {sorted(extra)} are not allowed by the catalog")
            canonical[text] = canonical_labels(labels)
        self._check_sites(sorted(sites), token_name)
        if any(k != v for k, v in canonical.items()):  # one label set, one series, however it was spelled
            frame = frame.with_columns(pl.col("labels").replace_strict(canonical))
        return sorted(sites), frame

    # ------------------------------------------------------------ the hand-over
    def _take(
        self, rows: int, sites: list[str], token_name: str, key: str | None, submit: Callable[[], bool], what: str
    ) -> IngestResult:
        if key is not None and not KEY_RE.match(key):
            raise _refuse(422, "bad_idempotency_key", "Idempotency-Key must be 8-200 letters, digits or _.:@/+=-")
        scoped = f"{token_name}/{key}" if key is not None else None
        with self._lock:  # a repeat racing its original waits for it, then is seen as a repeat
            if scoped is not None and self._seen(scoped):
                self.duplicates += 1
                self._heard(sites, 0)
                return IngestResult(rows, sites, duplicate=True)
            if not submit():
                raise ApiError(
                    503,
                    "overloaded",
                    f"the pipeline's buffer is full; {rows} {what} not taken, retry later",
                    headers={"Retry-After": "1"},
                )
            if scoped is not None:
                try:
                    self.store.remember_ingest_key(scoped, ",".join(sites), rows, self.keep_keys)
                except Exception:  # the batch is taken: say so; only a repeat of it would be stored twice
                    log.exception("ingest key %s not remembered", scoped)
            if what == "samples":
                self.accepted_samples += rows
            else:
                self.accepted_job_rows += rows
            self._heard(sites, rows)
        return IngestResult(rows, sites, duplicate=False)

    def _seen(self, scoped: str) -> bool:
        try:
            return self.store.ingest_key_seen(scoped)
        except Exception as exc:
            log.error("ingest keys unreadable: %s", exc)
            raise ApiError(
                503, "store_unavailable", "the store cannot be read; retry later", headers={"Retry-After": "1"}
            ) from None

    def _heard(self, sites: list[str], rows: int) -> None:
        now = time.time()
        for site in sites:
            stats = self.health.get(push_collector_name(site))
            if stats is not None:
                stats.collections += 1
                stats.samples += rows
                stats.last_success_s = now
