"""A sink that forwards batches to a remote server (InfluxDB, a central `ctwin serve`) and spools
them on local disk while the server is away.

Why: the pipeline's durable sink defines "written". For a remote server, written means the server
took the batch, or the spool holds it on disk (telemetry.spool). While anything waits in the spool,
new batches queue behind it, so the server sees them in order; a replay thread sends the spool,
oldest first, with a backoff (doubling from `retry_min_s` to `retry_max_s`) while the server keeps
refusing. Only a full spool loses data, and that is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import polars as pl

from telemetry.durable import describe
from telemetry.schema import Batch
from telemetry.spool import Record, Spool

__all__ = ["ForwardTarget", "SpooledForwarder"]

log = logging.getLogger(__name__)


class ForwardTarget(Protocol):
    """Where batches go. `send` returns once the server has acknowledged the batch and raises on
    anything else (refused, timed out, unreachable)."""

    name: str

    def send(self, batch: Batch) -> None: ...

    def send_jobs(self, jobs: pl.DataFrame) -> None: ...


@dataclass
class SpooledForwarder:
    """A durable sink in front of a `ForwardTarget`. `start()` runs the replay thread; `close()`
    stops it after one bounded last replay."""

    target: ForwardTarget
    spool: Spool
    retry_min_s: float = 0.5
    retry_max_s: float = 30.0
    sent_samples: int = 0
    """Samples the server took straight away (not through the spool)."""
    durable: ClassVar[bool] = True
    last_error: str | None = None
    failures: int = 0
    _wake: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _down_since: float | None = field(default=None, repr=False)

    # ------------------------------------------------------------ the sink
    def write(self, batch: Batch) -> None:
        if len(batch):
            self._forward(batch)

    def write_jobs(self, jobs: pl.DataFrame) -> None:
        if jobs.height:
            self._forward(jobs)

    @property
    def connected(self) -> bool:
        """False from a refused send until the spool has been replayed."""
        return self._down_since is None

    def problem(self) -> str | None:
        if self._down_since is None:
            return None
        waited = time.monotonic() - self._down_since
        return (
            f"{self.target.name} unreachable for {waited:.0f} s ({self.last_error}); "
            f"{self.spool.pending_samples} samples spooled in {self.spool.directory}"
        )

    # ------------------------------------------------------------ lifecycle
    def start(self) -> SpooledForwarder:
        if self._thread is None:
            self._thread = threading.Thread(target=self._replay_loop, name=f"spool-{self.target.name}", daemon=True)
            self._thread.start()
            if self.spool.head() is not None:
                self._wake.set()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop replaying; one last attempt bounded by `timeout_s`. What remains stays spooled
        for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s + 1.0)
            self._thread = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._replay_one():
            pass

    def replay(self, deadline_s: float | None = None) -> int:
        """Send what is spooled now, oldest first, until it is empty, the server refuses, or the
        deadline passes; returns the records sent. The replay thread calls this; so may tests."""
        sent = 0
        while (deadline_s is None or time.monotonic() < deadline_s) and self._replay_one():
            sent += 1
        return sent

    # ------------------------------------------------------------ internals
    def _forward(self, data: Batch | pl.DataFrame) -> None:
        if self.spool.head() is None and self._down_since is None:
            try:
                self._send(data)
            except Exception as exc:
                self._failed(exc)
            else:
                if isinstance(data, Batch):
                    self.sent_samples += len(data)
                return
        self.spool.put(data)
        self._wake.set()

    def _send(self, data: Batch | pl.DataFrame) -> None:
        if isinstance(data, Batch):
            self.target.send(data)
        else:
            self.target.send_jobs(data)

    def _replay_one(self) -> bool:
        record: Record | None = self.spool.head()
        if record is None:
            self._recovered()
            return False
        try:
            data = record.load()
        except Exception as exc:
            self.spool.quarantine(record, describe(exc))
            return True
        try:
            self._send(data)
        except Exception as exc:
            self._failed(exc)
            return False
        self.spool.ack(record)
        if self.spool.head() is None:
            self._recovered()
        return True

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = describe(exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "%s refused a batch (%s); spooling in %s", self.target.name, self.last_error, self.spool.directory
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.info(
                "%s reachable again after %.0f s; spool replayed (%d samples so far)",
                self.target.name,
                time.monotonic() - self._down_since,
                self.spool.replayed_samples,
            )
            self._down_since = None

    def _replay_loop(self) -> None:
        backoff = self.retry_min_s
        next_attempt = 0.0
        while not self._stop.is_set():
            if self.spool.head() is None:
                self._wake.wait()
                self._wake.clear()
                continue
            delay = next_attempt - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)  # a put wakes us early; the backoff still holds
                self._wake.clear()
                continue
            self.replay()
            if self.spool.head() is None:
                backoff, next_attempt = self.retry_min_s, 0.0
            else:
                next_attempt = time.monotonic() + backoff
                backoff = min(self.retry_max_s, backoff * 2)
