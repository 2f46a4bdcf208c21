"""The continuum's shape as the twin sees it: sites, the collectors that feed them, the links
between them. Built by the service from the typed config; the twin never reads config files."""

from __future__ import annotations

from dataclasses import dataclass

from twin.view import SiteKind

__all__ = ["CollectorSpec", "LinkSpec", "SiteSpec", "Topology"]


@dataclass(frozen=True)
class CollectorSpec:
    name: str
    type: str
    interval_s: float


@dataclass(frozen=True)
class SiteSpec:
    name: str
    kind: SiteKind
    description: str = ""
    nodes: tuple[str, ...] = ()
    collectors: tuple[CollectorSpec, ...] = ()


@dataclass(frozen=True)
class LinkSpec:
    a: str
    b: str
    description: str = ""
    bandwidth_bps: float | None = None
    latency_s: float | None = None
    interface: str | None = None


@dataclass(frozen=True)
class Topology:
    sites: tuple[SiteSpec, ...]
    links: tuple[LinkSpec, ...] = ()

    def site(self, name: str) -> SiteSpec:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)

    def collector_site(self) -> dict[str, str]:
        return {c.name: s.name for s in self.sites for c in s.collectors}
