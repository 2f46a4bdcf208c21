"""The link-probe wire protocol, shared by the probe endpoint (service.probe_endpoint) and the
`link_probe` collector. It lives in collectors/ because collectors may import nothing of service/.

iperf3-style and deliberately tiny, so both ends fit on one screen:

TCP (one request per connection; every message is one 24-byte `HEADER`):
    client → server  HEADER(op, bytes, seconds)          what the client asks for
    server → client  HEADER(status, bytes, seconds)      what it grants: each figure capped by
                                                         the server's own limit
    op SEND: the server streams the granted bytes (or until the granted seconds are up), then
             closes; the client times its first to its last received byte.
    op RECV: the client streams, then shuts down its write side; the server discards the data and
             answers HEADER(status, bytes received, seconds from first to last byte), timed where
             the bytes arrive.
UDP (same port): a datagram starting with `ECHO_MAGIC`, at most `ECHO_MAX` bytes, is sent back
    verbatim: one round trip for the RTT.

A refused request (busy, bad magic, unknown op, version) gets a header with a non-zero status and
the connection is closed, so the client can say why.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = [
    "CHUNK",
    "ECHO_MAGIC",
    "ECHO_MAX",
    "HEADER",
    "MAGIC",
    "OP_RECV",
    "OP_SEND",
    "STATUS_BAD_REQUEST",
    "STATUS_BUSY",
    "STATUS_OK",
    "STATUS_TEXT",
    "VERSION",
    "Header",
    "parse_address",
    "recv_exact",
]

MAGIC = b"CTWP"
ECHO_MAGIC = b"CTWE"
VERSION = 1
OP_SEND = 1
"""The server sends to the client (the client measures its download)."""
OP_RECV = 2
"""The client sends to the server (the server measures the upload)."""
STATUS_OK = 0
STATUS_BUSY = 1
STATUS_BAD_REQUEST = 2
STATUS_TEXT = {
    STATUS_OK: "ok",
    STATUS_BUSY: "endpoint busy (all its probe slots in use)",
    STATUS_BAD_REQUEST: "bad request",
}

HEADER = struct.Struct("!4sBBHQd")
"""magic, version, op or status, reserved, bytes, seconds: 24 bytes, network order."""
CHUNK = 64 * 1024
"""Bytes per send/recv call on the transfer path."""
ECHO_MAX = 512
"""Largest UDP echo datagram; longer ones are ignored (no amplification, no fragmentation)."""


@dataclass(frozen=True, slots=True)
class Header:
    code: int
    """The op in a request, the status in an answer."""
    nbytes: int
    seconds: float

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, VERSION, self.code, 0, self.nbytes, self.seconds)

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """ValueError when it is not a header of this protocol and version."""
        if len(data) != HEADER.size:
            raise ValueError(f"a probe header is {HEADER.size} bytes, got {len(data)}")
        magic, version, code, _reserved, nbytes, seconds = HEADER.unpack(data)
        if magic != MAGIC:
            raise ValueError(f"not a ctwin probe peer (magic {magic!r})")
        if version != VERSION:
            raise ValueError(f"probe protocol version {version}, this side speaks {VERSION}")
        if not seconds >= 0.0:  # also rejects NaN
            raise ValueError(f"negative or NaN seconds in a probe header: {seconds!r}")
        return cls(code, nbytes, seconds)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly n bytes; ConnectionError when the peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionError(f"peer closed after {len(buf)} of {n} bytes")
        buf += part
    return bytes(buf)


def parse_address(text: str, *, listen: bool = False) -> tuple[str, int]:
    """(host, port) from "host:port", "1.2.3.4:7300" or "[::1]:7300"; ValueError with the form.
    `listen`: port 0 (any free port) is allowed."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address {text!r} is not HOST:PORT (e.g. 10.0.0.2:7300 or [::1]:7300)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {text!r}: write an IPv6 host in brackets, e.g. [::1]:7300")
    number = int(port)
    if not (0 if listen else 1) <= number < 65536:
        raise ValueError(f"address {text!r}: port must be {0 if listen else 1}..65535")
    return host, number
