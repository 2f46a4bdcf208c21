"""Moving a job's data between sites: the link path and how long it takes.

A transfer of `size` bytes over a path takes the sum of the links' latencies plus size ÷ the
path's bottleneck bandwidth. A link's available bandwidth is its capacity minus the traffic
measured on it (the busier direction, when its interface is measured and fresh), never below a
tenth of the capacity: a saturated link still moves data, slowly.

Measured figures win over configured ones. A link probed by `link_probe` (a bounded transfer to a
probe endpoint at its far end) uses the probe's smoothed throughput instead of the configured
capacity and the probe's round-trip time instead of the configured latency, while the probe is
fresh (not older than `probe_max_age_s`, the service's advice.max_data_age); the interface traffic
is then not subtracted, because the probe's transfer already shared the link with it (and its own
bytes are in those counters). A stale probe is ignored, and each hop's `reason` says which
figures it used.

The band: p10 on the whole capacity (nothing else on the link; for a probed link the better of its
average and its last probe), p50 on the available bandwidth, p90 on half of it (the traffic
doubles while the data moves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from twin.advice.outcome import Band
from twin.view import LinkView

__all__ = ["Hop", "Route", "TransferPlanner"]

_MIN_AVAILABLE_SHARE = 0.1
_DEFAULT_BPS = 1e9
"""A link configured without a capacity is taken as 1 Gb/s (said in the reason)."""


@dataclass(frozen=True)
class Hop:
    a: str
    b: str
    latency_s: float
    capacity_bps: float
    available_bps: float
    measured: bool
    """True when the available figure comes from measured traffic."""
    data_age_s: float | None
    probed: bool = False
    """True when capacity and availability come from a fresh probe of the link."""
    reason: str = ""
    """Where the hop's figures come from (configured, measured traffic, probed and how old)."""


@dataclass(frozen=True)
class Route:
    hops: tuple[Hop, ...]

    @cached_property
    def latency_s(self) -> float:
        return sum(h.latency_s for h in self.hops)

    @cached_property
    def bottleneck_bps(self) -> float:
        return min((h.available_bps for h in self.hops), default=float("inf"))

    @cached_property
    def capacity_bps(self) -> float:
        return min((h.capacity_bps for h in self.hops), default=float("inf"))

    def seconds(self, size_bytes: float) -> Band:
        if not self.hops or size_bytes <= 0:
            return Band.point(self.latency_s if size_bytes > 0 else 0.0)
        bits = size_bytes * 8
        available = self.bottleneck_bps
        lat = self.latency_s
        return Band(lat + bits / self.capacity_bps, lat + bits / available, lat + bits / (available / 2))

    def describe(self, size_bytes: float) -> str:
        if not self.hops:
            return "data already here"
        via = " → ".join([self.hops[0].a, *(h.b for h in self.hops)])
        gbps = self.bottleneck_bps / 1e9
        text = f"{_size(size_bytes)} over {via} at {gbps:.3g} Gb/s ≈ {_dur(self.seconds(size_bytes).p50)}"
        probed = [f"{h.a}–{h.b}: {h.reason}" for h in self.hops if h.probed or "probe" in h.reason]
        return f"{text} ({'; '.join(probed)})" if probed else text


class TransferPlanner:
    """Routes between sites over the configured links (undirected), fastest first."""

    def __init__(self, links: Sequence[LinkView], *, max_age_s: float = 60.0, probe_max_age_s: float = 300.0) -> None:
        """`max_age_s`: interface traffic older than this is ignored; `probe_max_age_s`: so are
        probe figures (the service passes advice.max_data_age)."""
        self._adjacent: dict[str, list[Hop]] = {}
        self._paths: dict[tuple[str, str], list[Route]] = {}
        for link in links:
            for a, b in ((link.a, link.b), (link.b, link.a)):
                hop = _hop(link, a, b, max_age_s, probe_max_age_s)
                self._adjacent.setdefault(a, []).append(hop)

    def route(self, src: str, dst: str, size_bytes: float) -> Route | None:
        """The path from src to dst that moves `size_bytes` fastest (exhaustive over simple paths
        of up to 6 hops, found once per pair: continuum topologies have a handful of sites);
        None when no links join them."""
        if src == dst:
            return Route(())
        paths = self._paths.get((src, dst))
        if paths is None:
            paths = self._paths[(src, dst)] = self._simple_paths(src, dst)
        if not paths:
            return None
        if size_bytes <= 0:
            return min(paths, key=lambda r: r.latency_s)
        return min(paths, key=lambda r: r.seconds(size_bytes).p50)

    def _simple_paths(self, src: str, dst: str) -> list[Route]:
        found: list[Route] = []
        stack: list[tuple[str, tuple[Hop, ...]]] = [(src, ())]
        while stack:
            node, path = stack.pop()
            for hop in self._adjacent.get(node, ()):
                if hop.b == src or any(h.b == hop.b for h in path):
                    continue
                route_hops = (*path, hop)
                if hop.b == dst:
                    found.append(Route(route_hops))
                elif len(route_hops) < 6:
                    stack.append((hop.b, route_hops))
        return found


def _hop(link: LinkView, a: str, b: str, max_age_s: float, probe_max_age_s: float) -> Hop:
    """The figures one direction of a link moves data with, and why."""
    reasons: list[str] = []
    probe_bps, probe_age = link.probe_throughput_bps, link.probe_throughput_age_s
    probe_fresh = bool(probe_bps) and probe_age is not None and probe_age <= probe_max_age_s
    if probe_fresh and probe_bps:
        capacity = max(probe_bps, link.probe_throughput_last_bps or probe_bps)
        available = probe_bps
        measured = True
        configured = _rate(link.bandwidth_bps) if link.bandwidth_bps else "none"
        reasons.append(
            f"probed {_rate(probe_bps)} ({_dur(probe_age or 0.0)} old) instead of the configured {configured}"
        )
    else:
        capacity = link.bandwidth_bps or _DEFAULT_BPS
        used = max(link.rx_bps or 0.0, link.tx_bps or 0.0)
        measured = bool(link.data_age_s is not None and link.data_age_s <= max_age_s and (link.rx_bps or link.tx_bps))
        available = max(capacity - used, capacity * _MIN_AVAILABLE_SHARE) if measured else capacity
        if probe_bps and probe_age is not None:
            reasons.append(f"probe {_dur(probe_age)} old, past {_dur(probe_max_age_s)}: ignored")
        where = "configured" if link.bandwidth_bps else "assumed (none configured)"
        reasons.append(f"{where} {_rate(capacity)}" + (f" less {_rate(used)} measured traffic" if measured else ""))
    rtt, rtt_age = link.probe_rtt_s, link.probe_rtt_age_s
    if rtt is not None and rtt_age is not None and rtt_age <= probe_max_age_s:
        latency = rtt
        configured = f"{link.latency_s * 1e3:.3g} ms" if link.latency_s is not None else "none"
        reasons.append(f"probed RTT {rtt * 1e3:.3g} ms instead of the configured {configured}")
    else:
        latency = link.latency_s or 0.0
    return Hop(
        a,
        b,
        latency,
        capacity,
        available,
        measured,
        link.probe_throughput_age_s if probe_fresh else link.data_age_s,
        probed=probe_fresh,
        reason=", ".join(reasons),
    )


def _rate(bps: float) -> str:
    for unit, scale in (("Tb/s", 1e12), ("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.3g} {unit}"
    return f"{bps:.0f} b/s"


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _dur(seconds: float) -> str:
    from twin.advice.outcome import human_duration

    return human_duration(seconds)
