"""The event-driven engine: submissions, completions and prediction expiries on one clock.

Determinism (same input, same output, bit for bit) rests on these tie-breaking rules:

- Queue order is submission order; jobs submitted in the same second are ordered by job id
  (numerically when the ids are numbers, as in SWF logs; as strings otherwise). `Simulator.submit`
  takes jobs already in that order; `simulate` sorts them.
- Completions at the same instant are handled in the order the jobs started.
- Time advances from instant to instant; at each, prediction expiries come first: a running job
  reaching its predicted end without having ended gets its prediction corrected upward (the
  policy's `correction`), which moves its planned end. A correction alone triggers no
  scheduling pass: it frees nothing, and what it allows is picked up at the next event.
- Then, with `tie_break="batched"` (the default; what the brief and AccaSim do): every completion
  (each frees its units, the predictor learns), then every submission (each gets its prediction,
  the completions of this instant known), then ONE scheduling pass per partition that changed.
- With `tie_break="predictsim"` (the SC'15 artifact's pyss simulator, reproduced exactly): a job
  ending exactly at its planned end frees its units at the start of the instant (pyss reads free
  processors off its planned profile); then each submission, each followed by a pass; then each
  completion (the predictor learns), each followed by a pass. So a job submitted at the instant
  another ends earlier than planned is first considered without that job's processors.
- With `Policy(reserve="p90")` a job's end is re-planned at its predicted p90 when it starts (if
  that is later than its prediction); its expiry and corrections follow from there.
- Partitions are independent queues on separate resources; they share the clock, the predictor
  and the history (a user's jobs on one partition inform predictions on another).

Jobs run for their actual run time (killed at the requested time by admission); the scheduler
plans with predictions. FCFS never looks at predictions, so no expiries are tracked there.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from twin.sim.errors import SimInputError, SimTimeError
from twin.sim.model import Admission, Corrections, Job, Oversize, RunningJob, Site, SiteState
from twin.sim.policies import Policy
from twin.sim.predictors import History, Predictor, RequestedTime, predict_all
from twin.sim.scheduler import PartitionState

__all__ = ["Occupancy", "SimResult", "Simulator", "TieBreak", "planned_seconds", "queue_order", "simulate"]

TieBreak = Literal["batched", "predictsim"]
_EXPIRE, _END = 0, 1


def queue_order(job: Job) -> tuple[int, int, int, str]:
    """Sort key: submit time, then job id (numeric ids by value)."""
    jid = job.job_id
    if jid.isdigit():
        digits = jid.lstrip("0")
        return (job.submit_s, 0, len(digits), digits)
    return (job.submit_s, 1, 0, jid)


def planned_seconds(prediction: float, req: int) -> int:
    """A prediction as the engine plans with it: whole seconds, rounded up, within [1, req]."""
    if math.isnan(prediction):
        raise SimInputError("predictor returned NaN")
    whole = int(prediction)
    if whole < prediction:
        whole += 1
    return 1 if whole < 1 else (req if whole > req else whole)


@dataclass(frozen=True)
class Occupancy:
    """Jobs holding resources over time, one entry per job, as numpy arrays of equal length."""

    partition: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    units: np.ndarray


@dataclass(frozen=True)
class SimResult:
    """Per-job outcome (one row per admitted job, in admission order) and what admission changed."""

    jobs: pl.DataFrame
    """job_id, partition, user, submit_s, start_s, end_s, wait_s, run_s, req_s, procs, units,
    cores (processors held), predicted_s (initial prediction), corrections; start/end null for
    jobs not started by the end of the run."""
    corrections: Corrections
    site: Site
    policy: Policy
    predictor: str


class Simulator:
    """A site's queue over time. Submit jobs in time order, `run`, read `result()` or `state()`."""

    def __init__(
        self,
        site: Site,
        policy: Policy,
        predictor: Predictor | None = None,
        *,
        oversize: Oversize = "error",
        history: History | None = None,
        now_s: int | None = None,
        tie_break: TieBreak = "batched",
        refresh_predictions: bool = False,
        runtime_known: bool = True,
    ) -> None:
        """`refresh_predictions`: re-predict a waiting job whenever its user completes a job
        (the older predictsim EASY++ re-predicted the whole queue at every pass; the SC'15
        artifact predicts once, at submission, which is the default). `runtime_known=False`
        (forecasts): pending jobs carry their planned time as run time, no admission correction."""
        if tie_break not in ("batched", "predictsim"):
            raise ValueError(f"tie_break must be 'batched' or 'predictsim', got {tie_break!r}")
        self.site = site
        self.policy = policy
        self.predictor: Predictor = predictor if predictor is not None else RequestedTime()
        depth = max(2, getattr(predictor, "history_depth", 2))
        self.history = history if history is not None else History(depth)
        self.admission = Admission(site, oversize, runtime_known)
        self.now: int | None = now_s
        self._per_event = tie_break == "predictsim"
        self._refresh = refresh_predictions
        self._track_expiry = policy.backfill
        self._reserve_p90 = policy.backfill and policy.reserve == "p90"
        sjbf = policy.order == "sjbf"
        self._parts = [PartitionState(p.capacity, policy.backfill, sjbf, self._started) for p in site.partitions]
        # per job, indexed by admission order
        self.jobs: list[Job] = []
        self._part: list[int] = []
        self._units: list[int] = []
        self._queued_at: list[int] = []
        self._given: list[int | None] = []
        self._start: list[int | None] = []
        self._end: list[int | None] = []
        self._planned: list[int] = []
        self._initial: list[int] = []
        self._reserve: list[int | None] = []
        """The planned run once started (policy reserve="p90"), when later than the prediction."""
        self._ncorr: list[int] = []
        self._heap: list[tuple[int, int, int, int]] = []
        """(time, _EXPIRE or _END, start sequence, job)."""
        self._seq = 0
        self._arrivals: list[int] = []
        self._next_arrival = 0
        self._last_arrival_s: int | None = None
        self._waiting_of: dict[str | None, set[int]] = {}
        """user → their waiting jobs (only with refresh_predictions)."""

    # -------------------------------------------------------------------------------- input
    def submit(
        self, job: Job, *, at_s: int | None = None, planned_s: int | None = None, reserve_s: int | None = None
    ) -> bool:
        """Queue a job (at its submit time, or `at_s`), after every job submitted before it.

        `planned_s` fixes its prediction (a forecast asks the predictor for all jobs at once);
        `reserve_s` its planned run once started (used with the policy's reserve="p90").
        Returns False when admission dropped it (oversize="drop"). Raises SimTimeError when the
        job would arrive before the clock or before the previous submission."""
        t = job.submit_s if at_s is None else at_s
        if self.now is not None and t < self.now:
            raise SimTimeError(f"job {job.job_id}: submitted at {t}, before the simulator's clock ({self.now})")
        if self._last_arrival_s is not None and t < self._last_arrival_s:
            raise SimTimeError(
                f"job {job.job_id}: submitted at {t}, before the previous submission ({self._last_arrival_s}):"
                " submit jobs in time order (simulate() sorts them)"
            )
        j = self._admit(job, t)
        if j is None:
            return False
        self._given[j] = planned_s
        if reserve_s is not None and self._reserve_p90:
            self._reserve[j] = planned_seconds(reserve_s, job.req_s or 1)
        self._arrivals.append(j)
        self._last_arrival_s = t
        return True

    def place_running(self, job: Job, start_s: int, planned_s: int) -> bool:
        """Load a job that is already running (a live state): it holds its units until
        start + run (its actual end) and plans to end at start + planned_s."""
        if self.now is None or start_s > self.now:
            raise SimTimeError(f"job {job.job_id}: started at {start_s}, after the state's time ({self.now})")
        j = self._admit(job, start_s)
        if j is None:
            return False
        part = self._parts[self._part[j]]
        if self._units[j] > part.free:
            name = self.site.partitions[self._part[j]].name
            raise SimInputError(
                f"running jobs need more than partition {name!r} has ({part.capacity} units): job {job.job_id}"
            )
        if start_s + self._run(j) < self.now:
            raise SimInputError(f"running job {job.job_id}: would have ended at {start_s + self._run(j)}")
        self._planned[j] = self._initial[j] = planned_s
        part.place(j, self._units[j], start_s + planned_s)
        self._started(j, start_s, planned_s)
        return True

    def _admit(self, job: Job, queued_at: int) -> int | None:
        admitted = self.admission.admit(job)
        if admitted is None:
            return None
        job, part, units = admitted
        j = len(self.jobs)
        self.jobs.append(job)
        self._part.append(part)
        self._units.append(units)
        self._queued_at.append(queued_at)
        self._given.append(None)
        self._start.append(None)
        self._end.append(None)
        self._planned.append(0)
        self._initial.append(0)
        self._reserve.append(None)
        self._ncorr.append(0)
        return j

    def _run(self, j: int) -> int:
        run = self.jobs[j].run_s
        if run is None:
            raise SimInputError(f"job {self.jobs[j].job_id}: no run time to simulate")
        return run

    # -------------------------------------------------------------------------------- the loop
    def run(self, until: int | None = None) -> None:
        """Process every instant before `until` (all of them when None); the clock ends at `until`."""
        if until is not None and self.now is not None and until < self.now:
            raise SimTimeError(f"cannot run until {until}: the clock is already at {self.now}")
        heap, arrivals, queued_at = self._heap, self._arrivals, self._queued_at
        inf = math.inf
        while True:
            ta = queued_at[arrivals[self._next_arrival]] if self._next_arrival < len(arrivals) else inf
            te = heap[0][0] if heap else inf
            t = ta if ta < te else te
            if t == inf or (until is not None and t >= until):
                break
            now = int(t)
            self.now = now
            ends: list[int] = []
            while heap and heap[0][0] == now:  # every event at `now`: expiries first, then ends by start order
                _, kind, _, j = heapq.heappop(heap)
                if kind == _EXPIRE:
                    self._correct(j, now)
                else:
                    ends.append(j)
            if self._per_event:
                self._instant_predictsim(now, ends, ta == now)
            else:
                for j in ends:
                    self._finish(j, now)
                if ta == now:
                    self._arrive(now, self._next_arrival_batch(now))
                self._schedule(now)
        if until is not None:
            self.now = until

    def _schedule(self, now: int) -> None:
        for part in self._parts:
            if part.dirty:
                part.schedule(now)

    def _instant_predictsim(self, now: int, ends: list[int], arrivals: bool) -> None:
        start, planned = self._start, self._planned
        released = [j for j in ends if (start[j] or 0) + planned[j] == now]
        for j in released:  # ended as planned: free from the start of the instant
            self._release(j)
        for part in self._parts:
            part.dirty = False
        if arrivals:
            for j in self._next_arrival_batch(now):
                self._arrive(now, [j])
                self._schedule(now)
        freed = set(released)
        for j in ends:
            self._finish(j, now, release=j not in freed)
            self._parts[self._part[j]].dirty = True
            self._schedule(now)

    def _next_arrival_batch(self, now: int) -> list[int]:
        arrivals, queued_at = self._arrivals, self._queued_at
        first = last = self._next_arrival
        while last < len(arrivals) and queued_at[arrivals[last]] == now:
            last += 1
        self._next_arrival = last
        return arrivals[first:last]

    def _arrive(self, now: int, batch: list[int]) -> None:
        ask = [j for j in batch if self._given[j] is None]
        if len(ask) == 1 and not self._reserve_p90:
            job = self.jobs[ask[0]]
            self._given[ask[0]] = planned_seconds(self.predictor.predict(job, self.history), job.req_s or 1)
        elif ask:
            self._predict_batch(ask)
        for j in batch:
            planned = self._given[j]
            assert planned is not None
            self._planned[j] = self._initial[j] = planned
            self._parts[self._part[j]].enqueue(j, self._units[j], planned)
            if self._refresh:
                self._waiting_of.setdefault(self.jobs[j].user, set()).add(j)

    def _predict_batch(self, ask: list[int]) -> None:
        """One predictor call for the jobs of `ask`; with reserve="p90", also their planned run
        once started, where the predictor gives a p90 above the prediction."""
        jobs = [self.jobs[j] for j in ask]
        prediction = predict_all(self.predictor, jobs, self.history)
        upper = prediction.p90 if self._reserve_p90 and prediction.p90 is not None else None
        for k, (j, job, p) in enumerate(zip(ask, jobs, prediction.p50.tolist(), strict=True)):
            req = job.req_s or 1
            self._given[j] = planned = planned_seconds(p, req)
            if upper is not None and not math.isnan(high := float(upper[k])):
                reserve = planned_seconds(high, req)
                self._reserve[j] = reserve if reserve > planned else None

    def _started(self, j: int, now: int, planned: int) -> None:
        """Called by a partition's pass (and for loaded running jobs): book the end and expiry."""
        reserve = self._reserve[j]
        if reserve is not None and reserve > planned:
            self._parts[self._part[j]].replan(j, self._units[j], now + planned, now + reserve)
            self._planned[j] = planned = reserve
        self._start[j] = now
        self._seq += 1
        run = self._run(j)
        heapq.heappush(self._heap, (now + run, _END, self._seq, j))
        if self._track_expiry and planned < run:
            heapq.heappush(self._heap, (now + planned, _EXPIRE, self._seq, j))
        if self._refresh:
            self._waiting_of.get(self.jobs[j].user, set()).discard(j)

    def _release(self, j: int) -> None:
        start = self._start[j]
        assert start is not None
        self._parts[self._part[j]].release(j, self._units[j], start + self._planned[j])

    def _finish(self, j: int, now: int, release: bool = True) -> None:
        if release:
            self._release(j)
        self._end[j] = now
        job = self.jobs[j]
        if job.run_s is not None:
            self.history.record(job.user, job.run_s)
        self.predictor.observe(job)
        if self._refresh:
            self._refresh_user(job.user)

    def _refresh_user(self, user: str | None) -> None:
        for w in sorted(self._waiting_of.get(user, ())):
            waiting = self.jobs[w]
            planned = planned_seconds(self.predictor.predict(waiting, self.history), waiting.req_s or 1)
            if planned != self._planned[w]:
                self._planned[w] = planned
                self._parts[self._part[w]].set_planned(w, planned)

    def _correct(self, j: int, now: int) -> None:
        start = self._start[j]
        assert start is not None
        old = self._planned[j]
        n = self._ncorr[j] + 1
        req = self.jobs[j].req_s or old + 1
        new = self.policy.corrected(old, self._initial[j], req, n)
        self._parts[self._part[j]].replan(j, self._units[j], start + old, start + new)
        self._planned[j] = new
        self._ncorr[j] = n
        if new < self._run(j):
            self._seq += 1
            heapq.heappush(self._heap, (start + new, _EXPIRE, self._seq, j))

    # -------------------------------------------------------------------------------- output
    def start_times(self) -> list[int | None]:
        """Start of every admitted job (admission order), None if not started yet."""
        return list(self._start)

    def occupancy(self) -> Occupancy:
        """Every job that has started, as (partition index, start, end, units), end = start + its
        run: the resources it holds over time (twin.advice builds free-capacity profiles from it)."""
        started = [j for j, s in enumerate(self._start) if s is not None]
        start = np.array([self._start[j] for j in started], dtype=np.int64)
        run = np.array([self.jobs[j].run_s or 0 for j in started], dtype=np.int64)
        return Occupancy(
            partition=np.array([self._part[j] for j in started], dtype=np.int64),
            start_s=start,
            end_s=start + run,
            units=np.array([self._units[j] for j in started], dtype=np.int64),
        )

    def result(self) -> SimResult:
        parts = self.site.partitions
        jobs = self.jobs
        frame = pl.DataFrame(
            {
                "job_id": [j.job_id for j in jobs],
                "partition": [parts[p].name for p in self._part],
                "user": [j.user for j in jobs],
                "submit_s": [j.submit_s for j in jobs],
                "start_s": self._start,
                "end_s": self._end,
                "run_s": [j.run_s for j in jobs],
                "req_s": [j.req_s for j in jobs],
                "procs": [j.procs for j in jobs],
                "units": self._units,
                "cores": [parts[p].cores(u) for p, u in zip(self._part, self._units, strict=True)],
                "predicted_s": self._initial,
                "corrections": self._ncorr,
            },
            schema_overrides={"start_s": pl.Int64, "end_s": pl.Int64, "run_s": pl.Int64, "req_s": pl.Int64},
        ).with_columns((pl.col("start_s") - pl.col("submit_s")).alias("wait_s"))
        name = getattr(self.predictor, "name", type(self.predictor).__name__)
        return SimResult(frame, self.admission.counts, self.site, self.policy, name)

    def state(self) -> SiteState:
        """The site now: running jobs with their starts, waiting jobs in queue order."""
        if self.now is None:
            raise SimTimeError("the simulator has not started: no state yet")
        running = sorted(j for part in self._parts for _, j, _ in part.ends)
        return SiteState(
            now_s=self.now,
            site=self.site,
            running=tuple(RunningJob(self.jobs[j], self._start[j] or 0) for j in running),
            pending=tuple(self.jobs[j] for part in self._parts for j in part.queued()),
            history=self.history,
        )


def simulate(
    jobs: Iterable[Job],
    site: Site,
    policy: Policy,
    predictor: Predictor | None = None,
    *,
    oversize: Oversize = "error",
    tie_break: TieBreak = "batched",
) -> SimResult:
    """Replay a whole workload: jobs sorted into queue order (submit time, then id), every one
    simulated to completion."""
    sim = Simulator(site, policy, predictor, oversize=oversize, tie_break=tie_break)
    for job in sorted(jobs, key=queue_order):
        sim.submit(job)
    sim.run()
    return sim.result()
