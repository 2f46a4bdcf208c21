"""A durable, bounded, ordered spool of batches on local disk, for sinks whose server can be away
(InfluxDB, the central `ctwin serve` an agent pushes to).

Why a spool and not a retry queue in memory: an agent at a remote site must survive both a cut
link and its own restart during it. What the spool has taken is on disk (written, fsynced,
renamed into place), so "spooled" counts as acknowledged. Records are replayed oldest first and
removed only when the server has taken them (`ack`), so a crash mid-replay sends a record again
rather than losing it; servers keyed by (series, time) — every TSDB, our ingest route — absorb the
repeat.

One file per record, named by a sequence number and its sample count, so opening a spool of
thousands of records reads directory entries, not files. The bound is in bytes on disk: beyond
it the oldest records are dropped and counted (`dropped_samples`), so a link that never comes back
cannot fill the disk. A record that cannot be read back (a disk error; never a torn write, which
the rename rules out) is moved aside as `*.corrupt` and counted, and the spool goes on.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from telemetry.filemodes import make_private_dir
from telemetry.schema import Batch

__all__ = ["Record", "RecordKind", "Spool", "SpoolError"]

log = logging.getLogger(__name__)

RecordKind = Literal["samples", "jobs"]
_SUFFIX = {"samples": ".samples.arrow", "jobs": ".jobs.arrow"}


class SpoolError(OSError):
    """The spool directory cannot be used (not writable, not a directory)."""


@dataclass(frozen=True)
class Record:
    """One spooled batch: its place in the order, what it holds, and how big it is."""

    seq: int
    kind: RecordKind
    rows: int
    size_bytes: int
    path: Path

    def load(self) -> Batch | pl.DataFrame:
        """The batch (kind samples) or the job-history frame (kind jobs) as it was put."""
        frame = pl.read_ipc(io.BytesIO(self.path.read_bytes()))
        return Batch(frame) if self.kind == "samples" else frame


def _parse_name(path: Path) -> tuple[int, RecordKind, int] | None:
    for kind, suffix in _SUFFIX.items():
        if path.name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            seq, _, rows = stem.partition("-")
            if seq.isdigit() and rows.isdigit():
                return int(seq), kind, int(rows)  # type: ignore[return-value]
    return None


class Spool:
    """Oldest-first records on disk, bounded in bytes. Thread-safe: a pipeline's writer thread puts
    while a replay thread reads and acknowledges."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("a spool needs max_bytes >= 1")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        try:
            make_private_dir(self.directory)
        except OSError as exc:
            raise SpoolError(f"spool directory {self.directory} cannot be used: {exc}") from exc
        if not os.access(self.directory, os.W_OK):
            raise SpoolError(f"spool directory {self.directory} is not writable")
        self._lock = threading.Lock()
        self._records: deque[Record] = deque()
        self._bytes = 0
        self._next_seq = 0
        self.spooled_samples = 0
        """Samples put since this process opened the spool."""
        self.replayed_samples = 0
        """Samples acknowledged by the server after waiting here."""
        self.dropped_samples = 0
        """Samples given up because the spool was full (oldest first)."""
        self.dropped_job_rows = 0
        self.corrupt_records = 0
        self._open()

    # ------------------------------------------------------------ reading state
    @property
    def pending_records(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def pending_samples(self) -> int:
        with self._lock:
            return sum(r.rows for r in self._records if r.kind == "samples")

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def head(self) -> Record | None:
        """The oldest record, or None when nothing waits."""
        with self._lock:
            return self._records[0] if self._records else None

    # ------------------------------------------------------------ writing
    def put(self, data: Batch | pl.DataFrame) -> Record:
        """Durably append a batch (samples) or a job-history frame (jobs); when this returns, the
        record survives a crash. Drops the oldest records if the bound is exceeded."""
        kind: RecordKind = "samples" if isinstance(data, Batch) else "jobs"
        frame = data.frame if isinstance(data, Batch) else data
        buffer = io.BytesIO()
        frame.write_ipc(buffer, compression="lz4")
        payload = buffer.getvalue()
        with self._lock:
            seq = (self._records[-1].seq + 1) if self._records else self._next_seq
            self._next_seq = seq + 1
            path = self.directory / f"{seq:020d}-{frame.height}{_SUFFIX[kind]}"
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            self._fsync_dir()
            record = Record(seq, kind, frame.height, len(payload), path)
            self._records.append(record)
            self._bytes += record.size_bytes
            if kind == "samples":
                self.spooled_samples += record.rows
            self._enforce_bound(keep=record)
            return record

    def ack(self, record: Record) -> None:
        """The server took `record` (the head): remove it."""
        with self._lock:
            if not self._records or self._records[0].seq != record.seq:
                raise ValueError(f"ack of record {record.seq} out of order (records are acknowledged oldest first)")
            self._records.popleft()
            self._bytes -= record.size_bytes
            if record.kind == "samples":
                self.replayed_samples += record.rows
        record.path.unlink(missing_ok=True)

    def quarantine(self, record: Record, why: str) -> None:
        """The head cannot be read back: move it aside (kept for a human) and go on."""
        with self._lock:
            if self._records and self._records[0].seq == record.seq:
                self._records.popleft()
                self._bytes -= record.size_bytes
            self.corrupt_records += 1
        log.error("spool record %s unreadable (%s); moved aside as .corrupt", record.path.name, why)
        try:
            record.path.rename(record.path.with_name(record.path.name + ".corrupt"))
        except OSError:
            record.path.unlink(missing_ok=True)

    # ------------------------------------------------------------ internals
    def _open(self) -> None:
        found: list[Record] = []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a put that did not return: never acknowledged
                continue
            parsed = _parse_name(path)
            if parsed is None:
                continue
            seq, kind, rows = parsed
            found.append(Record(seq, kind, rows, path.stat().st_size, path))
        found.sort(key=lambda r: r.seq)
        self._records.extend(found)
        self._bytes = sum(r.size_bytes for r in found)
        self._next_seq = (found[-1].seq + 1) if found else 0
        if found:
            log.info(
                "spool %s: %d records (%d samples) waiting from before",
                self.directory,
                len(found),
                sum(r.rows for r in found if r.kind == "samples"),
            )

    def _enforce_bound(self, keep: Record) -> None:
        while self._bytes > self.max_bytes and self._records and self._records[0] is not keep:
            oldest = self._records.popleft()
            self._bytes -= oldest.size_bytes
            if oldest.kind == "samples":
                self.dropped_samples += oldest.rows
            else:
                self.dropped_job_rows += oldest.rows
            oldest.path.unlink(missing_ok=True)
            log.warning(
                "spool %s full (%d bytes): dropped the oldest record %d", self.directory, self.max_bytes, oldest.seq
            )

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
