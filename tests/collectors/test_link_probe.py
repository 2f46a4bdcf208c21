"""The link-probe collector against the real probe endpoint on loopback: the wire protocol, the
caps both sides put on a transfer, the smoothing, and each way a probe can fail.

Loopback says nothing about the numbers a shaped link gives; tests/integration/test_link_probe_netns.py
measures those across two network namespaces."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from collectors import registry
from collectors.base import Recorder
from collectors.link_probe import Ema, LinkProbeCollector, LinkProbeConfig, LinkProbeError, transfer
from collectors.link_probe_wire import (
    ECHO_MAGIC,
    HEADER,
    OP_SEND,
    STATUS_BAD_REQUEST,
    STATUS_OK,
    Header,
    parse_address,
    recv_exact,
)
from service.probe_endpoint import ProbeEndpoint
from telemetry.catalog import links as lm
from tests.conftest import free_port


@pytest.fixture
def endpoint() -> Iterator[ProbeEndpoint]:
    with ProbeEndpoint("127.0.0.1", 0, max_bytes=8 * 10**6, max_seconds=2.0, max_clients=2) as ep:
        yield ep


def probe(ep: ProbeEndpoint, **options: object) -> LinkProbeCollector:
    host, port = ep.address
    cfg = LinkProbeConfig.model_validate({"peer": f"{host}:{port}", "between": ["hpc", "cloud"], **options})
    return LinkProbeCollector(cfg)


def gather(collector: LinkProbeCollector) -> Recorder:
    rec = Recorder()
    collector.gather(rec)
    return rec


# ---------------------------------------------------------------------------- wire
def test_header_round_trips_and_refuses_other_peers() -> None:
    h = Header(OP_SEND, 12_345, 1.5)
    assert Header.unpack(h.pack()) == h and len(h.pack()) == HEADER.size == 24
    with pytest.raises(ValueError, match="not a ctwin probe peer"):
        Header.unpack(b"HTTP" + h.pack()[4:])
    with pytest.raises(ValueError, match="version 9"):
        Header.unpack(h.pack()[:4] + bytes([9]) + h.pack()[5:])
    with pytest.raises(ValueError, match="24 bytes"):
        Header.unpack(b"CTWP")
    with pytest.raises(ValueError, match="NaN"):
        Header.unpack(Header(OP_SEND, 1, float("nan")).pack())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.2:7300", ("10.0.0.2", 7300)), ("[::1]:7300", ("::1", 7300)), ("probe.example:1", ("probe.example", 1))],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("7300", "HOST:PORT"), ("h:", "HOST:PORT"), ("::1:7300", "brackets"), ("h:0", "1..65535"), ("h:99999", "65535")],
)
def test_parse_address_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_address(text)
    assert parse_address("0.0.0.0:0", listen=True) == ("0.0.0.0", 0)


def test_ema_is_seeded_with_the_first_value_as_fts_does() -> None:
    ema = Ema(0.1)
    assert ema.update(100.0) == 100.0
    assert ema.update(200.0) == pytest.approx(0.1 * 200 + 0.9 * 100)
    assert ema.update(200.0) == pytest.approx(0.1 * 200 + 0.9 * 110)


# ---------------------------------------------------------------------------- collector
def test_registered_and_config_is_checked() -> None:
    assert registry.get("link_probe") is LinkProbeCollector
    with pytest.raises(ValidationError, match="HOST:PORT"):
        LinkProbeConfig.model_validate({"peer": "nowhere", "between": ["a", "b"]})
    with pytest.raises(ValidationError, match="two different sites"):
        LinkProbeConfig.model_validate({"peer": "h:1", "between": ["a", "a"]})
    with pytest.raises(ValidationError, match="extra"):
        LinkProbeConfig.model_validate({"peer": "h:1", "between": ["a", "b"], "bandwidth": 1})
    cfg = LinkProbeConfig.model_validate({"peer": "h:1", "between": ["a", "b"], "max_bytes": "32MiB"})
    assert cfg.max_bytes == 32 * 2**20 and cfg.alpha == 0.1 and cfg.link_name() == "a-b"


@pytest.mark.parametrize("direction", ["download", "upload"])
def test_a_gather_emits_rtt_and_throughput_with_the_links_labels(endpoint: ProbeEndpoint, direction: str) -> None:
    collector = probe(endpoint, direction=direction, max_bytes="4MB", rtt_probes=7)
    rec = gather(collector)
    labels = {"link": "hpc-cloud", "a": "hpc", "b": "cloud", "direction": direction}
    assert {s.metric for s in rec.samples} == {
        m.name for m in (lm.RTT, lm.RTT_LAST, lm.RTT_LOST, lm.THROUGHPUT, lm.THROUGHPUT_LAST, lm.TRANSFER_BYTES)
    }
    assert all(s.labels == labels for s in rec.samples)
    assert rec.get(lm.TRANSFER_BYTES) == 4_000_000
    assert rec.get(lm.RTT_LOST) == 0.0
    assert 0 < rec.get(lm.RTT_LAST) < 0.1  # loopback
    assert rec.get(lm.THROUGHPUT) == rec.get(lm.THROUGHPUT_LAST) > 1e8  # first probe seeds the EMA
    second = gather(collector)
    ema, last = second.get(lm.THROUGHPUT), second.get(lm.THROUGHPUT_LAST)
    assert ema == pytest.approx(0.1 * last + 0.9 * rec.get(lm.THROUGHPUT))
    expected = endpoint.stats.bytes_sent if direction == "download" else endpoint.stats.bytes_received
    assert expected == 8_000_000 and endpoint.stats.echoes == 14


def test_the_endpoints_caps_bound_what_a_probe_asks_for(endpoint: ProbeEndpoint) -> None:
    host, port = endpoint.address
    moved = transfer(host, port, "download", 10**9, 60.0)
    assert moved.total_bytes == 8 * 10**6  # endpoint's max_bytes, not the 1 GB asked for
    with ProbeEndpoint("127.0.0.1", 0, max_bytes=10**12, max_seconds=0.3) as slow:
        h, p = slow.address
        started = time.monotonic()
        for direction in ("download", "upload"):
            capped = transfer(h, p, direction, 10**12, 60.0)  # type: ignore[arg-type]
            assert 0 < capped.total_bytes < 10**12
            assert capped.seconds < 2.0
        assert time.monotonic() - started < 5.0  # 0.3 s each, not 60


def test_the_collectors_time_cap_ends_a_transfer() -> None:
    with ProbeEndpoint("127.0.0.1", 0, max_bytes=10**12, max_seconds=30.0) as ep:
        rec = gather(probe(ep, max_bytes=10**12, max_seconds=0.25))
        assert 0 < rec.get(lm.TRANSFER_BYTES) < 10**12
        assert ep.stats.transfers == 1


def test_a_busy_endpoint_refuses_and_the_probe_says_so() -> None:
    with ProbeEndpoint("127.0.0.1", 0, max_bytes=10**12, max_seconds=5.0, max_clients=1) as ep:
        holder = socket.create_connection(ep.address, timeout=5)
        with holder:  # holds the only slot: a long download it never reads
            holder.sendall(Header(OP_SEND, 10**12, 5.0).pack())
            assert Header.unpack(recv_exact(holder, HEADER.size)).code == STATUS_OK
            collector = probe(ep)
            rec = Recorder()
            with pytest.raises(LinkProbeError, match="busy") as info:
                collector.gather(rec)
            assert info.value.partial  # the RTT half was measured and is kept
            assert rec.get(lm.RTT_LOST) == 0.0 and lm.THROUGHPUT.name not in rec.names()
        assert ep.stats.refused == 1


def test_no_endpoint_fails_with_the_peer_and_counts_every_echo_lost() -> None:
    port = free_port()
    collector = LinkProbeCollector(
        LinkProbeConfig(peer=f"127.0.0.1:{port}", between=("a", "b"), rtt_probes=3, rtt_timeout=0.2)
    )
    rec = Recorder()
    with pytest.raises(LinkProbeError, match=f"127.0.0.1:{port}: cannot connect"):
        collector.gather(rec)
    assert rec.get(lm.RTT_LOST) == 1.0


def test_tcp_connect_rtt_where_udp_is_filtered(endpoint: ProbeEndpoint) -> None:
    rec = gather(probe(endpoint, rtt_method="tcp", rtt_probes=4, max_bytes="1MB"))
    assert rec.get(lm.RTT_LOST) == 0.0 and 0 < rec.get(lm.RTT) < 0.1


def test_udp_without_echo_is_a_partial_failure_with_the_fix() -> None:
    """A plain TCP listener that speaks the protocol but no UDP echo on that port."""
    with ProbeEndpoint("127.0.0.1", 0, max_bytes=10**6) as ep:
        assert ep._udp is not None
        ep._udp.close()  # the echo is gone, the transfers are not (as a UDP-filtering firewall)
        collector = probe(ep, rtt_probes=2, rtt_timeout=0.2)
        rec = Recorder()
        with pytest.raises(LinkProbeError, match="rtt_method: tcp") as info:
            collector.gather(rec)
        assert info.value.partial and rec.get(lm.RTT_LOST) == 1.0 and rec.get(lm.TRANSFER_BYTES) == 10**6


def test_the_endpoint_answers_garbage_with_bad_request_and_ignores_stray_datagrams(endpoint: ProbeEndpoint) -> None:
    with socket.create_connection(endpoint.address, timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Header.unpack(recv_exact(s, HEADER.size)).code == STATUS_BAD_REQUEST
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(0.3)
        u.sendto(b"not an echo", endpoint.address)
        with pytest.raises(TimeoutError):
            u.recv(100)
        u.sendto(ECHO_MAGIC + b"x" * 600, endpoint.address)  # over ECHO_MAX: no reflection
        with pytest.raises(TimeoutError):
            u.recv(1000)
        u.sendto(ECHO_MAGIC + b"ping", endpoint.address)
        assert u.recv(100) == ECHO_MAGIC + b"ping"


def test_stop_returns_promptly_with_clients_connected() -> None:
    """An idle connection and a transfer its client does not read: stop() wakes both at once."""
    ep = ProbeEndpoint("127.0.0.1", 0, max_bytes=10**12, max_seconds=60.0, idle_timeout_s=30.0).start()
    address = ep.address
    idle = socket.create_connection(address, timeout=5)  # never sends its header
    stalled = socket.create_connection(address, timeout=5)
    stalled.sendall(Header(OP_SEND, 10**12, 60.0).pack())
    assert Header.unpack(recv_exact(stalled, HEADER.size)).code == STATUS_OK
    time.sleep(0.3)  # its send buffer fills: the endpoint blocks in send
    started = time.monotonic()
    ep.stop()
    assert time.monotonic() - started < 3.0  # not the 30 s idle timeout
    idle.close()
    stalled.close()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=1)
