"""The ctwin probe endpoint: what a `link_probe` collector at another site measures against.

An iperf3-style server on one port (protocol: collectors.link_probe_wire): UDP echoes for the
round-trip time, and bounded TCP transfers for the throughput, sending to or discarding from the
client. Every transfer is capped by the endpoint's own limits whatever the client asks (bytes,
seconds, transfers at once, connections at once), so an endpoint left open costs at most
`max_clients` × `max_bytes` per `max_seconds`. It keeps no data and answers no other question.

Threads: one accepting TCP, one echoing UDP, one per connection; all wait with short timeouts
so `stop()` returns within about a second, and every connection socket has an idle timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from collectors.link_probe_wire import (
    CHUNK,
    ECHO_MAGIC,
    ECHO_MAX,
    HEADER,
    OP_RECV,
    OP_SEND,
    STATUS_BAD_REQUEST,
    STATUS_BUSY,
    STATUS_OK,
    Header,
    recv_exact,
)

__all__ = ["EndpointStats", "ProbeEndpoint"]

log = logging.getLogger(__name__)

_POLL_S = 0.2
_EXTRA_CONNECTIONS = 8
"""Connections beyond `max_clients` that may be reading their header (TCP-connect RTT probes
open and close one each) before new ones are closed at once."""


@dataclass
class EndpointStats:
    transfers: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    echoes: int = 0
    refused: int = 0


class ProbeEndpoint:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_bytes: int = 256 * 2**20,
        max_seconds: float = 10.0,
        max_clients: int = 4,
        idle_timeout_s: float = 10.0,
    ) -> None:
        if max_bytes <= 0 or max_seconds <= 0 or max_clients <= 0:
            raise ValueError("max_bytes, max_seconds and max_clients must be positive")
        self.host, self.port = host, port
        self.max_bytes, self.max_seconds, self.max_clients = max_bytes, max_seconds, max_clients
        self.idle_timeout_s = idle_timeout_s
        self.stats = EndpointStats()
        self._slots = threading.BoundedSemaphore(max_clients)
        self._connections = threading.BoundedSemaphore(max_clients + _EXTRA_CONNECTIONS)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._tcp: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._payload = memoryview(os.urandom(CHUNK))  # incompressible, made once

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound (the port chosen when 0 was asked for)."""
        if self._tcp is None:
            raise RuntimeError("the probe endpoint is not started")
        host, port = self._tcp.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> ProbeEndpoint:
        """Bind TCP and UDP on the same port; OSError (with the address) when that cannot be done."""
        family, _, _, _, sockaddr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        for _attempt in range(5 if self.port == 0 else 1):
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                tcp.bind(sockaddr)
                udp.bind((sockaddr[0], tcp.getsockname()[1], *sockaddr[2:]))
            except OSError as exc:
                tcp.close()
                udp.close()
                if self.port == 0:
                    continue  # the UDP port of the TCP one we were given was taken: pick again
                where = f"{self.host}:{self.port}"
                raise OSError(exc.errno, f"cannot bind the probe endpoint to {where}: {exc.strerror}") from None
            break
        else:
            raise OSError(f"cannot bind TCP and UDP to one free port on {self.host}")
        tcp.listen(64)
        tcp.settimeout(_POLL_S)
        udp.settimeout(_POLL_S)
        self._tcp, self._udp = tcp, udp
        for target, name in ((self._accept_loop, "probe-accept"), (self._echo_loop, "probe-echo")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("probe endpoint on %s:%d (tcp+udp)", *self.address)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:  # wake connections blocked in recv/send, whatever their idle timeout
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=self.idle_timeout_s + 1)
        for sock in (self._tcp, self._udp):
            if sock is not None:
                sock.close()

    def __enter__(self) -> ProbeEndpoint:
        return self.start() if self._tcp is None else self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ loops
    def _echo_loop(self) -> None:
        assert self._udp is not None
        udp = self._udp
        while not self._stop.is_set():
            try:
                data, peer = udp.recvfrom(ECHO_MAX + 1)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set() or udp.fileno() < 0:
                    return
                continue  # e.g. ICMP port unreachable reported on a later recv
            if len(data) <= ECHO_MAX and data.startswith(ECHO_MAGIC):
                try:
                    udp.sendto(data, peer)
                    self.stats.echoes += 1
                except OSError:
                    pass  # the sender is gone: its probe counts the loss

    def _accept_loop(self) -> None:
        assert self._tcp is not None
        while not self._stop.is_set():
            try:
                conn, _peer = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(_POLL_S)  # e.g. EMFILE: back off instead of spinning
                continue
            if not self._connections.acquire(blocking=False):
                conn.close()
                with self._lock:
                    self.stats.refused += 1
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), name="probe-conn", daemon=True)
            with self._lock:
                if self._stop.is_set():  # stop() has already woken the others
                    conn.close()
                    self._connections.release()
                    return
                self._open.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    # ------------------------------------------------------------------ one connection
    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(self.idle_timeout_s)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                request = Header.unpack(recv_exact(conn, HEADER.size))
            except ConnectionError:
                return  # a TCP-connect RTT probe, or a client that gave up
            except ValueError as exc:
                log.info("probe endpoint: refused a request: %s", exc)
                conn.sendall(Header(STATUS_BAD_REQUEST, 0, 0.0).pack())
                return
            if request.code not in (OP_SEND, OP_RECV):
                conn.sendall(Header(STATUS_BAD_REQUEST, 0, 0.0).pack())
                return
            if not self._slots.acquire(blocking=False):
                with self._lock:
                    self.stats.refused += 1
                conn.sendall(Header(STATUS_BUSY, 0, 0.0).pack())
                return
            try:
                nbytes = min(request.nbytes, self.max_bytes)
                seconds = min(request.seconds or self.max_seconds, self.max_seconds)
                conn.sendall(Header(STATUS_OK, nbytes, seconds).pack())
                if request.code == OP_SEND:
                    self._send(conn, nbytes, seconds)
                else:
                    self._receive(conn, nbytes, seconds)
            finally:
                self._slots.release()
        except OSError as exc:  # a reset or timed-out client ends its own transfer only
            log.debug("probe endpoint: connection ended: %s", exc)
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()
            self._connections.release()

    def _send(self, conn: socket.socket, nbytes: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        sent = 0
        payload = self._payload
        while sent < nbytes and time.monotonic() < deadline and not self._stop.is_set():
            sent += conn.send(payload[: min(CHUNK, nbytes - sent)])
        with self._lock:
            self.stats.transfers += 1
            self.stats.bytes_sent += sent
        # Half-close and wait for the client's close: closing at once could reset the connection
        # while the last bytes are still in flight (the client would time a short transfer).
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(min(self.idle_timeout_s, seconds + 5.0))
        while conn.recv(CHUNK):
            pass

    def _receive(self, conn: socket.socket, nbytes: int, seconds: float) -> None:
        """Discard up to nbytes; answer with the bytes after the first read and the time from the
        first to the last read (the first read's bytes arrived before the clock started)."""
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        deadline = time.monotonic() + seconds + 1.0  # the client's own clock starts a little later
        total = first_bytes = 0
        first_ns = last_ns = 0
        while total < nbytes and not self._stop.is_set():
            if time.monotonic() > deadline:
                break
            n = conn.recv_into(view, min(CHUNK, nbytes - total))
            if n == 0:
                break
            now = time.perf_counter_ns()
            if total == 0:
                first_ns, first_bytes = now, n
            last_ns = now
            total += n
        with self._lock:
            self.stats.transfers += 1
            self.stats.bytes_received += total
        conn.sendall(Header(STATUS_OK, total - first_bytes, (last_ns - first_ns) / 1e9).pack())
