"""The pipeline: runs collectors on their intervals, labels and batches their samples, and hands
batches to sinks through one bounded buffer.

Why this shape:
- A collector only implements `gather(emit)`; interval, timeout, labels, errors and self-metrics
  live here once (Telegraf's running_input idea).
- Each collector has one loop thread and one gather thread. A gather that exceeds its timeout is
  reported as an error and left to finish; while it is still running the collector's next cycles
  are skipped (and counted), so a hanging source never piles up threads or blocks the others.
- The buffer between collectors and sinks is bounded in samples. When sinks fall behind, new
  batches are dropped and counted (`ctwin_pipeline_dropped_samples_total{reason="buffer_full"}`)
  instead of growing memory.
- One sink may be durable (the store, `durable = True`): "written" means it acknowledged the
  samples. What it refuses waits in a bounded backlog and is retried (telemetry.durable), while
  the other sinks (the twin) go on receiving every batch at once.
- A failing sink is logged once per episode of failures, never once per batch.
- `stop()` stops the loops, then the writer drains the buffer: a final flush.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from telemetry.catalog import selfmetrics as sm
from telemetry.catalog._core import Metric
from telemetry.durable import DurableWriter
from telemetry.redact import redact
from telemetry.schema import Batch, Sample, now_ns
from telemetry.sinks import Sink, SinkSet, StoreSink

log = logging.getLogger(__name__)
_MAX_JOB_FRAMES = 256

__all__ = ["CollectorStats", "Gatherer", "Pipeline", "RunningCollector", "Sink", "StoreSink"]


class Gatherer(Protocol):
    """What the pipeline needs of a collector (collectors.base.Collector satisfies it)."""

    def gather(self, emit: Callable[..., None]) -> None: ...


_Gathered = tuple[list[Sample], Exception | None, pl.DataFrame | None]


@dataclass
class CollectorStats:
    """Health of one running collector, readable at any time (CLI, /readyz, /metrics)."""

    name: str
    collections: int = 0
    errors: int = 0
    skipped: int = 0
    samples: int = 0
    last_duration_s: float = 0.0
    last_success_s: float | None = None
    last_error: str | None = None
    last_error_s: float | None = None
    limits_exceeded: dict[str, int] = field(default_factory=dict)
    """Refused collections by the limit their source exceeded (an error with a `limit` name)."""

    def stale_for(self, now_s: float | None = None) -> float | None:
        if self.last_success_s is None:
            return None
        return (now_s if now_s is not None else time.time()) - self.last_success_s


class _Emitter:
    """Collects one gather's samples with the wrapper's labels merged in (the collector's win)."""

    __slots__ = ("base_labels", "samples", "strict", "ts_ns")

    def __init__(self, base_labels: Mapping[str, str], ts_ns: int, strict: bool) -> None:
        self.base_labels = dict(base_labels)
        self.ts_ns = ts_ns
        self.strict = strict
        self.samples: list[Sample] = []

    def __call__(
        self, metric: Metric, value: float, labels: Mapping[str, str] | None = None, ts_ns: int | None = None
    ) -> None:
        if labels:
            if self.strict and not metric.external:
                extra = set(labels) - metric.allowed_labels
                if extra:
                    raise ValueError(f"{metric.name}: labels {sorted(extra)} are not allowed by the catalog")
            merged = {**self.base_labels, **labels}
        else:
            merged = self.base_labels
        self.samples.append(Sample(metric.name, float(value), merged, ts_ns if ts_ns is not None else self.ts_ns))


class RunningCollector:
    """One configured collector instance: interval, timeout, labels, self-metrics."""

    def __init__(
        self,
        name: str,
        collector: Gatherer,
        *,
        interval_s: float,
        timeout_s: float,
        labels: Mapping[str, str],
        strict_labels: bool = True,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError(f"{name}: interval and timeout must be positive")
        self.name = name
        self.collector = collector
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.labels = dict(labels)
        self.strict_labels = strict_labels
        self.stats = CollectorStats(name)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gather-{name}")
        self._inflight: Future[_Gathered] | None = None
        self._jobs: pl.DataFrame | None = None

    def _gather(self, ts_ns: int) -> _Gathered:
        """Samples, the error if any, and job rows. An error marked `partial = True` (some sources
        of the collector failed, others answered) keeps what was emitted; any other error discards it.
        Job rows are read in the gather thread, right after the gather that produced them."""
        emit = _Emitter(self.labels, ts_ns, self.strict_labels)
        try:
            self.collector.gather(emit)
        except Exception as exc:
            if not getattr(exc, "partial", False):
                return [], exc, None
            return emit.samples, exc, self._job_rows()
        return emit.samples, None, self._job_rows()

    def _job_rows(self) -> pl.DataFrame | None:
        updates = getattr(self.collector, "job_updates", None)
        rows = updates() if callable(updates) else None
        if rows is None or rows.is_empty():
            return None
        site = self.labels.get("site")
        if site is not None:  # the configured site names the rows, whatever the source called itself
            rows = rows.with_columns(pl.lit(site, pl.String).alias("site"))
        return rows

    def take_jobs(self) -> pl.DataFrame | None:
        """Job rows of the last collection, once."""
        jobs, self._jobs = self._jobs, None
        return jobs

    def collect(self) -> Batch:
        """Run one collection; never raises: failures are recorded in `stats` and self-metrics."""
        stats = self.stats
        started_wall = time.time()
        if self._inflight is not None and not self._inflight.done():
            stats.skipped += 1
            stats.errors += 1
            self._fail(f"previous collection still running (over {self.timeout_s:g}s)", started_wall)
            return self._self_batch()
        started = time.perf_counter()
        self._inflight = self._executor.submit(self._gather, now_ns())
        samples: list[Sample] = []
        error: Exception | None = None
        try:
            samples, error, self._jobs = self._inflight.result(timeout=self.timeout_s)
        except FutureTimeout:
            error = TimeoutError(f"timed out after {self.timeout_s:g}s")
        except Exception as exc:  # the plugin boundary: report, never propagate
            error = exc
        gathered: Batch | None = None
        if samples:
            try:
                gathered = Batch.from_samples(samples)
            except Exception as exc:  # a sample no batch can hold (a timestamp past 64 bits): the
                samples, error = [], exc  # collector's fault, and it must not end this loop's thread
        if isinstance(error, TimeoutError):
            stats.errors += 1
            self._fail(str(error), started_wall)
        elif error is not None:
            stats.errors += 1
            limit = getattr(error, "limit", None)  # e.g. the scraper's sample_limit: counted by name
            if isinstance(limit, str):
                stats.limits_exceeded[limit] = stats.limits_exceeded.get(limit, 0) + 1
            self._fail(f"{type(error).__name__}: {error}", started_wall)
        else:
            stats.last_success_s = started_wall
        stats.samples += len(samples)
        stats.collections += 1
        stats.last_duration_s = time.perf_counter() - started
        own = self._self_batch()
        return own if gathered is None else Batch.concat([gathered, own])

    def _fail(self, message: str, when: float) -> None:
        # the one place a collector's error is recorded: from here it reaches the log, /v1/sites,
        # the Dash collectors table and `ctwin collect`, so credentials in it go here (a URL's
        # password, a ?token=, an Authorization header)
        message = redact(message)
        self.stats.last_error = message
        self.stats.last_error_s = when
        log.warning("collector %s: %s", self.name, message)

    def _self_samples(self) -> list[Sample]:
        labels = {**self.labels, "collector": self.name}
        ts = now_ns()
        out = [
            Sample(sm.COLLECTOR_DURATION.name, self.stats.last_duration_s, labels, ts),
            Sample(sm.COLLECTOR_ERRORS.name, float(self.stats.errors), labels, ts),
            Sample(sm.COLLECTOR_SAMPLES.name, float(self.stats.samples), labels, ts),
        ]
        if self.stats.last_success_s is not None:
            out.append(Sample(sm.COLLECTOR_LAST_SUCCESS.name, self.stats.last_success_s, labels, ts))
        for limit, n in self.stats.limits_exceeded.items():
            out.append(Sample(sm.SCRAPE_LIMIT_EXCEEDED.name, float(n), {**labels, "limit": limit}, ts))
        return out

    def _self_batch(self) -> Batch:
        return Batch.from_samples(self._self_samples())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.collector, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing is best effort
                log.exception("collector %s: close failed", self.name)


class Pipeline:
    """Collector loops → bounded buffer → writer thread → sinks."""

    def __init__(
        self,
        collectors: Sequence[RunningCollector],
        sinks: Iterable[Sink],
        *,
        buffer_samples: int = 2_000_000,
        max_batch_samples: int = 500_000,
        retry_samples: int = 500_000,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.collectors = list(collectors)
        self.sinks = list(sinks)
        self.buffer_samples = buffer_samples
        self.max_batch_samples = max_batch_samples
        self.labels = dict(labels or {})
        self._sinks = SinkSet(self.sinks, retry_samples=retry_samples, max_batch_samples=max_batch_samples)
        self.accepted_samples = 0
        """Samples taken into the buffer: eventually written, dropped (counted) or still waiting."""
        self.dropped_full = 0
        self.dropped_job_frames = 0
        self._buffer: deque[Batch] = deque()
        self._job_buffer: deque[pl.DataFrame] = deque()
        self._buffered = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._writer: threading.Thread | None = None
        self._writer_done = threading.Event()
        self._producers_done = threading.Event()

    # ------------------------------------------------------------ buffer
    def submit(self, batch: Batch) -> bool:
        """Queue a batch for the sinks; False (and counted) when the buffer is full."""
        n = len(batch)
        if n == 0:
            return True
        with self._cond:
            if self._buffered + n > self.buffer_samples:
                self.dropped_full += n
                return False
            self._buffer.append(batch)
            self._buffered += n
            self.accepted_samples += n
            self._cond.notify()
        return True

    def submit_jobs(self, jobs: pl.DataFrame) -> None:
        """Queue job-history rows for the sinks. Job snapshots replace each other (upserts), so
        at most one per collector is useful: beyond the bound the oldest is dropped and counted."""
        with self._cond:
            if len(self._job_buffer) >= _MAX_JOB_FRAMES:
                self.dropped_job_frames += 1
                self._job_buffer.popleft()
            self._job_buffer.append(jobs)
            self._cond.notify()

    @property
    def buffered_samples(self) -> int:
        return self._buffered

    @property
    def durable(self) -> DurableWriter | None:
        """The store's writer: its health, backlog and counts (None without a durable sink)."""
        return self._sinks.durable

    @property
    def written_samples(self) -> int:
        """Samples the store acknowledged (durable); without a store, those every sink took."""
        return self._sinks.written_samples

    @property
    def written_job_rows(self) -> int:
        return self._sinks.written_job_rows

    @property
    def dropped_samples(self) -> int:
        """Every sample lost: refused by a full buffer, or given up after the store refused it."""
        return self.dropped_full + self.dropped_store

    @property
    def dropped_store(self) -> int:
        return self._sinks.dropped_samples

    @property
    def sink_errors(self) -> int:
        """Failed sink writes, retries of what the store refused included."""
        return self._sinks.errors

    @property
    def last_sink_error(self) -> str | None:
        return self._sinks.last_error

    def store_problem(self) -> str | None:
        """Why the store makes the service not ready (writes failing since when, and why), or None."""
        return self._sinks.problem()

    def _take(self) -> tuple[Batch | None, list[pl.DataFrame]] | None:
        """Wait for data; coalesce queued batches up to max_batch_samples into one append. While
        the store has a backlog, an idle wait returns (None, []) so the writer can retry it."""
        with self._cond:
            while not self._buffer and not self._job_buffer:
                if self._producers_done.is_set():  # only then can nothing more arrive
                    return None
                self._cond.wait(0.5)
                if not self._buffer and not self._job_buffer and self._sinks.retrying:
                    return None, []
            jobs = list(self._job_buffer)
            self._job_buffer.clear()
            taken: list[Batch] = []
            size = 0
            while self._buffer and (not taken or size + len(self._buffer[0]) <= self.max_batch_samples):
                b = self._buffer.popleft()
                taken.append(b)
                size += len(b)
            self._buffered -= size
        if not taken:
            return None, jobs
        return (taken[0] if len(taken) == 1 else Batch.concat(taken)), jobs

    def _writer_loop(self) -> None:
        try:
            while True:
                taken = self._take()
                if taken is None:
                    break
                batch, jobs = taken
                if jobs:
                    self._sinks.write_jobs(pl.concat(jobs, how="vertical_relaxed") if len(jobs) > 1 else jobs[0])
                if batch is not None:
                    self._sinks.write(batch)
                self._sinks.retry()
            self._sinks.drain()
        finally:
            self._writer_done.set()

    # ------------------------------------------------------------ loops
    def _collector_loop(self, rc: RunningCollector) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            self.submit(rc.collect())
            jobs = rc.take_jobs()
            if jobs is not None:
                self.submit_jobs(jobs)
            self._submit_pipeline_metrics()
            next_due += rc.interval_s
            delay = next_due - time.monotonic()
            if delay < 0:  # overran: skip the missed ticks rather than bursting
                next_due = time.monotonic()
                delay = 0
            if self._stop.wait(delay):
                return

    def _submit_pipeline_metrics(self) -> None:
        ts = now_ns()
        samples = [
            Sample(sm.PIPELINE_DROPPED.name, float(self.dropped_full), {**self.labels, "reason": "buffer_full"}, ts),
            Sample(sm.PIPELINE_DROPPED.name, float(self.dropped_store), {**self.labels, "reason": "store_failed"}, ts),
        ]
        if self.durable is not None:  # kept and retried while the store fails: its history shows the outage
            samples.append(Sample(sm.STORE_HEALTHY.name, 1.0 if self.durable.healthy else 0.0, self.labels, ts))
        self.submit(Batch.from_samples(samples))

    def start(self) -> None:
        self._writer = threading.Thread(target=self._writer_loop, name="ctwin-writer", daemon=True)
        self._writer.start()
        for rc in self.collectors:
            t = threading.Thread(target=self._collector_loop, args=(rc,), name=f"collect-{rc.name}", daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def running(self) -> bool:
        """Started, not stopped, and every collector loop alive."""
        return bool(self._writer) and not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop collecting, then flush everything buffered to the sinks (bounded by timeout_s)."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._producers_done.set()
        with self._cond:
            self._cond.notify_all()
        if self._writer is not None:
            self._writer_done.wait(max(0.0, deadline - time.monotonic()))
        for rc in self.collectors:
            rc.close()

    def collect_once(self) -> list[Batch]:
        """One collection of every collector, concurrently (for `ctwin collect --once`)."""
        results: list[Batch] = [Batch.empty()] * len(self.collectors)

        def run(i: int, rc: RunningCollector) -> None:
            results[i] = rc.collect()

        threads = [threading.Thread(target=run, args=(i, rc)) for i, rc in enumerate(self.collectors)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def health(self) -> dict[str, object]:
        durable = self.durable
        episode = durable.episode if durable is not None else None  # read once: the writer may end it
        return {
            "accepted_samples": self.accepted_samples,
            "buffered_samples": self._buffered,
            "dropped_samples": self.dropped_samples,
            "dropped_by_reason": {"buffer_full": self.dropped_full, "store_failed": self.dropped_store},
            "written_samples": self.written_samples,
            "written_job_rows": self.written_job_rows,
            "dropped_job_frames": self.dropped_job_frames,
            "sink_errors": self.sink_errors,
            "last_sink_error": self.last_sink_error,
            "store": None
            if durable is None
            else {
                "healthy": durable.healthy,
                "failing_since_s": episode.since_s if episode is not None else None,
                "problem": durable.problem(),
                "retry_samples": durable.backlog_samples,
                "retry_job_frames": durable.backlog_job_frames,
                "dropped_job_rows": durable.dropped_job_rows,
            },
            "collectors": {rc.name: vars(rc.stats).copy() for rc in self.collectors},
        }
