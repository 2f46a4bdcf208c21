"""Sites and candidates for the engine tests, built by hand so every number is known."""

from __future__ import annotations

import numpy as np

from twin.advice.outcome import Band
from twin.advice.profile import FreeProfile
from twin.advice.rank import Candidate, QueueInputs, RuntimeGuess
from twin.advice.transfer import TransferPlanner
from twin.sim import Occupancy
from twin.topology import Placement, Pricing, Provisioning, SiteSpec
from twin.view import LinkView

NOW = 1_800_000_000.0


def batch_site(
    name: str, capacity: int, busy: list[tuple[int, int, int]] = (), *, pending: int = 0, **placement: object
) -> Candidate:
    """A batch site at site-clock 0 (wall NOW) with jobs holding (start, end, cores)."""
    occ = Occupancy(
        np.zeros(len(busy), np.int64),
        np.array([b[0] for b in busy], np.int64),
        np.array([b[1] for b in busy], np.int64),
        np.array([b[2] for b in busy], np.int64),
    )
    profile = FreeProfile.of(occ, capacity, 0)
    spec = SiteSpec(name, "hpc", placement=Placement(**placement))  # type: ignore[arg-type]
    queue = QueueInputs(now_s=0, seen_wall_s=NOW, profiles={"p50": profile}, pending=pending, predictor="ave2")
    return Candidate(spec, "ok", 5.0, capacity_cores=capacity, queue=queue, data_ages={"state": 5.0, "queue": 5.0})


def cloud_site(name: str, quota: int = 256, price: float = 0.05) -> Candidate:
    spec = SiteSpec(
        name,
        "cloud",
        placement=Placement(
            quota_cores=quota, provisioning=Provisioning(30, 60, 120), pricing=Pricing(core_hour=price)
        ),
    )
    return Candidate(spec, None, None, capacity_cores=quota, idle_cores=float(quota))


def link(a: str, b: str, gbps: float = 10.0, ms: float = 10.0) -> LinkView:
    return LinkView(a, b, "", gbps * 1e9, ms / 1e3, "ok", None, None, None)


def planner(*names: str, gbps: float = 10.0) -> TransferPlanner:
    first = names[0]
    return TransferPlanner([link(first, n, gbps) for n in names[1:]])


def run(p50: float, p10: float | None = None, p90: float | None = None) -> RuntimeGuess:
    return RuntimeGuess(Band(p10 if p10 is not None else p50, p50, p90 if p90 is not None else p50), "test")
