"""Moving a job's data between sites: the link path and how long it takes.

A transfer of `size` bytes over a path takes the sum of the links' latencies plus size ÷ the
path's bottleneck bandwidth. A link's available bandwidth is its capacity minus the traffic
measured on it (the busier direction, when its interface is measured and fresh), never below a
tenth of the capacity: a saturated link still moves data, slowly. Measured figures win over
configured ones: a link with a measured throughput uses it instead of the configured capacity.

The band: p10 on the whole capacity (nothing else on the link), p50 on the available bandwidth,
p90 on half of it (the traffic doubles while the data moves) — stated, not learned, until links are
probed (issue 15).
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
        return f"{_size(size_bytes)} over {via} at {gbps:.3g} Gb/s ≈ {_dur(self.seconds(size_bytes).p50)}"


class TransferPlanner:
    """Routes between sites over the configured links (undirected), fastest first."""

    def __init__(self, links: Sequence[LinkView], *, max_age_s: float = 60.0) -> None:
        self._adjacent: dict[str, list[Hop]] = {}
        self._paths: dict[tuple[str, str], list[Route]] = {}
        for link in links:
            capacity = link.bandwidth_bps or _DEFAULT_BPS
            used = max(link.rx_bps or 0.0, link.tx_bps or 0.0)
            fresh = link.data_age_s is not None and link.data_age_s <= max_age_s and (link.rx_bps or link.tx_bps)
            available = max(capacity - used, capacity * _MIN_AVAILABLE_SHARE) if fresh else capacity
            latency = link.latency_s or 0.0
            for a, b in ((link.a, link.b), (link.b, link.a)):
                hop = Hop(a, b, latency, capacity, available, bool(fresh), link.data_age_s)
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


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _dur(seconds: float) -> str:
    from twin.advice.outcome import human_duration

    return human_duration(seconds)
