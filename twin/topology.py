"""The continuum's shape as the twin sees it: sites, the collectors that feed them, the links
between them. Built by the service from the typed config; the twin never reads config files."""

from __future__ import annotations

from dataclasses import dataclass

from models.containers.config import ContainerConfig
from twin.errors import UnknownSiteError
from twin.view import SiteKind

__all__ = [
    "CollectorSpec",
    "Energy",
    "LinkSpec",
    "PartitionLimits",
    "Placement",
    "Pricing",
    "Provisioning",
    "SiteSpec",
    "Topology",
]


@dataclass(frozen=True)
class CollectorSpec:
    name: str
    type: str
    interval_s: float


@dataclass(frozen=True)
class PartitionLimits:
    """What a partition accepts (a job asking for more is not placed there)."""

    name: str
    max_walltime_s: int | None = None
    max_nodes: int | None = None
    max_cores: int | None = None
    gpus_per_node: int = 0


@dataclass(frozen=True)
class Pricing:
    """What running here costs: an HPC allocation rate or a cloud's on-demand price per core-hour
    and GPU-hour, plus egress per GB leaving the site."""

    core_hour: float = 0.0
    gpu_hour: float = 0.0
    egress_per_gb: float = 0.0
    currency: str = "EUR"


@dataclass(frozen=True)
class Energy:
    """Green Algorithms' model (Lannelongue et al., Adv. Sci. 2021): power = cores × TDP per core ×
    usage + memory GB × 0.3725 W (+ GPUs × their TDP × usage), × PUE; CO2 = energy × the grid's
    carbon intensity (gCO2e/kWh)."""

    tdp_per_core_w: float = 12.0
    gpu_tdp_w: float = 250.0
    usage: float = 1.0
    pue: float = 1.56
    carbon_intensity_g_per_kwh: float = 475.0
    carbon_source: str = "world average (codecarbon)"


@dataclass(frozen=True)
class Provisioning:
    """A cloud site has no queue: a new instance takes this long to come up (p10 / p50 / p90 s)."""

    p10_s: float = 45.0
    p50_s: float = 90.0
    p90_s: float = 240.0


@dataclass(frozen=True)
class Placement:
    """What placement advice needs to know of a site beyond its live state."""

    speed: float = 1.0
    """Relative speed: a job runs in runtime × (reference speed / speed) here."""
    speed_configured: bool = True
    """False: learn the speed from jobs the same users ran here and at the home site (twin.advice.speeds)."""
    cores_per_node: int | None = None
    memory_per_node_bytes: int | None = None
    gpus: int = 0
    """GPUs in the site (a job asking for GPUs is not placed where there are none)."""
    max_walltime_s: int | None = None
    partitions: tuple[PartitionLimits, ...] = ()
    quota_cores: int | None = None
    """Cloud: cores we may run at once; edge: defaults to the hosts' CPUs."""
    quota_gpus: int | None = None
    provisioning: Provisioning | None = None
    """Set for cloud sites."""
    pricing: Pricing = Pricing()
    energy: Energy = Energy()
    clock_speed: float = 1.0
    """Site seconds per wall second: a replayed site's trace runs `speed` times faster."""
    containers: ContainerConfig | None = None
    """What this site forces of a job's container configuration (its runtime's network mode, say)."""


@dataclass(frozen=True)
class SiteSpec:
    name: str
    kind: SiteKind
    description: str = ""
    nodes: tuple[str, ...] = ()
    collectors: tuple[CollectorSpec, ...] = ()
    placement: Placement = Placement()


@dataclass(frozen=True)
class LinkSpec:
    a: str
    b: str
    description: str = ""
    bandwidth_bps: float | None = None
    latency_s: float | None = None
    interface: str | None = None
    """A local network device whose counters measure the link's traffic."""
    probed: bool = False
    """A `link_probe` collector measures this link (its state then follows its measurements)."""


@dataclass(frozen=True)
class Topology:
    sites: tuple[SiteSpec, ...]
    links: tuple[LinkSpec, ...] = ()

    def site(self, name: str) -> SiteSpec:
        for site in self.sites:
            if site.name == name:
                return site
        raise UnknownSiteError(name, [s.name for s in self.sites])

    def collector_site(self) -> dict[str, str]:
        return {c.name: s.name for s in self.sites for c in s.collectors}
