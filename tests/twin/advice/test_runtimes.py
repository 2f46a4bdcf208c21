"""A new job's run time at each site without a learned model: AVE2 where the user has two runs,
borrowed (scaled by speed) from the best-informed site where it has fewer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from twin.advice.request import JobRequest
from twin.advice.runtimes import guess_runtimes
from twin.sim.predictors import History
from twin.topology import Placement, SiteSpec


@dataclass
class Source:
    site: str
    now_s: int
    history: History

    def hypothetical(self) -> None:
        return None


def _history(*runs: int) -> History:
    h = History()
    for r in runs:
        h.record("alice", r)
    return h


def test_a_site_that_saw_the_user_once_borrows_the_informed_sites_guess() -> None:
    sites = (
        SiteSpec("home", "hpc", placement=Placement(speed=1.0)),
        SiteSpec("fast", "hpc", placement=Placement(speed=2.0)),
        SiteSpec("cloud", "cloud", placement=Placement(speed=1.0)),
    )
    bases = {"home": Source("home", 0, _history(3000, 5000)), "fast": Source("fast", 0, _history(1200))}
    request = JobRequest(cores=4, walltime_s=36_000, user="alice")
    guesses = guess_runtimes([request], sites, bases, ["home"])[0]
    assert guesses["home"].band.p50 == 4000 and guesses["home"].source == "ave2"
    assert guesses["fast"].band.p50 == pytest.approx(2000) and "at home, ×2 speed" in guesses["fast"].source
    assert guesses["cloud"].band.p50 == pytest.approx(4000)
    stranger = guess_runtimes([JobRequest(cores=4, walltime_s=600, user="bob")], sites, bases, ["home"])[0]
    assert all(g.band.p50 == 600 and "no history" in g.source for g in stranger.values())
