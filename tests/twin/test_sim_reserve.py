"""EASY++ with `reserve="p90"`: candidates judged by the median, running jobs planned at the p90."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from tests.twin.sim_helpers import job, kth_slice, starts
from twin.sim import Ave2, History, Job, Policy, Simulator, Site, simulate
from twin.sim.predictors import RuntimePrediction

FOUR = Site.single("tiny", 4)


class Banded:
    """A quantile model's answers from a table: job id → (p50, p90)."""

    name = "banded"

    def __init__(self, table: Mapping[str, tuple[float, float]]) -> None:
        self.table = dict(table)

    def predict(self, job: Job, history: History) -> float:
        return self.table[job.job_id][0]

    def predict_batch(self, jobs: Sequence[Job], history: History) -> RuntimePrediction:
        p50, p90 = zip(*(self.table[j.job_id] for j in jobs), strict=True)
        return RuntimePrediction(np.array(p50, dtype=float), p90=np.array(p90, dtype=float))

    def observe(self, job: Job) -> None:
        pass


def workload() -> tuple[list[Job], Banded]:
    """Capacity 4. A (3 procs) runs 20 s, predicted 5 (p90 20); B needs all 4 from t=1;
    C (1 proc) runs 10 s, predicted 10 (p90 10), arrives at t=2."""
    jobs = [job("A", 0, 20, 100, 3), job("B", 1, 5, 5, 4), job("C", 2, 10, 10, 1)]
    return jobs, Banded({"A": (5, 20), "B": (5, 5), "C": (10, 10)})


def test_running_jobs_planned_at_their_p90_let_a_candidate_backfill() -> None:
    # B's reservation is at A's planned end: 20 with the p90, so C (2 + 10 = 12) backfills at 2.
    jobs, predictor = workload()
    result = simulate(jobs, FOUR, Policy.easy_plus_plus("reqtime", reserve="p90"), predictor)
    assert starts(result) == {"A": 0, "B": 20, "C": 2}
    # A ended at its p90: no expiry, no correction; the recorded prediction is still the median.
    assert result.jobs["corrections"].to_list() == [0, 0, 0]
    assert result.jobs["predicted_s"].to_list() == [5, 5, 10]


def test_with_the_median_alone_the_same_candidate_waits() -> None:
    # Reserved at 5, C would end at 12: no backfill. At 5 A is corrected to its request (no pass by
    # itself); at 20 A ends and B, the head, takes the machine; C follows B.
    jobs, predictor = workload()
    result = simulate(jobs, FOUR, Policy.easy_plus_plus("reqtime"), predictor)
    assert starts(result) == {"A": 0, "B": 20, "C": 25}
    assert result.jobs["corrections"].to_list() == [1, 0, 0]


def test_a_p90_below_the_run_is_corrected_from_there() -> None:
    # A is planned at its p90 (12) once it starts, outlives it, and is corrected to its request.
    jobs = [job("A", 0, 20, 100, 3)]
    result = simulate(jobs, FOUR, Policy.easy_plus_plus("reqtime", reserve="p90"), Banded({"A": (5, 12)}))
    assert result.jobs["corrections"].to_list() == [1]
    assert result.jobs["end_s"].to_list() == [20]


def test_forecast_style_submissions_take_the_reservation_given() -> None:
    jobs, _ = workload()
    sim = Simulator(FOUR, Policy.easy_plus_plus("reqtime", reserve="p90"), now_s=0)
    for j, (planned, reserve) in zip(jobs, ((5, 20), (5, 5), (10, 10)), strict=True):
        sim.submit(j, planned_s=planned, reserve_s=reserve)
    sim.run()
    assert sim.start_times() == [0, 20, 2]


def test_a_predictor_without_a_p90_plans_exactly_as_before() -> None:
    jobs = kth_slice(1500)
    site = Site.single("kth", 100)
    plain = simulate(jobs, site, Policy.easy_plus_plus("reqtime"), Ave2(), tie_break="predictsim")
    at_p90 = simulate(jobs, site, Policy.easy_plus_plus("reqtime", reserve="p90"), Ave2(), tie_break="predictsim")
    assert plain.jobs.equals(at_p90.jobs)


def test_unknown_reserve_is_refused() -> None:
    with pytest.raises(ValueError, match="reserve must be"):
        Policy("x", backfill=True, reserve="p95")  # type: ignore[arg-type]
