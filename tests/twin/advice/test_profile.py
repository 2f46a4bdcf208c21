"""Inserting a job into a batch site's free capacity: checked against a brute-force scan."""

from __future__ import annotations

import random

import numpy as np
import pytest

from twin.advice.profile import FreeProfile
from twin.sim import Occupancy


def _occupancy(jobs: list[tuple[int, int, int]]) -> Occupancy:
    return Occupancy(
        partition=np.zeros(len(jobs), np.int64),
        start_s=np.array([j[0] for j in jobs], np.int64),
        end_s=np.array([j[1] for j in jobs], np.int64),
        units=np.array([j[2] for j in jobs], np.int64),
    )


def _brute(jobs: list[tuple[int, int, int]], capacity: int, now: int, units: int, hole: int, ready: int) -> int:
    def free(t: int) -> int:
        return capacity - sum(u for s, e, u in jobs if max(s, now) <= t < e)

    t = max(now, ready)
    while True:
        if all(free(x) >= units for x in range(t, t + hole)):
            return t
        t += 1


def test_a_job_waits_for_the_hole_it_needs_not_the_first_free_instant() -> None:
    # 10 CPUs: 6 busy until 100; 8 busy during [150, 300): a 4-CPU job needing 160 s cannot
    # start at 0 or 100 (it would overlap [150, 300), where only 2 are free) and must wait for 300.
    profile = FreeProfile.of(_occupancy([(0, 100, 6), (150, 300, 8)]), capacity=10, now_s=0)
    assert profile.earliest(4, 160) == 300
    assert profile.earliest(4, 150) == 0  # short enough to end by 150
    assert profile.earliest(5, 50) == 100  # too wide for the first 100 s, fits between 100 and 150
    assert profile.earliest(2, 1000) == 0
    assert profile.earliest(11, 1) is None  # wider than the site
    assert profile.earliest(4, 100, not_before=60) == 300


def test_bookings_take_capacity_and_move_the_next_job() -> None:
    profile = FreeProfile.of(_occupancy([]), capacity=8, now_s=1000)
    assert profile.earliest(8, 60) == 1000
    booked = profile.reserve(1000, 1060, 6)
    assert booked.earliest(8, 60) == 1060 and booked.earliest(2, 60) == 1000
    assert booked.free_at(1030) == 2 and booked.free_at(1060) == 8


@pytest.mark.parametrize("seed", range(150))
def test_insertion_matches_a_brute_force_scan(seed: int) -> None:
    rng = random.Random(seed)
    capacity, now = rng.randint(4, 16), rng.randint(0, 20)
    jobs = []
    for _ in range(rng.randint(0, 12)):
        start = rng.randint(0, 60)
        jobs.append((start, start + rng.randint(1, 40), rng.randint(1, capacity)))
    # keep only a feasible occupancy (never more than the capacity in use)
    feasible = []
    for job in jobs:
        trial = [*feasible, job]
        if all(sum(u for s, e, u in trial if max(s, now) <= t < e) <= capacity for t in range(now, 120)):
            feasible.append(job)
    profile = FreeProfile.of(_occupancy(feasible), capacity, now)
    units, hole, ready = rng.randint(1, capacity), rng.randint(1, 50), now + rng.randint(0, 30)
    assert profile.earliest(units, hole, not_before=ready) == _brute(feasible, capacity, now, units, hole, ready)
