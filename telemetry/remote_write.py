"""Prometheus remote write as a forwarding target: batches as snappy-compressed protobuf
`WriteRequest`s POSTed to a receiver (Prometheus with `--web.enable-remote-write-receiver`,
VictoriaMetrics, Mimir, Thanos receive…), acknowledged by a 2xx.

Why by hand: a WriteRequest is three small messages (TimeSeries of Labels and Samples); encoding
them directly from the batch's columns needs no generated protobuf module, and the wire format is
the remote-write 1.0 spec's (labels sorted by name, `__name__` first; samples of a series in
timestamp order; milliseconds). Snappy block compression comes from cramjam.

Acknowledgement semantics match telemetry.influx: `send` returns once every request of the batch
got a 2xx and raises otherwise (connection errors, 5xx, 429), so the SpooledForwarder in front
spools and replays. A 400 is the receiver refusing samples it parsed (out of order, a duplicate
timestamp with another value, too old): sending them again can never succeed and would hold back
everything queued behind, so the body is counted (`rejected_bodies`) and logged, not retried.
Job rows are not samples and are not sent.
"""

from __future__ import annotations

import json
import logging
import struct

import cramjam
import httpx
import polars as pl

from telemetry.schema import Batch

__all__ = ["RemoteWriteTarget", "encode_write_request"]

log = logging.getLogger(__name__)

_DOUBLE = struct.Struct("<d")


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # two's complement for negative int64 timestamps
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _label(name: str, value: str) -> bytes:
    return _field(1, _field(1, name.encode()) + _field(2, value.encode()))


def _sample(value: float, ts_ms: int) -> bytes:
    # Sample: double value = 1 (wire type 1, fixed 64); int64 timestamp = 2 (varint)
    return _field(2, b"\x09" + _DOUBLE.pack(value) + b"\x10" + _varint(ts_ms))


def encode_write_request(batch: Batch) -> bytes:
    """The batch as one uncompressed WriteRequest: one TimeSeries per (metric, labels)."""
    return _encode(batch.frame)


def _encode(frame: pl.DataFrame) -> bytes:
    frame = frame.sort("metric", "labels", "ts_ns")
    out = bytearray()
    for (metric, labels), part in frame.group_by("metric", "labels", maintain_order=True):
        pairs = sorted(json.loads(str(labels)).items())
        series = bytearray(_label("__name__", str(metric)))
        for name, value in pairs:
            if value != "":
                series += _label(name, value)
        for value, ts_ns in zip(part["value"].to_list(), part["ts_ns"].to_list(), strict=True):
            series += _sample(float(value), int(ts_ns) // 1_000_000)
        out += _field(1, bytes(series))
    return bytes(out)


class RemoteWriteTarget:
    """A `ForwardTarget` (telemetry.forwarder) POSTing remote-write 1.0 requests to `url`."""

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 10_000,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.name = name or f"remote write {url}"
        self.batch_size = batch_size
        self._client = httpx.Client(
            timeout=timeout_s,
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
                "User-Agent": "ctwin-remote-write",
                **(headers or {}),
            },
        )
        self.written_samples = 0
        self.rejected_bodies = 0

    def send(self, batch: Batch) -> None:
        frame = batch.frame  # already typed: chunks are slices of it, not new batches
        for start in range(0, frame.height, self.batch_size):
            chunk = frame.slice(start, self.batch_size)
            body = bytes(cramjam.snappy.compress_raw(_encode(chunk)))
            try:
                answer = self._client.post(self.url, content=body)
            except httpx.HTTPError as exc:
                raise ConnectionError(f"{self.name}: {type(exc).__name__}: {exc}") from None
            if answer.status_code == 400:
                self.rejected_bodies += 1
                log.error("%s refused %d samples (not retried): %s", self.name, chunk.height, answer.text[:300])
                continue
            if not answer.is_success:
                raise ConnectionError(f"{self.name} answered {answer.status_code}: {answer.text[:300]}")
            self.written_samples += chunk.height

    def send_jobs(self, jobs: pl.DataFrame) -> None:
        """Job rows are not samples: they stay on the embedded store."""

    def close(self) -> None:
        self._client.close()
