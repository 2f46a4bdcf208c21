"""How fresh each collector, and so each site, is: the states every view and the advice engine share.

A collector is `starting` before its first collection finishes, `down` when it never succeeded,
`stale` when its last collection failed or its data is older than `stale_after_intervals` of its
interval, else `ok`. A site is `ok` only when all its collectors are (twin.view.State). A site
without collectors (a cloud region known by its price, quota and provisioning delay) is
`configured`: it is not waiting for data, so it must not read as `starting` forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from twin.topology import SiteSpec, Topology
from twin.view import CollectorHealth, State

__all__ = ["CollectorStatsLike", "Health", "HealthSource", "site_state"]


class CollectorStatsLike(Protocol):
    """What the twin reads of a running collector's self-metrics (telemetry.pipeline.CollectorStats)."""

    collections: int
    errors: int
    last_success_s: float | None
    last_error: str | None
    last_error_s: float | None


HealthSource = Mapping[str, CollectorStatsLike]
"""Collector name → its live stats object (each running collector's `stats`, updated in place)."""


def site_state(collectors: tuple[CollectorHealth, ...]) -> State:
    """The site's state from its collectors': the one rule every view (API, /metrics, Dash) shares."""
    if not collectors:
        return "configured"
    states = {c.state for c in collectors}
    if states == {"starting"}:
        return "starting"
    if states <= {"ok"}:
        return "ok"
    if states <= {"down", "starting"}:
        return "down"
    return "stale"


class Health:
    def __init__(self, topology: Topology, source: HealthSource | None = None, *, stale_after_intervals: float = 3.0):
        self.topology = topology
        self.source: HealthSource = source if source is not None else {}
        self.stale_after_intervals = stale_after_intervals

    def collectors(self, spec: SiteSpec, now: float) -> tuple[CollectorHealth, ...]:
        stats = self.source
        out = []
        for c in spec.collectors:
            s = stats.get(c.name)
            if s is None:
                out.append(CollectorHealth(c.name, c.type, "starting", c.interval_s, None, None, 0, None))
                continue
            age = None if s.last_success_s is None else max(0.0, now - s.last_success_s)
            state: State
            if s.collections == 0:
                state = "starting"
            elif s.last_success_s is None:
                state = "down"
            elif (s.last_error_s or 0) > s.last_success_s or (age or 0) > self.stale_after_intervals * c.interval_s:
                state = "stale"
            else:
                state = "ok"
            out.append(
                CollectorHealth(c.name, c.type, state, c.interval_s, s.last_success_s, age, s.errors, s.last_error)
            )
        return tuple(out)

    def site_state(self, site: str, now: float) -> State:
        return site_state(self.collectors(self.topology.site(site), now))

    def stale_after_s(self, site: str) -> float:
        """Age beyond which the site's data counts as stale: a few of its fastest collector's intervals."""
        try:
            spec = self.topology.site(site)
        except KeyError:
            return self.stale_after_intervals * 15.0
        fastest = min((c.interval_s for c in spec.collectors), default=15.0)
        return self.stale_after_intervals * fastest
