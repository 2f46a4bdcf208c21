"""Live start-time forecasts for batch sites, and how good they turned out to be.

From what the twin knows of a site now (its queue as the Slurm collector or a replay last saw it,
its CPUs in service, the jobs that finished there before), build a `twin.sim` state and simulate
it forward. Choices, each documented because they shape the answer:

- The site is one pool of its CPUs in service (`batch_cpus` minus `other`, i.e. not down or
  drained). Slurm partitions often share nodes, so per-partition pools would double-count.
- Pending jobs keep submit order (the replay's order; Slurm's JSON does not give the priority).
- The time is the site's own clock: `observed_s` of the queue (trace time for a replay).
- A job without a requested time gets the longest request seen in the queue (else 1 day); a job
  wider than the site is left out; both are counted in `corrections`, never silently.
- Predictors: `requested` (what Slurm assumes), `ave2` (the user's last two completed runtimes,
  from the store's job history), or any `twin.sim` Predictor passed in (the learned models).

`ForecastTracker` keeps the first forecast made for every pending job and scores it when the job
is seen starting: the forecast's past accuracy, per site, bounded in memory.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import polars as pl

from twin.scoring import FirstPredictions
from twin.sim import Job, Occupancy, Policy, RunningJob, Site, SiteState, forecast_run, queue_order
from twin.sim.predictors import Ave2, History, Predictor, RequestedTime

__all__ = [
    "Forecast",
    "ForecastAccuracy",
    "ForecastTracker",
    "PredictorName",
    "build_state",
    "forecast_queue",
    "history_of",
    "queue_now_s",
]

PredictorName = Literal["requested", "ave2"]
_DEFAULT_REQ_S = 86_400


@dataclass(frozen=True)
class Forecast:
    site: str
    now_s: int
    """The site's clock when its queue was read (trace time for a replayed site)."""
    processors: int
    predictor: str
    jobs: pl.DataFrame
    """job_id, hypothetical, submit_s, procs, req_s, predicted_start_s, predicted_end_s,
    predicted_wait_s (and start_early_s / start_late_s with a p10-p90 predictor), and the
    scheduler's own estimate `scheduler_start_s` where it gave one."""
    corrections: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    occupancy: Mapping[str, Occupancy] = field(default_factory=dict)
    """Where every running and queued job holds CPUs in each simulated future ("p50", and "p10" /
    "p90" with a banded predictor): what placement advice inserts a new job into."""


def _jobs(rows: pl.DataFrame, default_req: int, corrections: dict[str, int]) -> list[Job]:
    out = []
    for r in rows.iter_rows(named=True):
        req = r["req_walltime_s"]
        if req is None or req <= 0:
            corrections["request_assumed"] = corrections.get("request_assumed", 0) + 1
            req = default_req
        procs = r["alloc_cores"] or r["req_cores"] or 1
        out.append(Job(str(r["job_id"]), int(r["submit_s"] or 0), None, int(req), int(procs), user=r["user"]))
    return out


def build_state(
    queue: pl.DataFrame,
    processors: int,
    site: str,
    *,
    finished: pl.DataFrame | None = None,
    now_s: int | None = None,
) -> tuple[SiteState, dict[str, int]]:
    """A `twin.sim` state from job-history rows of the active queue (PENDING/RUNNING) and, for
    history-based predictors, the site's finished jobs (in completion order)."""
    corrections: dict[str, int] = {}
    if processors < 1:
        raise ValueError(f"site {site!r}: no CPUs in service, nothing can be forecast")
    observed = [int(v) for v in queue["observed_s"].drop_nulls().to_list()] if queue.height else []
    now = now_s if now_s is not None else (max(observed) if observed else int(time.time()))
    requests = [int(v) for v in queue["req_walltime_s"].drop_nulls().to_list() if v and v > 0]
    default_req = max(requests) if requests else _DEFAULT_REQ_S
    fits = pl.coalesce("alloc_cores", "req_cores").fill_null(1) <= processors
    too_wide = queue.filter(~fits).height
    if too_wide:
        corrections["wider_than_site"] = too_wide
    queue = queue.filter(fits)
    running_rows = queue.filter((pl.col("state") == "RUNNING") & pl.col("start_s").is_not_null())
    busy = int(running_rows.select(pl.coalesce("alloc_cores", "req_cores").fill_null(1).sum()).item() or 0)
    if busy > processors:  # the scheduler runs more than we were told it has: believe the jobs
        corrections["capacity_raised_to_running"] = busy - processors
        processors = busy
    pending_rows = queue.filter(pl.col("state") == "PENDING").sort("submit_s", "job_id")
    running = tuple(
        RunningJob(job, min(int(start), now))
        for job, start in zip(_jobs(running_rows, default_req, corrections), running_rows["start_s"], strict=True)
    )
    pending = tuple(
        sorted(  # submit order, numeric ids by value ("9" before "10"), as the simulator orders
            (
                j if j.submit_s <= now else Job(j.job_id, now, j.run_s, j.req_s, j.procs, user=j.user)
                for j in _jobs(pending_rows, default_req, corrections)
            ),
            key=queue_order,
        )
    )
    history = history_of(finished, now) if finished is not None and finished.height else None
    return SiteState(now, Site.single(site, processors), running, pending, history), corrections


