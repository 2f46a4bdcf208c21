"""Relative speeds learned from the same users' same requests run at two sites."""

from __future__ import annotations

import random

import polars as pl
import pytest

from telemetry.jobs import conform_jobs
from twin.advice.speeds import learn_speeds


def _jobs(site: str, speed: float, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        user = f"u{i % 40}"
        req = [600, 3600, 7200][i % 3]
        base = 300 + 37 * (i % 40) + req // 10  # the same user's same request: the same work
        run = int(base / speed * rng.uniform(0.9, 1.1))
        out.append({"site": site, "job_id": f"{site}{i}", "user": user, "state": "COMPLETED", "submit_s": i,
                    "start_s": 1000 * i, "end_s": 1000 * i + run, "req_walltime_s": req, "req_cores": 4})  # fmt: skip
    return out


def test_a_site_twice_as_fast_is_learned_twice_as_fast() -> None:
    rows = _jobs("home", 1.0, 240, 1) + _jobs("fast", 2.0, 240, 2) + _jobs("rare", 0.5, 12, 3)
    jobs = conform_jobs(pl.DataFrame(rows)).collect()
    learned = learn_speeds(jobs, "home", 1.0, min_pairs=20)
    assert learned["fast"].speed == pytest.approx(2.0, rel=0.06) and learned["fast"].pairs >= 100
    assert "rare" not in learned  # 12 pairs: too few to say
    assert learn_speeds(jobs, "home", 1.5)["fast"].speed == pytest.approx(3.0, rel=0.06)  # relative to the reference


def test_killed_or_unfinished_jobs_say_nothing_of_speed() -> None:
    rows = _jobs("home", 1.0, 120, 1) + [dict(r, state="TIMEOUT") for r in _jobs("fast", 2.0, 120, 2)]
    assert learn_speeds(conform_jobs(pl.DataFrame(rows)).collect(), "home") == {}
