"""InfluxDB as a forwarding target: batches written through `influxdb-client`, acknowledged.

Why SYNCHRONOUS writes: `send` returns only when the server answered 2xx for every body of the
batch, and raises otherwise, so the `SpooledForwarder` in front (telemetry.forwarder) knows what
"acknowledged" means and spools the rest. The client's batching mode never raises (failures reach
only a callback), so it cannot carry that guarantee. The forwarder's spool and replay with backoff
are the retries across outages; inside one call, a connection error, a 429 or a 5xx is retried
`max_retries` times with a short exponential backoff (urllib3's Retry), each request bounded by
`timeout_s`. A batch that fails half-way is spooled whole and sent again: servers keyed by
(series, time) store it once (VictoriaMetrics with `-dedup.minScrapeInterval`, InfluxDB always).

A server may acknowledge before its data is on disk: VictoriaMetrics 1.79 answers 204 with the
rows in memory and writes them out within about ten seconds, so a SIGKILL loses up to that much
acknowledged data (measured: every row written 8 s before the kill lost, none at 11 s;
`/internal/force_flush` makes rows searchable, not durable). So the target keeps the bodies the
server took in the last `resend_window_s` (bounded by `resend_max_bytes`) and, after any failed
request, sends them again before anything else. A server that crashed has them again; one that
did not stores the repeat once (that is why a VictoriaMetrics behind us runs with
`-dedup.minScrapeInterval=1ms`). A crash and restart of the server between two of our writes,
with no request failing, goes unnoticed; with writes every few seconds that takes a restart faster
than the retries (about 0.3 s).

A 400 means the server parsed the body and refused some lines (InfluxDB 2 writes the valid ones
and names the first bad line); sending it again can never succeed and would hold back everything
queued behind it, so the rejected lines are logged and counted (`rejected_bodies`), not retried.
401, 403 and 404 (token, org, bucket) are configuration faults an operator fixes: those raise,
and the spool holds the data until they are fixed.

Job-history rows stay on the embedded store (`send_jobs` takes none): they hold real user
names (pseudonymised only on export), and their never-backwards upsert by (site, job id) is a
relational operation no time-series write can express; job ids as tags would also make a series
per job. InfluxDB receives samples only.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import polars as pl
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from urllib3.util.retry import Retry

from telemetry.forwarder import SpooledForwarder
from telemetry.line_protocol import LineEncoder, Precision
from telemetry.schema import Batch

__all__ = ["InfluxTarget", "MirrorSink"]

log = logging.getLogger(__name__)

_PRECISION: dict[str, Any] = {
    "ns": WritePrecision.NS,
    "us": WritePrecision.US,
    "ms": WritePrecision.MS,
    "s": WritePrecision.S,
}


class InfluxTarget:
    """A `ForwardTarget` (telemetry.forwarder) writing to InfluxDB's `/api/v2/write`.

    `batch_size` is the most lines per request; a larger batch goes as several requests, in order."""

    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        token: str = "",
        precision: Precision = "ns",
        batch_size: int = 5_000,
        timeout_s: float = 10.0,
        max_retries: int = 2,
        gzip: bool = False,
        resend_window_s: float = 30.0,
        resend_max_bytes: int = 64 << 20,
        name: str | None = None,
    ) -> None:
        self.name = name or f"influxdb {url}"
        self.bucket = bucket
        self.org = org
        self.encoder = LineEncoder(precision, lines_per_body=batch_size)
        self._precision = _PRECISION[precision]
        retries = Retry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            backoff_factor=0.1,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None,  # POSTs too: a repeated write is stored once (keyed by series and time)
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        self._client = InfluxDBClient(
            url=url, token=token, org=org, timeout=int(timeout_s * 1000), enable_gzip=gzip, retries=retries
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self.written_samples = 0
        """Samples the server acknowledged."""
        self.rejected_bodies = 0
        """Request bodies the server refused as malformed (400), logged and not retried."""
        self.resent_bodies = 0
        """Bodies sent again after a failure, because the server might have lost them."""
        self.resend_window_s = resend_window_s
        self.resend_max_bytes = resend_max_bytes
        self._recent: deque[tuple[float, bytes]] = deque()
        self._recent_bytes = 0
        self._resend_due = False

    @property
    def skipped_samples(self) -> int:
        """NaN or infinite samples left out (line protocol cannot carry them)."""
        return self.encoder.skipped_samples

    def send(self, batch: Batch) -> None:
        if self._resend_due:
            self._resend_recent()
        skipped = self.encoder.skipped_samples
        for body in self.encoder.bodies(batch):
            self._post(body)
            self._remember(body)
        self.written_samples += len(batch) - (self.encoder.skipped_samples - skipped)

    def send_jobs(self, jobs: pl.DataFrame) -> None:
        """Job rows stay on the embedded store (see the module docstring)."""

    def close(self) -> None:
        self._write.close()
        self._client.close()

    def _post(self, body: bytes) -> None:
        try:
            self._write.write(bucket=self.bucket, org=self.org, record=body, write_precision=self._precision)
        except ApiException as exc:
            if exc.status == 400:
                self.rejected_bodies += 1
                log.error("%s refused a body as malformed (not retried): %s", self.name, _reason(exc))
                return
            self._resend_due = True
            raise ConnectionError(f"{self.name} answered {exc.status}: {_reason(exc)}") from None
        except BaseException:
            self._resend_due = True
            raise

    def _remember(self, body: bytes) -> None:
        """Keep an acknowledged body for `resend_window_s`, in case the server loses it in a crash."""
        if self.resend_window_s <= 0:
            return
        now = time.monotonic()
        self._recent.append((now, body))
        self._recent_bytes += len(body)
        while self._recent and (
            self._recent[0][0] < now - self.resend_window_s or self._recent_bytes > self.resend_max_bytes
        ):
            self._recent_bytes -= len(self._recent.popleft()[1])

    def _resend_recent(self) -> None:
        """After a failure: what the server took in the window before it, oldest first."""
        for _, body in list(self._recent):
            self._post(body)
            self.resent_bodies += 1
        self._resend_due = False
        if self._recent:
            log.info("%s: sent the last %d acknowledged bodies again after a failure", self.name, len(self._recent))


def _reason(exc: ApiException) -> str:
    body: Any = exc.body
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or exc.reason)
    return text.strip()[:300]


@dataclass
class MirrorSink:
    """The forwarder as a second, non-durable sink beside the embedded store.

    Why not durable: the pipeline has one durable sink, whose acknowledgement counts as written
    (the store). The forwarder's own durability is its spool: `write` returns once the server or
    the spool has the batch, and raises only if the spool itself cannot write (a full disk),
    which the pipeline logs and counts as a failed live write. Job rows are not mirrored."""

    forwarder: SpooledForwarder
    durable: ClassVar[bool] = False
    _started: bool = field(default=False, repr=False)

    def write(self, batch: Batch) -> None:
        self.forwarder.write(batch)

    def start(self) -> None:
        if not self._started:
            self.forwarder.start()
            self._started = True

    def close(self, timeout_s: float = 5.0) -> None:
        self.forwarder.close(timeout_s)
        close = getattr(self.forwarder.target, "close", None)
        if callable(close):
            close()
