"""The sinks' side of the pipeline: what a sink is, the store as one, and how the writer thread
hands each batch to all of them.

Why a module of its own: what happens when a sink fails is policy, and it differs by sink. The
durable sink (the store) defines "written"; what it refuses waits and is retried
(telemetry.durable). A live sink (the twin) gets every batch at once and is never replayed to:
a batch that failed there is stale by the next one, and replaying old points into a
latest-value view would move it backwards. Either way a failure is logged once per episode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import polars as pl

from telemetry.durable import DurableWriter, FailureLog
from telemetry.redact import redact
from telemetry.schema import Batch
from telemetry.stores.base import Store

__all__ = ["Sink", "SinkSet", "StoreSink"]


class Sink(Protocol):
    """Receives every batch; a sink that also has `write_jobs(frame)` receives job-history rows.
    A sink with `durable = True` is the one whose acknowledgement counts as written (the store)."""

    def write(self, batch: Batch) -> None: ...


@dataclass
class StoreSink:
    """Adapts a store to the Sink protocol and tracks write latency. Durable: what it takes is written."""

    store: Store
    last_write_s: float = field(default=0.0)
    durable: ClassVar[bool] = True

    def write(self, batch: Batch) -> None:
        started = time.perf_counter()
        self.store.append(batch)
        self.last_write_s = time.perf_counter() - started

    def write_jobs(self, jobs: pl.DataFrame) -> None:
        self.store.append_jobs(jobs)


class SinkSet:
    """Every sink, in order, as the pipeline's one writer thread sees them. Counters are read
    from any thread (the API, /metrics)."""

    def __init__(self, sinks: Iterable[Sink], *, retry_samples: int, max_batch_samples: int) -> None:
        self.sinks = list(sinks)
        durable = [s for s in self.sinks if getattr(s, "durable", False)]
        if len(durable) > 1:
            raise ValueError("a pipeline has at most one durable sink (the store)")
        self.durable = (
            DurableWriter(durable[0], backlog_samples=retry_samples, max_batch_samples=max_batch_samples)
            if durable
            else None
        )
        self._failures = {id(s): FailureLog(f"sink {type(s).__name__}", traceback=True) for s in self.sinks}
        self.errors = 0
        """Failed writes, retries included, over every sink."""
        self.last_error: str | None = None
        self._handed_samples = 0
        self._handed_job_rows = 0

    # ------------------------------------------------------------ counters
    @property
    def written_samples(self) -> int:
        """Samples the durable sink acknowledged; without one, those every sink took."""
        return self.durable.written_samples if self.durable is not None else self._handed_samples

    @property
    def written_job_rows(self) -> int:
        return self.durable.written_job_rows if self.durable is not None else self._handed_job_rows

    @property
    def dropped_samples(self) -> int:
        """Samples the store refused and that were given up (backlog full, or shutdown)."""
        return self.durable.dropped_samples if self.durable is not None else 0

    @property
    def retrying(self) -> bool:
        return self.durable is not None and not self.durable.healthy

    def problem(self) -> str | None:
        return self.durable.problem() if self.durable is not None else None

    # ------------------------------------------------------------ writes
    def write(self, batch: Batch) -> None:
        took_all = True
        for sink in self.sinks:
            if self.durable is not None and sink is self.durable.sink:
                self._through_durable(lambda d: d.write(batch))
            elif not self._live(sink, sink.write, batch, f"{len(batch)} samples not given to it"):
                took_all = False
        if took_all:
            self._handed_samples += len(batch)

    def write_jobs(self, jobs: pl.DataFrame) -> None:
        took_all = True
        for sink in self.sinks:
            if self.durable is not None and sink is self.durable.sink:
                self._through_durable(lambda d: d.write_jobs(jobs))
                continue
            write_jobs = getattr(sink, "write_jobs", None)
            lost = f"{jobs.height} job rows not given to it"
            if callable(write_jobs) and not self._live(sink, write_jobs, jobs, lost):
                took_all = False
        if took_all:
            self._handed_job_rows += jobs.height

    def retry(self) -> None:
        """Retry what the store refused, if its backoff allows."""
        if self.retrying:
            self._through_durable(lambda d: d.retry())

    def drain(self) -> None:
        """At shutdown: a last try for what the store refused; the rest is dropped and counted."""
        if self.durable is not None:
            self._through_durable(lambda d: d.drain())

    # ------------------------------------------------------------ internals
    def _through_durable(self, call: Callable[[DurableWriter], None]) -> None:
        durable = self.durable
        assert durable is not None
        before = durable.failed_writes
        call(durable)
        if durable.failed_writes > before:
            self.errors += durable.failed_writes - before
            self.last_error = redact(f"{type(durable.sink).__name__}: {durable.last_error}")

    def _live(self, sink: object, write: Callable[[Any], object], data: object, lost: str) -> bool:
        failures = self._failures[id(sink)]
        try:
            write(data)
        except Exception as exc:
            message = failures.failed(exc, lost)
            self.errors += 1
            self.last_error = redact(f"{type(sink).__name__}: {message}")
            return False
        failures.succeeded()
        return True
