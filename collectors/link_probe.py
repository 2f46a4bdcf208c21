"""Active link probe: the round-trip time and throughput of a link, measured against a ctwin probe
endpoint at its far end (`ctwin probe-endpoint`, or `probe.listen` of a `ctwin serve` there).

Each gather sends `rtt_probes` round trips (UDP echoes, or TCP connects where UDP is filtered)
and takes their median, then moves one bounded TCP transfer (at most `max_bytes`, at most
`max_seconds`; the endpoint may cap both lower) and times it from the first to the last byte
received (the first read's bytes are not counted: they arrived before the clock started, and
with a token-bucket shaper they are the burst). Both figures are smoothed across gathers as FTS's
optimizer smooths per-link throughput: an exponential moving average seeded with the first value,
alpha 0.1 by default (FTS's EMA_ALPHA); the raw last value is emitted beside the average.

The average lives in this collector object: a restarted service starts it again from its first
probe (as FTS does after a restart).
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import time
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.link_probe_wire import (
    CHUNK,
    ECHO_MAGIC,
    HEADER,
    OP_RECV,
    OP_SEND,
    STATUS_OK,
    STATUS_TEXT,
    Header,
    parse_address,
    recv_exact,
)
from collectors.registry import register
from telemetry.catalog import links as lm
from telemetry.schema import ByteSize, Duration

__all__ = [
    "Ema",
    "LinkProbeCollector",
    "LinkProbeConfig",
    "LinkProbeError",
    "Transfer",
    "rtt_tcp",
    "rtt_udp",
    "transfer",
]

FTS_EMA_ALPHA = 0.1
"""fts3 src/server/services/optimizer/OptimizerConstants.h: `const double EMA_ALPHA = 0.1;`."""


class LinkProbeConfig(CollectorConfig):
    peer: str
    """The probe endpoint at the link's far end, HOST:PORT (e.g. 10.0.0.2:7300 or [fd00::2]:7300)."""
    between: tuple[str, str]
    """The `links:` entry this probe measures (its two sites, as that entry's `between`)."""
    link: str | None = None
    """The `link` label; default "A-B" from `between`."""
    direction: Literal["download", "upload"] = "download"
    """download: the endpoint sends and this side times what arrives (how data is staged in here);
    upload: this side sends and the endpoint times what arrives."""
    max_bytes: ByteSize = Field(64 * 10**6, gt=0)
    """Byte cap of one probe transfer (e.g. 64MB): whichever cap is reached first ends it."""
    max_seconds: Duration = 3.0
    """Time cap of one probe transfer."""
    rtt_probes: int = Field(5, ge=1, le=1000)
    """Round trips per gather; their median is the gather's RTT."""
    rtt_method: Literal["udp", "tcp"] = "udp"
    """udp: echoes of the endpoint; tcp: connect times (one SYN/SYN-ACK round trip each)."""
    rtt_timeout: Duration = 1.0
    """A round trip not answered within this counts as lost."""
    connect_timeout: Duration = 5.0
    alpha: float = Field(FTS_EMA_ALPHA, gt=0.0, le=1.0)
    """Weight of the newest probe in the moving average (1: no smoothing)."""

    @field_validator("peer")
    @classmethod
    def _peer(cls, value: str) -> str:
        parse_address(value)
        return value

    @field_validator("between")
    @classmethod
    def _between(cls, value: tuple[str, str]) -> tuple[str, str]:
        if value[0] == value[1]:
            raise ValueError("a link joins two different sites")
        return value

    def link_name(self) -> str:
        return self.link or f"{self.between[0]}-{self.between[1]}"


class LinkProbeError(CollectorError):
    """A probe failed; `partial` when the other half (RTT or transfer) was measured and emitted."""

    def __init__(self, message: str, *, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class Ema:
    """An exponential moving average seeded with its first value (as FTS's optimizer)."""

    alpha: float
    value: float | None = None

    def update(self, x: float) -> float:
        self.value = x if self.value is None else self.alpha * x + (1.0 - self.alpha) * self.value
        return self.value


@dataclass(frozen=True)
class Transfer:
    total_bytes: int
    """All bytes moved."""
    timed_bytes: int
    """Bytes after the first read, which arrived between the first and the last byte's clocks."""
    seconds: float

    @property
    def bits_per_second(self) -> float | None:
        return self.timed_bytes * 8 / self.seconds if self.seconds > 0 and self.timed_bytes > 0 else None


# ---------------------------------------------------------------------------- measurements
_ECHO = struct.Struct("!4sQQ")  # magic, sequence, nonce


def rtt_udp(host: str, port: int, count: int, timeout_s: float) -> list[float]:
    """Round-trip times of `count` UDP echoes in seconds; lost ones are left out."""
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    nonce = int.from_bytes(os.urandom(8), "big")
    out: list[float] = []
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(addr)
        for seq in range(count):
            message = _ECHO.pack(ECHO_MAGIC, seq, nonce)
            started = time.perf_counter()
            deadline = started + timeout_s
            try:
                sock.send(message)
            except OSError:
                continue  # e.g. unreachable reported by a previous send: this one is lost
            while (left := deadline - time.perf_counter()) > 0:
                sock.settimeout(left)
                try:
                    reply = sock.recv(_ECHO.size + 1)
                except (TimeoutError, ConnectionRefusedError):
                    break
                if reply == message:  # a late answer to an earlier echo is skipped
                    out.append(time.perf_counter() - started)
                    break
    return out


def rtt_tcp(host: str, port: int, count: int, timeout_s: float) -> list[float]:
    """Times of `count` TCP connects (SYN → SYN-ACK) in seconds; failed ones are left out."""
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    out: list[float] = []
    for _ in range(count):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            started = time.perf_counter()
            try:
                sock.connect(addr)
            except OSError:
                continue
            out.append(time.perf_counter() - started)
    return out


def transfer(
    host: str,
    port: int,
    direction: Literal["download", "upload"],
    max_bytes: int,
    max_seconds: float,
    *,
    connect_timeout_s: float = 5.0,
) -> Transfer:
    """One bounded transfer to or from the endpoint. CollectorError (naming the peer) on failure."""
    peer = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout_s)
    except OSError as exc:
        raise CollectorError(f"probe endpoint {peer}: cannot connect: {exc.strerror or exc}") from None
    with sock:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            op = OP_SEND if direction == "download" else OP_RECV
            sock.sendall(Header(op, max_bytes, max_seconds).pack())
            granted = Header.unpack(recv_exact(sock, HEADER.size))
            if granted.code != STATUS_OK:
                reason = STATUS_TEXT.get(granted.code, f"status {granted.code}")
                raise CollectorError(f"probe endpoint {peer} refused the transfer: {reason}")
            # the wait for data is bounded by the granted time plus slack for a slow first byte
            sock.settimeout(max(connect_timeout_s, granted.seconds + 2.0))
            if direction == "download":
                return _receive(sock, granted)
            return _send(sock, granted)
        except ValueError as exc:
            raise CollectorError(f"probe endpoint {peer}: {exc}") from None
        except OSError as exc:
            raise CollectorError(f"probe endpoint {peer}: transfer failed: {exc.strerror or exc}") from None


