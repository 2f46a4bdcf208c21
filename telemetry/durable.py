"""Writes to the durable sink (the store): counted when the store acknowledges them, kept for a
bounded retry when it refuses them, and each run of failures logged twice, not once per batch.

Why: on a full disk the store refuses every append. The pipeline used to count those samples as
written, stay ready and log a traceback per batch (12,190 samples, 275 tracebacks). Now:

- "written" means acknowledged: `append` returned, so the batch survives a crash.
- A refused batch is kept, in arrival order, behind any already waiting, and retried with a
  backoff (0.5 s doubling to 5 s). Batches that arrive meanwhile queue behind it instead of
  being tried one by one. The backlog is bounded in samples (`pipeline.retry_samples`); beyond
  it the oldest waiting batches are dropped and counted (`reason="store_failed"`), so memory stays
  bounded however long the disk stays full. Job-history frames wait the same way (at most 256).
- A failure episode (from the first refused write to the next acknowledged one) logs one warning
  with the first error and one info line with what it cost. `problem()` names it for `/readyz`.

Nothing acknowledged is touched here: the store's own transactions keep it (telemetry.stores).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from telemetry.redact import redact
from telemetry.schema import Batch

__all__ = ["DurableWriter", "Episode", "FailureLog"]

log = logging.getLogger(__name__)

_MAX_JOB_FRAMES = 256
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0


def describe(exc: BaseException) -> str:
    """One line for an error, credentials masked (a sink's error may name its URL)."""
    return redact(f"{type(exc).__name__}: {exc}").replace("\n", " ")


def utc(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Episode:
    """One run of failed writes to a sink, from the first failure to the next success."""

    since_s: float
    first_error: str
    last_error: str
    failed_writes: int = 1
    held_batches: int = 0
    """Batches that could not be written when they came (refused, or queued behind a refused one)."""
    held_samples: int = 0
    held_job_rows: int = 0
    dropped_samples: int = 0
    dropped_job_rows: int = 0


class FailureLog:
    """Logs a sink's failures once per episode: a warning when they start, info when they end."""

    def __init__(self, name: str, clock: Callable[[], float] = time.time, *, traceback: bool = False) -> None:
        self.name = name
        self.clock = clock
        self.traceback = traceback
        self.episode: Episode | None = None

    def failed(self, exc: BaseException, what: str) -> str:
        message = describe(exc)
        if self.episode is None:
            self.episode = Episode(self.clock(), message, message)
            log.warning(
                "%s writes failing: %s; %s. Logged once until a write succeeds again",
                self.name,
                message,
                what,
                exc_info=exc if self.traceback else None,
            )
        else:
            self.episode.last_error = message
            self.episode.failed_writes += 1
            log.debug("%s write failed again: %s", self.name, message)
        return message

    def succeeded(self, outcome: Callable[[Episode], str] | None = None) -> None:
        ep, self.episode = self.episode, None
        if ep is None:
            return
        took = max(0.0, self.clock() - ep.since_s)
        detail = outcome(ep) if outcome else "what those writes carried was not given to it"
        log.info(
            "%s writes succeed again after %.0f s and %d failed writes: %s", self.name, took, ep.failed_writes, detail
        )


class DurableWriter:
    """The pipeline's writer for the sink whose acknowledgement means "written" (the store).
    Called from the pipeline's one writer thread only; its counters are read from any thread."""

    def __init__(
        self,
        sink: Any,
        *,
        backlog_samples: int,
        max_batch_samples: int = 500_000,
        name: str = "store",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.name = name
        self.backlog_limit = backlog_samples
        self.max_batch_samples = max_batch_samples
        self.monotonic = monotonic
        self.failures = FailureLog(name, clock)
        self.written_samples = 0
        self.written_job_rows = 0
        self.dropped_samples = 0
        self.dropped_job_rows = 0
        self.failed_writes = 0
        self.last_error: str | None = None
        self._batches: deque[Batch] = deque()
        self._jobs: deque[pl.DataFrame] = deque()
        self.backlog_samples = 0
        self._delay = RETRY_MIN_S
        self._next_try = 0.0

    # ------------------------------------------------------------ state
    @property
    def episode(self) -> Episode | None:
        return self.failures.episode

    @property
    def healthy(self) -> bool:
        return self.failures.episode is None

    @property
    def backlog_job_frames(self) -> int:
        return len(self._jobs)

    def problem(self) -> str | None:
        """Why the service is not ready, or None: the episode's start, scale and latest error."""
        ep = self.failures.episode
        if ep is None:
            return None
        dropped = f", {ep.dropped_samples} dropped" if ep.dropped_samples else ""
        return (
            f"{self.name} writes failing since {utc(ep.since_s)} ({ep.failed_writes} failed writes;"
            f" {self.backlog_samples} samples waiting to be retried{dropped}): {ep.last_error}"
        )

    # ------------------------------------------------------------ writes
    def write(self, batch: Batch) -> None:
        if not self.healthy:  # behind the ones already waiting, in order
            self._hold_batch(batch)
            self.retry()
            return
        try:
            self.sink.write(batch)
        except Exception as exc:
            self._failed(exc)
            self._hold_batch(batch)
            return
        self.written_samples += len(batch)

    def write_jobs(self, jobs: pl.DataFrame) -> None:
        write_jobs = getattr(self.sink, "write_jobs", None)
        if not callable(write_jobs):
            return
        if not self.healthy:
            self._hold_jobs(jobs)
            self.retry()
            return
        try:
            write_jobs(jobs)
        except Exception as exc:
            self._failed(exc)
            self._hold_jobs(jobs)
            return
        self.written_job_rows += jobs.height

    def retry(self, *, force: bool = False) -> None:
        """Write what is waiting, oldest first, if the backoff allows (`force`: now). The episode
        ends when all of it is written; a refusal puts the next try further off."""
        if self.healthy or (not force and self.monotonic() < self._next_try):
            return
        try:
            while self._jobs:
                self.sink.write_jobs(self._jobs[0])
                self.written_job_rows += self._jobs.popleft().height
            while self._batches:
                taken, count, size = self._head()
                self.sink.write(taken)
                for _ in range(count):
                    self._batches.popleft()
                self.backlog_samples -= size
                self.written_samples += size
        except Exception as exc:
            self._failed(exc)
            return
        self._delay = RETRY_MIN_S
        self.failures.succeeded(self._outcome)

    def drain(self) -> None:
        """At shutdown: one last try, then what is still waiting is dropped, counted and logged."""
        self.retry(force=True)
        if self.healthy:
            return
        samples, rows = self.backlog_samples, sum(f.height for f in self._jobs)
        self._drop_all()
        log.warning(
            "%s: %d samples and %d job rows could not be written before shutdown: %s",
            self.name,
            samples,
            rows,
            self.last_error,
        )

    # ------------------------------------------------------------ internals
    def _head(self) -> tuple[Batch, int, int]:
        """The oldest waiting batches coalesced up to max_batch_samples (at least one): the
        batch, how many it took and their samples."""
        taken: list[Batch] = []
        size = 0
        for b in self._batches:
            if taken and size + len(b) > self.max_batch_samples:
                break
            taken.append(b)
            size += len(b)
        return (taken[0] if len(taken) == 1 else Batch.concat(taken)), len(taken), size

    def _failed(self, exc: Exception) -> None:
        self.failed_writes += 1
        self.last_error = self.failures.failed(
            exc, f"up to {self.backlog_limit} samples wait in memory to be retried; /readyz answers 503 meanwhile"
        )
        self._next_try = self.monotonic() + self._delay
        self._delay = min(self._delay * 2, RETRY_MAX_S)

    def _hold_batch(self, batch: Batch) -> None:
        ep = self.failures.episode
        assert ep is not None
        n = len(batch)
        ep.held_batches += 1
        ep.held_samples += n
        self._batches.append(batch)
        self.backlog_samples += n
        while self.backlog_samples > self.backlog_limit and self._batches:
            oldest = len(self._batches.popleft())
            self.backlog_samples -= oldest
            self.dropped_samples += oldest
            ep.dropped_samples += oldest

    def _hold_jobs(self, jobs: pl.DataFrame) -> None:
        ep = self.failures.episode
        assert ep is not None
        ep.held_job_rows += jobs.height
        self._jobs.append(jobs)
        if len(self._jobs) > _MAX_JOB_FRAMES:
            oldest = self._jobs.popleft().height
            self.dropped_job_rows += oldest
            ep.dropped_job_rows += oldest

    def _drop_all(self) -> None:
        ep = self.failures.episode
        rows = sum(f.height for f in self._jobs)
        self.dropped_samples += self.backlog_samples
        self.dropped_job_rows += rows
        if ep is not None:
            ep.dropped_samples += self.backlog_samples
            ep.dropped_job_rows += rows
        self._batches.clear()
        self._jobs.clear()
        self.backlog_samples = 0

    @staticmethod
    def _outcome(ep: Episode) -> str:
        written = ep.held_samples - ep.dropped_samples
        text = (
            f"{ep.held_batches} batches ({ep.held_samples} samples) were held back; {written} samples written"
            f" on retry, {ep.dropped_samples} dropped"
        )
        if ep.held_job_rows:
            text += f"; {ep.held_job_rows} job rows held back, {ep.dropped_job_rows} dropped"
        return text
