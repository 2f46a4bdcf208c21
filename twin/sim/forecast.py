"""Live forecast: from a site's state now, when will each pending job (and a hypothetical new one)
start?

The state is what a scheduler shows (Slurm, or a replay's `Simulator.state()`): the running jobs
with their start times, the pending jobs in priority order, the partitions in service. The future
is simulated with no further arrivals, every job running for its predicted time:

- one predictor call for all running and pending jobs (a batch model scores them at once);
- a running job plans and runs for its prediction; if it has already outlived it, the policy's
  correction is applied until the plan reaches now (a job at or past its requested time, which
  Slurm is killing, ends now);
- pending jobs keep their given order (the site's priority, not their submit times) and are all
  queued now; hypothetical jobs are queued after them;
- when the predictor gives a p10-p90 band, the simulation is repeated with every job running for
  its p10, then its p90, still planning with the p50: the start columns `start_early_s` and
  `start_late_s` bracket the forecast (not a strict bound: backfilling is not monotone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import polars as pl

from twin.sim.engine import Occupancy, Simulator, planned_seconds
from twin.sim.errors import SimInputError, SimTimeError
from twin.sim.model import Job, Oversize, SiteState
from twin.sim.policies import Policy
from twin.sim.predictors import History, Predictor, RequestedTime, predict_all

__all__ = ["ForecastRun", "forecast", "forecast_run"]


@dataclass(frozen=True)
class ForecastRun:
    """A forecast's table and, per simulated future ("p50", and "p10" / "p90" when the predictor
    gives a band), where every running and queued job holds resources (twin.sim.Occupancy)."""

    frame: pl.DataFrame
    occupancy: dict[str, Occupancy]


def forecast(
    state: SiteState,
    policy: Policy,
    predictor: Predictor | None = None,
    *,
    extra: Sequence[Job] = (),
    oversize: Oversize = "error",
    plan: Literal["prediction", "requested"] = "prediction",
) -> pl.DataFrame:
    """`forecast_run(...).frame`: the table only."""
    return forecast_run(state, policy, predictor, extra=extra, oversize=oversize, plan=plan).frame


def forecast_run(
    state: SiteState,
    policy: Policy,
    predictor: Predictor | None = None,
    *,
    extra: Sequence[Job] = (),
    oversize: Oversize = "error",
    plan: Literal["prediction", "requested"] = "prediction",
) -> ForecastRun:
    """Predicted start of every pending job of `state`, then of each `extra` (hypothetical) job.

    Columns: job_id, partition, hypothetical, predicted_start_s, predicted_end_s (both null for a
    job left out by oversize="drop"), and start_early_s / start_late_s when the predictor gives
    p10/p90. Hypothetical jobs are queued now, after every pending job.
    `plan` says what the site's scheduler plans with: its own predictions (EASY++), or the
    requested times (Slurm's backfill, most production schedulers) while the jobs still run for the
    predicted time; the latter reproduces such a scheduler's decisions (a job it will not backfill
    because its limit crosses a reservation) and, with good predictions, its real start times.
    Raises SimTimeError for a running job started after `now_s` or a pending job submitted after it."""
    now = state.now_s
    for r in state.running:
        if r.start_s > now:
            raise SimTimeError(f"running job {r.job.job_id} started at {r.start_s}, after the state's time {now}")
    for job in state.pending:
        if job.submit_s > now:
            raise SimTimeError(f"pending job {job.job_id} submitted at {job.submit_s}, after the state's time {now}")
    predictor = predictor if predictor is not None else RequestedTime()
    history = state.history if state.history is not None else History()
    running = [r.job for r in state.running]
    queued = [*state.pending, *extra]
    everyone = running + queued
    for job in everyone:
        if job.req_s is None or job.req_s <= 0:
            raise SimInputError(f"job {job.job_id}: a forecast needs its requested time (the kill limit)")
    prediction = predict_all(predictor, everyone, history)
    p50 = prediction.p50.tolist()
    planned = [planned_seconds(p, job.req_s or 1) for p, job in zip(p50, everyone, strict=True)]
    planned[: len(running)] = [
        _running_plan(p, r.job, now - r.start_s, policy)
        for p, r in zip(planned[: len(running)], state.running, strict=True)
    ]
    scheduled = planned
    if plan == "requested":  # the scheduler plans with the limits; a job past its limit ends now
        scheduled = [job.req_s or 1 for job in everyone]
        for i, r in enumerate(state.running):
            scheduled[i] = max(scheduled[i], now - r.start_s, planned[i])
    starts, occupied = _simulate(state, policy, queued, scheduled, planned, oversize)
    occupancy = {"p50": occupied}
    columns: dict[str, object] = {
        "job_id": [j.job_id for j in queued],
        "partition": [j.partition or state.site.partitions[0].name for j in queued],
        "hypothetical": [False] * len(state.pending) + [True] * len(extra),
        "predicted_start_s": starts,
        "predicted_end_s": [None if s is None else s + p for s, p in zip(starts, planned[len(running) :], strict=True)],
    }
    for column, band in (("start_early_s", prediction.p10), ("start_late_s", prediction.p90)):
        if band is not None:
            runs = _band_runs(band, everyone, state, planned)
            columns[column], occupancy["p10" if column == "start_early_s" else "p90"] = _simulate(
                state, policy, queued, scheduled, runs, oversize
            )
    frame = pl.DataFrame(columns, schema_overrides={c: pl.Int64 for c in columns if c.endswith("_s")})
    return ForecastRun(frame, occupancy)


def _running_plan(planned: int, job: Job, elapsed: int, policy: Policy) -> int:
    """A running job's plan, corrected past `elapsed` as the policy corrects an outlived
    prediction; a job already at or past its limit ends now."""
    req = job.req_s or planned
    initial, n = planned, 0
    while planned < elapsed and planned < req:
        n += 1
        planned = policy.corrected(planned, initial, req, n)
    return max(planned, elapsed)


def _band_runs(band: np.ndarray, everyone: list[Job], state: SiteState, planned: list[int]) -> list[int]:
    runs = [planned_seconds(p, job.req_s or 1) for p, job in zip(band.tolist(), everyone, strict=True)]
    for i, r in enumerate(state.running):  # a running job cannot end before now
        runs[i] = max(runs[i], state.now_s - r.start_s)
    return runs


def _simulate(
    state: SiteState, policy: Policy, queued: list[Job], planned: list[int], runs: list[int], oversize: Oversize
) -> tuple[list[int | None], Occupancy]:
    now = state.now_s
    sim = Simulator(state.site, policy, oversize=oversize, now_s=now, runtime_known=False)
    n_running = len(state.running)
    for i, r in enumerate(state.running):
        job = r.job
        sim.place_running(replace(job, run_s=runs[i], req_s=max(job.req_s or 1, runs[i])), r.start_s, planned[i])
    admitted: list[int | None] = []
    for k, job in enumerate(queued):
        i = n_running + k
        ok = sim.submit(replace(job, run_s=runs[i]), at_s=now, planned_s=planned[i])
        admitted.append(len(sim.jobs) - 1 if ok else None)
    sim.run()
    starts = sim.start_times()
    return [None if a is None else starts[a] for a in admitted], sim.occupancy()