def _receive(sock: socket.socket, granted: Header) -> Transfer:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = first_bytes = 0
    first_ns = last_ns = 0
    hard_stop = time.monotonic() + granted.seconds + 2.0
    while time.monotonic() < hard_stop:
        n = sock.recv_into(view)
        if n == 0:
            break
        now = time.perf_counter_ns()
        if total == 0:
            first_ns, first_bytes = now, n
        last_ns = now
        total += n
    return Transfer(total, total - first_bytes, (last_ns - first_ns) / 1e9)


def _send(sock: socket.socket, granted: Header) -> Transfer:
    payload = memoryview(os.urandom(CHUNK))
    deadline = time.monotonic() + granted.seconds
    sent = 0
    while sent < granted.nbytes and time.monotonic() < deadline:
        sent += sock.send(payload[: min(CHUNK, granted.nbytes - sent)])
    sock.shutdown(socket.SHUT_WR)
    result = Header.unpack(recv_exact(sock, HEADER.size))
    return Transfer(sent, result.nbytes, result.seconds)


# ---------------------------------------------------------------------------- the collector
@register
class LinkProbeCollector(Collector):
    name: ClassVar[str] = "link_probe"
    config_model: ClassVar[type[CollectorConfig]] = LinkProbeConfig

    def __init__(self, config: CollectorConfig | None = None) -> None:
        if not isinstance(config, LinkProbeConfig):
            raise TypeError(f"LinkProbeCollector needs a LinkProbeConfig, got {type(config).__name__}")
        super().__init__(config)
        self.cfg = config
        self.host, self.port = parse_address(config.peer)
        a, b = config.between
        self.labels = {"link": config.link_name(), "a": a, "b": b, "direction": config.direction}
        self.rtt = Ema(config.alpha)
        self.throughput = Ema(config.alpha)

    def gather(self, emit: Emit) -> None:
        cfg, labels, peer = self.cfg, self.labels, self.cfg.peer
        measure = rtt_udp if cfg.rtt_method == "udp" else rtt_tcp
        try:
            trips = measure(self.host, self.port, cfg.rtt_probes, cfg.rtt_timeout)
        except OSError as exc:  # name resolution, no route
            raise LinkProbeError(f"probe endpoint {peer}: {exc.strerror or exc}") from None
        emit(lm.RTT_LOST, 1.0 - len(trips) / cfg.rtt_probes, labels)
        if trips:
            last_rtt = statistics.median(trips)
            emit(lm.RTT_LAST, last_rtt, labels)
            emit(lm.RTT, self.rtt.update(last_rtt), labels)
        try:
            moved = transfer(
                self.host,
                self.port,
                cfg.direction,
                cfg.max_bytes,
                cfg.max_seconds,
                connect_timeout_s=cfg.connect_timeout,
            )
        except CollectorError as exc:
            raise LinkProbeError(str(exc), partial=True) from None
        emit(lm.TRANSFER_BYTES, moved.total_bytes, labels)
        rate = moved.bits_per_second
        if rate is not None:
            emit(lm.THROUGHPUT_LAST, rate, labels)
            emit(lm.THROUGHPUT, self.throughput.update(rate), labels)
        if not trips:
            what = "UDP echoes" if cfg.rtt_method == "udp" else "TCP connects"
            hint = " (is UDP filtered? try rtt_method: tcp)" if cfg.rtt_method == "udp" else ""
            raise LinkProbeError(f"probe endpoint {peer}: none of {cfg.rtt_probes} {what} answered{hint}", partial=True)
        if rate is None:
            raise LinkProbeError(
                f"probe endpoint {peer}: the transfer moved {moved.total_bytes} bytes, too few to time", partial=True
            )
