"""Writes the store refuses (issue 13, item 7): not counted as written, kept for a bounded retry,
logged once per episode. The real full disk is in test_store_disk_full.py and
tests/service/test_disk_full.py; here a store double refuses on demand and a fake clock runs the
backoff, so each rule is checked exactly."""

from __future__ import annotations

import errno
import logging
import time

import polars as pl
import pytest

from telemetry.durable import RETRY_MAX_S, DurableWriter
from telemetry.pipeline import Pipeline
from telemetry.schema import Batch, Sample


class FlakyStore:
    """A durable sink that refuses every write while `full` is set, as a full disk does."""

    durable = True

    def __init__(self) -> None:
        self.full = False
        self.batches: list[Batch] = []
        self.jobs: list[pl.DataFrame] = []

    def write(self, batch: Batch) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.batches.append(batch)

    def write_jobs(self, jobs: pl.DataFrame) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.jobs.append(jobs)

    def values(self) -> list[float]:
        return [v for b in self.batches for v in b.frame["value"].to_list()]


class Twin:
    def __init__(self) -> None:
        self.samples = 0

    def write(self, batch: Batch) -> None:
        self.samples += len(batch)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def batch(*values: float) -> Batch:
    return Batch.from_samples([Sample("m", v, {"i": str(int(v))}, 1_000 + int(v)) for v in values])


def writer(store: FlakyStore, clock: Clock, backlog: int = 1_000) -> DurableWriter:
    return DurableWriter(store, backlog_samples=backlog, clock=clock, monotonic=clock)


def test_refused_samples_are_not_written_until_a_retry_succeeds_in_their_order() -> None:
    store, clock = FlakyStore(), Clock()
    w = writer(store, clock)
    w.write(batch(1, 2))
    store.full = True
    w.write(batch(3))
    w.write(batch(4, 5))  # queued behind 3, not tried on its own
    assert w.written_samples == 2 and w.backlog_samples == 3
    assert not w.healthy and w.failed_writes == 1
    w.retry()  # the backoff has not passed: not even tried
    assert w.failed_writes == 1
    clock.t += 0.6
    w.retry()
    assert w.failed_writes == 2 and w.written_samples == 2
    store.full = False
    w.retry()  # the next try waits for the doubled backoff
    assert not w.healthy
    clock.t += 1.1
    w.retry()
    assert w.healthy and w.written_samples == 5 and w.backlog_samples == 0
    assert store.values() == [1, 2, 3, 4, 5]
    assert w.problem() is None


def test_the_backlog_is_bounded_and_what_overflows_is_dropped_oldest_first_and_counted() -> None:
    store, clock = FlakyStore(), Clock()
    w = writer(store, clock, backlog=4)
    store.full = True
    for v in range(10):
        w.write(batch(float(v)))
        assert w.backlog_samples <= 4
    assert w.dropped_samples == 6 and w.written_samples == 0
    store.full = False
    clock.t += RETRY_MAX_S
    w.retry()
    assert store.values() == [6, 7, 8, 9]  # the newest four
    assert w.written_samples + w.dropped_samples == 10


def test_a_backlog_of_zero_drops_at_once() -> None:
    store, clock = FlakyStore(), Clock()
    w = writer(store, clock, backlog=0)
    store.full = True
    w.write(batch(1, 2, 3))
    assert w.dropped_samples == 3 and w.backlog_samples == 0 and not w.healthy


def test_an_episode_is_logged_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="telemetry")
    store, clock = FlakyStore(), Clock()
    w = writer(store, clock, backlog=100)
    store.full = True
    for v in range(200):  # 200 batches over 50 s: a dozen failed writes, the backoff grown to 5 s
        w.write(batch(float(v)))
        clock.t += 0.25
    assert w.failed_writes > 10
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "store writes failing: OSError: [Errno 28] No space left on device" in warnings[0].getMessage()
    assert warnings[0].exc_info is None  # the error, not a traceback
    problem = w.problem()
    assert problem is not None and problem.startswith("store writes failing since ")
    assert "No space left on device" in problem and "100 samples waiting to be retried, 100 dropped" in problem
    store.full = False
    clock.t += RETRY_MAX_S
    w.write(batch(999))
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1, infos
    assert "store writes succeed again after 55 s and" in infos[0]
    assert "201 batches (201 samples) were held back; 100 samples written on retry, 101 dropped" in infos[0]
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.WARNING]


def test_job_rows_wait_and_are_retried_too() -> None:
    store, clock = FlakyStore(), Clock()
    w = writer(store, clock)
    store.full = True
    w.write_jobs(pl.DataFrame({"site": ["s"], "job_id": ["1"]}))
    assert w.written_job_rows == 0 and w.backlog_job_frames == 1
    store.full = False
    clock.t += 1
    w.retry()
    assert w.written_job_rows == 1 and len(store.jobs) == 1 and w.healthy


def test_at_shutdown_what_still_waits_is_dropped_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    store, clock = FlakyStore(), Clock()
    w = writer(store, clock)
    store.full = True
    w.write(batch(1, 2, 3))
    w.drain()
    assert w.dropped_samples == 3 and w.backlog_samples == 0
    assert "store: 3 samples and 0 job rows could not be written before shutdown" in caplog.text


def test_the_pipeline_counts_written_only_what_the_store_took_while_the_twin_gets_everything() -> None:
    store, twin = FlakyStore(), Twin()
    p = Pipeline([], [store, twin], retry_samples=10_000)
    p.start()
    p.submit(batch(1, 2))
    _until(lambda: p.written_samples == 2)
    store.full = True
    for v in range(3, 13):
        p.submit(batch(float(v)))
    _until(lambda: twin.samples == 12)  # the live view does not wait for the store
    assert p.written_samples == 2
    assert p.store_problem() is not None and "No space left on device" in (p.last_sink_error or "")
    store.full = False
    _until(lambda: p.written_samples == 12, timeout=5)  # retried without any new batch
    assert p.store_problem() is None and p.dropped_samples == 0
    p.stop()
    assert sorted(store.values()) == [float(v) for v in range(1, 13)]
    assert p.accepted_samples == p.written_samples


def test_stopping_while_the_store_refuses_counts_the_rest_as_dropped() -> None:
    store = FlakyStore()
    p = Pipeline([], [store])
    p.start()
    store.full = True
    p.submit(batch(1, 2, 3))
    _until(lambda: p.sink_errors > 0)
    p.stop()
    assert p.written_samples == 0 and p.dropped_store == 3
    assert p.health()["dropped_by_reason"] == {"buffer_full": 0, "store_failed": 3}


def _until(predicate: object, timeout: float = 3.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
