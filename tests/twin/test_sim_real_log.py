"""Invariants on a real log: the first 2,000 KTH-SP2 jobs (the trace shipped in the repo), cleaned
with the SC'15 strong filter, under every policy."""

from __future__ import annotations

import polars as pl
import pytest

from tests.twin.sim_helpers import kth_slice
from twin.sim import Ave2, Clairvoyant, Policy, RequestedTime, SimResult, Site, compute, simulate

KTH = Site.single("KTH-SP2", 100)  # MaxProcs: 100

POLICIES = {
    "fcfs": (Policy.fcfs(), RequestedTime()),
    "easy": (Policy.easy(), RequestedTime()),
    "easy-sjbf": (Policy.easy("sjbf"), RequestedTime()),
    "easy++": (Policy.easy_plus_plus("reqtime"), Ave2()),
    "easy++tsafrir": (Policy.easy_plus_plus("tsafrir"), Ave2()),
    "clairvoyant": (Policy.easy_plus_plus(), Clairvoyant()),
}


@pytest.fixture(scope="module")
def results() -> dict[str, SimResult]:
    jobs = kth_slice(2000)
    assert len(jobs) == 2000
    return {
        f"{name}/{tie}": simulate(jobs, KTH, policy, type(predictor)(), tie_break=tie)  # type: ignore[arg-type]
        for name, (policy, predictor) in POLICIES.items()
        for tie in ("batched", "predictsim")
    }


def peak_usage(frame: pl.DataFrame) -> int:
    """Most processors in use at any instant (a job's end frees before a start at the same second)."""
    events = pl.concat(
        [
            frame.select(pl.col("start_s").alias("t"), pl.col("procs").alias("delta"), pl.lit(1).alias("order")),
            frame.select(pl.col("end_s").alias("t"), (-pl.col("procs")).alias("delta"), pl.lit(0).alias("order")),
        ]
    ).sort("t", "order")
    return int(events["delta"].cum_sum().max())  # type: ignore[arg-type]


def test_every_job_runs_once_after_its_submission_for_its_run_time(results: dict[str, SimResult]) -> None:
    for name, result in results.items():
        jobs = result.jobs
        assert jobs["start_s"].null_count() == 0, name
        assert (jobs["start_s"] >= jobs["submit_s"]).all(), name
        assert (jobs["end_s"] - jobs["start_s"] == jobs["run_s"]).all(), name
        assert (jobs["run_s"] <= jobs["req_s"]).all(), name


def test_capacity_is_never_exceeded(results: dict[str, SimResult]) -> None:
    for name, result in results.items():
        assert peak_usage(result.jobs) <= 100, name


def test_fcfs_starts_jobs_in_submission_order(results: dict[str, SimResult]) -> None:
    for tie in ("batched", "predictsim"):
        start = results[f"fcfs/{tie}"].jobs["start_s"]  # rows are in queue order
        assert (start.diff().drop_nulls() >= 0).all()


def test_backfilling_helps_and_better_predictions_help_more(results: dict[str, SimResult]) -> None:
    bsld = {name: compute(r).avebsld for name, r in results.items()}
    assert bsld["easy/batched"] < bsld["fcfs/batched"]
    assert bsld["clairvoyant/batched"] < bsld["easy/batched"]