def queue_now_s(queue: pl.DataFrame, default: float) -> int:
    """The site's clock when its queue was read: the newest `observed_s` (trace time for a replay)."""
    observed = queue["observed_s"].drop_nulls() if queue.height else None
    return int(observed.max()) if observed is not None and observed.len() else int(default)  # type: ignore[arg-type]


def history_of(finished: pl.DataFrame, now_s: int) -> History:
    """Each user's completed run times (AVE2's input) from finished job rows, in completion order."""
    done = finished.filter(pl.col("end_s").is_not_null() & (pl.col("end_s") <= now_s)).sort("end_s")
    history = History()
    for user, start, end in done.select("user", "start_s", "end_s").iter_rows():
        if start is not None and end >= start:
            history.record(user, int(end - start))
    return history


def predictor_for(name: PredictorName) -> Predictor:
    if name == "requested":
        return RequestedTime()
    if name == "ave2":
        return Ave2()
    raise ValueError(f"unknown predictor {name!r}: use requested or ave2")


def forecast_queue(
    queue: pl.DataFrame,
    processors: int,
    site: str,
    *,
    predictor: PredictorName | Predictor = "ave2",
    finished: pl.DataFrame | None = None,
    extra: Sequence[Job] = (),
    policy: Policy | None = None,
    plan: Literal["prediction", "requested"] = "requested",
) -> Forecast:
    """Predicted start of every pending job, and of each hypothetical `extra` job. By default the
    site's scheduler is taken to plan with the requested times (as Slurm's backfill does) while
    jobs run for the predicted time; `plan="prediction"` models an EASY++ scheduler."""
    started = time.perf_counter()
    state, corrections = build_state(queue, processors, site, finished=finished)
    processors = state.site.partitions[0].processors  # raised if more was running than reported
    extra = [replace(job, submit_s=state.now_s) for job in extra]  # hypothetical jobs arrive now
    chosen = predictor_for(predictor) if isinstance(predictor, str) else predictor
    name = predictor if isinstance(predictor, str) else type(predictor).__name__
    for job in extra:
        if job.procs > processors:
            raise ValueError(f"the job needs {job.procs} CPUs; {site} has {processors} in service")
    run = forecast_run(state, policy or Policy.easy(), chosen, extra=list(extra), oversize="drop", plan=plan)
    frame = run.frame.with_columns(pl.col("job_id").cast(pl.String), pl.col("hypothetical").cast(pl.Boolean))
    known = pl.DataFrame(
        {
            "job_id": [j.job_id for j in (*state.pending, *extra)],
            "submit_s": [j.submit_s for j in (*state.pending, *extra)],
            "procs": [j.procs for j in (*state.pending, *extra)],
            "req_s": [j.req_s for j in (*state.pending, *extra)],
        },
        schema={"job_id": pl.String, "submit_s": pl.Int64, "procs": pl.Int64, "req_s": pl.Int64},
    )
    scheduler = queue.select(pl.col("job_id").cast(pl.String), pl.col("expected_start_s").alias("scheduler_start_s"))
    jobs = (
        frame.join(known, on="job_id", how="left")
        .join(scheduler, on="job_id", how="left")
        .with_columns((pl.col("predicted_start_s") - state.now_s).alias("predicted_wait_s"))
    )
    seconds = time.perf_counter() - started
    return Forecast(site, state.now_s, processors, name, jobs, corrections, seconds, run.occupancy)


@dataclass(frozen=True)
class ForecastAccuracy:
    site: str
    scored: int
    within_1min: float | None
    within_10min: float | None
    within_1h: float | None
    median_abs_error_s: float | None
    errors_s: tuple[int, ...]
    """The most recent errors (predicted - actual start), for a plot."""


class ForecastTracker:
    """The first forecast of each pending job, scored once the job is seen running: the
    forecast's past accuracy, live (see twin.scoring)."""

    def __init__(self, max_pending: int = 50_000, max_scored: int = 5_000) -> None:
        self._log = FirstPredictions(max_pending, max_scored)

    def record(self, result: Forecast) -> None:
        rows = result.jobs.filter(~pl.col("hypothetical") & pl.col("predicted_start_s").is_not_null())
        self._log.record(result.site, rows.select("job_id", "predicted_start_s").iter_rows())

    def observe(self, site: str, jobs: pl.DataFrame) -> int:
        """Score open forecasts of jobs that now have a start time; returns how many."""
        started = jobs.filter(pl.col("start_s").is_not_null()).select(pl.col("job_id").cast(pl.String), "start_s")
        return self._log.score(site, started.iter_rows())

    def accuracy(self, site: str) -> ForecastAccuracy:
        errors = [int(predicted - actual) for predicted, actual in self._log.pairs(site)]
        if not errors:
            return ForecastAccuracy(site, 0, None, None, None, None, ())
        absolute = sorted(abs(e) for e in errors)
        n = len(absolute)

        def share(limit: int) -> float:
            return sum(1 for e in absolute if e <= limit) / n

        median = absolute[n // 2] if n % 2 else (absolute[n // 2 - 1] + absolute[n // 2]) / 2
        return ForecastAccuracy(site, n, share(60), share(600), share(3600), float(median), tuple(errors[-2000:]))
