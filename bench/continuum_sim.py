"""The replayed continuum behind bench/advice_continuum.py: sites, windows, load scaling, the
multi-site simulation on one clock, the placement policies and the metrics.

Kept apart from the benchmark's command line so tests/bench/test_continuum.py can check its pieces
on tiny hand-built cases. Every choice is documented in bench/advice_continuum.py's docstring; the
short version:

- a site = one `twin.sim.Simulator` (EASY, planning and backfilling with requested times:
  `Policy.easy()` with `RequestedTime()`) of one processor-granular partition; a cloud site is the
  same with its quota as capacity (it queues only when the quota is full);
- every simulator runs on one global clock: each workload job arrives at its home site at its
  (scaled) submit time; a movable job is placed by the policy at that instant, reading every
  site's `Simulator.state()`; moved there, it enters the destination queue after its stage-in
  (and, at the cloud, a provisioning delay), running `run × speed_home / speed_site` and asking
  `ceil(req × speed_home / speed_site)` (so no job is killed for having moved);
- turnaround = end at the site − arrival + stage-out back home (moved jobs only).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from twin.advice.herding import HerdingLedger
from twin.advice.outcome import Band, SiteOutcome
from twin.advice.profile import FreeProfile
from twin.advice.rank import AdvicePolicy, Candidate, QueueInputs, RuntimeGuess, evaluate, rank
from twin.advice.request import DataSpec, JobRequest
from twin.advice.runtimes import guess_runtimes
from twin.advice.transfer import TransferPlanner
from twin.sim import (
    Ave2,
    History,
    Job,
    Occupancy,
    Policy,
    RequestedTime,
    RunningJob,
    Simulator,
    Site,
    SiteState,
    forecast_run,
)
from twin.topology import Energy, Placement, Pricing, Provisioning, SiteSpec
from twin.view import LinkView

__all__ = [
    "CLOUD",
    "DAY_S",
    "EASY",
    "HPC_SITES",
    "LINKS",
    "PROVISIONING",
    "CJob",
    "Continuum",
    "Ctwin",
    "EarliestStart",
    "LeastQueued",
    "LeastWork",
    "Local",
    "LogWindow",
    "Oracle",
    "PlacementPolicy",
    "RandomSite",
    "RoundRobin",
    "RunOutcome",
    "SiteConf",
    "View",
    "build_workload",
    "clairvoyant_start",
    "herding",
    "log_window",
    "offered_load",
    "peak_waiting",
    "planner_of",
    "requested_start",
    "run_metrics",
    "scale_window",
    "site_state",
]

DAY_S = 86_400
EASY = Policy.easy()
OUTPUT_SHARE = 0.1
"""Output size = 10 % of the input, staged back home after a moved job ends."""
MEM_PER_CORE_GB = 2.0
"""What the engine assumes without a memory request (2 GiB per core), for the energy of every policy."""
W_PER_GB = 0.3725


@dataclass(frozen=True)
class SiteConf:
    name: str
    capacity: int
    """Processors (the log header's MaxProcs); the cloud: its quota of cores."""
    speed: float
    core_hour: float
    """Price per core-hour (EUR)."""
    log: str | None = None
    """The shared SWF log replayed as this site's local load; None: the cloud site (no local load)."""
    egress_per_gb: float = 0.0

    @property
    def cloud(self) -> bool:
        return self.log is None


HPC_SITES: tuple[SiteConf, ...] = (
    SiteConf("KTH-SP2", 100, 1.0, 0.020, "KTH-SP2"),
    SiteConf("SDSC-SP2", 128, 1.5, 0.025, "SDSC-SP2"),
    SiteConf("CTC-SP2", 338, 1.0, 0.020, "CTC-SP2"),
    SiteConf("SDSC-BLUE", 1152, 2.0, 0.030, "SDSC-BLUE"),
)
"""Speeds by machine generation (1996 SP2s 1.0, SDSC's 1998 SP2 1.5, Blue Horizon's 2000 Power3
nodes 2.0); prices per core-hour rise with speed but less than it (a faster site is cheaper per
unit of work, as its energy is)."""
CLOUD = SiteConf("cloud", 256, 1.5, 0.050, None, egress_per_gb=0.09)

_PROV_MEDIAN_S, _PROV_SIGMA = 90.0, 0.765
PROVISIONING = Provisioning(
    p10_s=round(_PROV_MEDIAN_S * math.exp(-1.2816 * _PROV_SIGMA), 1),
    p50_s=_PROV_MEDIAN_S,
    p90_s=round(_PROV_MEDIAN_S * math.exp(1.2816 * _PROV_SIGMA), 1),
)
"""The cloud's provisioning delay is drawn lognormal (median 90 s, sigma 0.765: p10 34 s, p90 240 s);
the engine is configured with exactly these quantiles."""

LINKS: tuple[tuple[str, str, float, float], ...] = (
    ("SDSC-SP2", "SDSC-BLUE", 10.0, 10.0),
    ("CTC-SP2", "SDSC-SP2", 2.5, 40.0),
    ("CTC-SP2", "SDSC-BLUE", 2.5, 40.0),
    ("KTH-SP2", "CTC-SP2", 1.0, 60.0),
    ("KTH-SP2", "SDSC-SP2", 1.0, 80.0),
    ("KTH-SP2", "SDSC-BLUE", 1.0, 80.0),
    ("cloud", "CTC-SP2", 5.0, 15.0),
    ("cloud", "SDSC-SP2", 5.0, 35.0),
    ("cloud", "SDSC-BLUE", 5.0, 35.0),
    ("cloud", "KTH-SP2", 2.0, 50.0),
)
"""Full mesh (a, b, Gb/s, ms): the two San Diego machines on one campus, Cornell's across the US,
KTH across the Atlantic, the cloud region on the US east coast."""


def planner_of(sites: Sequence[SiteConf], links: Sequence[tuple[str, str, float, float]] = LINKS) -> TransferPlanner:
    """The links between `sites` as the engine's TransferPlanner reads them (configured, unmeasured)."""
    names = {s.name for s in sites}
    views = [
        LinkView(a, b, "", gbps * 1e9, ms / 1e3, "ok", None, None, None)
        for a, b, gbps, ms in links
        if a in names and b in names
    ]
    return TransferPlanner(views)


# ------------------------------------------------------------------------------------------ workload
def offered_load(jobs: Sequence[Job], capacity: int, span_s: float) -> float:
    """Σ procs × run / (capacity × span)."""
    return sum(j.procs * (j.run_s or 0) for j in jobs) / (capacity * span_s)


def scale_window(
    jobs: Sequence[Job], capacity: int, start_s: int, load: float, span_s: int
) -> tuple[list[Job], float, int]:
    """The log's jobs from `start_s` on, as many as carry `load` × capacity × span of work, with
    their submit offsets compressed (or stretched) by one factor so they arrive within [0, span).
    `jobs` in submit order. Returns (jobs with submit relative to the window, the factor applied to
    inter-arrival times, the log seconds the window covers)."""
    target = load * capacity * span_s
    subs = np.fromiter((j.submit_s for j in jobs), np.int64, len(jobs))
    first = int(np.searchsorted(subs, start_s, "left"))
    work = np.cumsum(np.fromiter((j.procs * (j.run_s or 0) for j in jobs[first:]), np.float64, len(jobs) - first))
    n = int(np.searchsorted(work, target, "left"))  # work[n] >= target
    if n >= len(work) - 1:
        raise ValueError(f"the log ends before {load:.2f} × {capacity} processors × {span_s / DAY_S:.0f} d of work")
    if n > 0 and target - work[n - 1] < work[n] - target:
        n -= 1  # the job that overshoots more than the one before undershoots is left out
    count = n + 1
    covered = int(subs[first + count]) - start_s  # up to the next job's submit
    factor = span_s / covered
    out = [replace(j, submit_s=int((j.submit_s - start_s) * factor)) for j in jobs[first : first + count]]
    return out, factor, covered


@dataclass(frozen=True)
class CJob:
    """One job of the continuum's workload."""

    key: int
    """Its index in the workload (arrival order)."""
    job_id: str
    home: int
    submit_s: int
    run_s: int
    """At home (the log's run time, capped at the request by the strong filter)."""
    req_s: int
    procs: int
    user: str
    movable: bool
    measured: bool
    input_bytes: float
    provision_s: int
    """The provisioning delay it meets if sent to the cloud (drawn once: every policy sees the same)."""


def build_workload(
    per_site: Sequence[Sequence[Job]], movable_share: float, seed: int, window: int, warm_s: int
) -> list[CJob]:
    """Every site's scaled jobs merged in arrival order. Per (seed, window, site) three random
    streams, each drawn in the log's order so a job gets the same draws whatever the load (a
    window at a lower load is a prefix of the same jobs): movable (uniform < share, so the movable
    jobs at 10 % are among those at 20 %), input size (log-uniform 10 MB–100 GB), provisioning delay
    (lognormal, see PROVISIONING). Jobs arriving in the warm-up [0, warm_s) stay home and are not
    measured."""
    rows: list[tuple[int, int, int, Job, bool, float, int]] = []
    for home, jobs in enumerate(per_site):
        streams = np.random.SeedSequence([seed, window, home]).spawn(3)
        n = len(jobs)
        u = np.random.default_rng(streams[0]).random(n)
        size = 10.0 ** (7.0 + 4.0 * np.random.default_rng(streams[1]).random(n))
        normal = np.random.default_rng(streams[2]).standard_normal(n)
        delay = np.rint(np.exp(math.log(_PROV_MEDIAN_S) + _PROV_SIGMA * normal)).astype(np.int64)
        for i, job in enumerate(jobs):
            rows.append((job.submit_s, home, i, job, bool(u[i] < movable_share), float(size[i]), int(delay[i])))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    out = []
    for key, (submit, home, _, job, movable, size_b, delay_s) in enumerate(rows):
        measured = submit >= warm_s
        out.append(
            CJob(
                key,
                job.job_id,
                home,
                submit,
                job.run_s or 1,
                job.req_s or job.run_s or 1,
                job.procs,
                job.user or "?",
                movable and measured,
                measured,
                size_b,
                max(1, delay_s),
            )
        )
    return out


@dataclass(frozen=True)
class LogWindow:
    """One site's share of a window: its scaled jobs and what it knew before."""

    site: str
    jobs: list[Job]
    """Ids and users prefixed with the site's name; submit relative to the window's start."""
    history: list[tuple[str, int]]
    """(user, run) of the log's jobs that ended before the window's log start, in end order."""
    start_s: int
    """Log time the window starts at."""
    covered_s: int
    """Log seconds the window's jobs came from."""
    factor: float
    """Inter-arrival times multiplied by this (< 1: arrivals compressed)."""
    offered: float


def log_window(
    site: SiteConf, jobs: Sequence[Job], slot: int, load: float, span_s: int, slot_s: int = 30 * DAY_S
) -> LogWindow:
    """Window `slot` of a log: from its first submit + slot × slot_s, scaled to `load` over span_s."""
    start = jobs[0].submit_s + slot * slot_s
    scaled, factor, covered = scale_window(jobs, site.capacity, start, load, span_s)
    prefixed = [replace(j, job_id=f"{site.name}:{j.job_id}", user=f"{site.name}:{j.user}") for j in scaled]
    before = [j for j in jobs if j.submit_s < start and j.submit_s + (j.run_s or 0) <= start]
    before.sort(key=lambda j: j.submit_s + (j.run_s or 0))
    history = [(f"{site.name}:{j.user}", j.run_s or 0) for j in before]
    return LogWindow(
        site.name, prefixed, history, start, covered, factor, offered_load(prefixed, site.capacity, span_s)
    )


def site_state(sim: Simulator) -> SiteState:
    """`sim.state()` for a one-partition simulator, reading only the live part of its queue:
    `Simulator.state()` walks every queue slot since the last compaction (thousands of started
    jobs), which made it a tenth of a policy's time. Equal to it (tests/bench/test_continuum.py)."""
    if sim.now is None or len(sim._parts) != 1:
        return sim.state()
    part = sim._parts[0]
    jobs, alive, start = sim.jobs, part._alive, sim._start
    slots = part._jobs
    pending = tuple(jobs[slots[i]] for i in range(part._lo, len(slots)) if alive[i])
    running = tuple(RunningJob(jobs[j], start[j] or 0) for j in sorted(j for _, j, _ in part.ends))
    return SiteState(now_s=sim.now, site=sim.site, running=running, pending=pending, history=sim.history)


# ------------------------------------------------------------------------------------------ the view
class View:
    """What a policy reads at a decision instant: every site's state now, the links, the sites."""

    def __init__(self, sites: Sequence[SiteConf], sims: Sequence[Simulator], planner: TransferPlanner) -> None:
        self.sites = tuple(sites)
        self.sims = sims
        self.planner = planner
        self.t = 0
        self._states: dict[int, SiteState] = {}

    def at(self, t: int) -> None:
        """Advance every site to `t` (every instant before it processed)."""
        if t != self.t or not self._states:
            for sim in self.sims:
                if sim.now is None or sim.now < t:
                    sim.run(until=t)
            self.t = t
            self._states.clear()

    def state(self, d: int) -> SiteState:
        """Site d's state at t (`Simulator.state()`); the same for every decision at t (submissions
        at t are processed with the instant, after the decisions)."""
        st = self._states.get(d)
        if st is None:
            st = self._states[d] = site_state(self.sims[d])
        return st

    def feasible(self, job: CJob) -> list[int]:
        return [d for d, s in enumerate(self.sites) if s.capacity >= job.procs]

    def ratio(self, job: CJob, d: int) -> float:
        return self.sites[job.home].speed / self.sites[d].speed

    def at_site(self, job: CJob, d: int) -> tuple[int, int]:
        """(run, request) of `job` at site d: both scaled by speed_home / speed_d."""
        if d == job.home:
            return job.run_s, job.req_s
        r = self.ratio(job, d)
        run = max(1, round(job.run_s * r))
        return run, max(run, math.ceil(job.req_s * r))

    def stage_in_s(self, job: CJob, d: int) -> int:
        if d == job.home:
            return 0
        route = self.planner.route(self.sites[job.home].name, self.sites[d].name, job.input_bytes)
        assert route is not None, "the links are a full mesh"
        return math.ceil(route.seconds(job.input_bytes).p50)

    def stage_out_s(self, job: CJob, d: int) -> int:
        if d == job.home:
            return 0
        out = job.input_bytes * OUTPUT_SHARE
        route = self.planner.route(self.sites[d].name, self.sites[job.home].name, out)
        assert route is not None
        return math.ceil(route.seconds(out).p50)

    def arrival_s(self, job: CJob, d: int) -> int:
        """When the job enters site d's queue if sent there at t."""
        if d == job.home:
            return self.t
        extra = job.provision_s if self.sites[d].cloud else 0
        return self.t + self.stage_in_s(job, d) + extra

    def hypothetical(self, job: CJob, d: int, submit_s: int | None = None) -> Job:
        run, req = self.at_site(job, d)
        return Job(job.job_id, self.t if submit_s is None else submit_s, run, req, job.procs, user=job.user)


# ------------------------------------------------------------------------------------------ policies
class PlacementPolicy:
    """choose() at a movable job's arrival; sent() when it leaves home; arrived() when it is queued."""

    name = "?"

    def choose(self, view: View, job: CJob) -> int:
        raise NotImplementedError

    def sent(self, view: View, job: CJob, d: int) -> None:
        pass

    def arrived(self, view: View, job: CJob, d: int) -> None:
        pass


def _best(keys: dict[int, float], home: int) -> int:
    """The least key; ties to home, then to the lower site index."""
    return min(keys, key=lambda d: (keys[d], d != home, d))


class Local(PlacementPolicy):
    name = "Local"

    def choose(self, view: View, job: CJob) -> int:
        return job.home


class RandomSite(PlacementPolicy):
    name = "Random"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 7])

    def choose(self, view: View, job: CJob) -> int:
        sites = view.feasible(job)
        return sites[int(self.rng.integers(len(sites)))]


class RoundRobin(PlacementPolicy):
    name = "RoundRobin"

    def __init__(self) -> None:
        self.next = 0

    def choose(self, view: View, job: CJob) -> int:
        n = len(view.sites)
        for k in range(n):
            d = (self.next + k) % n
            if view.sites[d].capacity >= job.procs:
                self.next = d + 1
                return d
        return job.home


class LeastQueued(PlacementPolicy):
    """The fewest jobs waiting."""

    name = "LeastQueued"

    def choose(self, view: View, job: CJob) -> int:
        return _best({d: float(len(view.state(d).pending)) for d in view.feasible(job)}, job.home)


def outstanding_work(state: SiteState, capacity: int) -> float:
    """Requested processor-seconds still ahead (waiting jobs whole, running ones their remaining
    limit) over the site's processors: seconds of the whole machine."""
    now = state.now_s
    work = sum(j.procs * (j.req_s or 0) for j in state.pending)
    work += sum(r.job.procs * max(0, (r.job.req_s or 0) - (now - r.start_s)) for r in state.running)
    return work / capacity


class LeastWork(PlacementPolicy):
    name = "LeastWork"

    def choose(self, view: View, job: CJob) -> int:
        return _best({d: outstanding_work(view.state(d), view.sites[d].capacity) for d in view.feasible(job)}, job.home)


class EarliestStart(PlacementPolicy):
    """Each site's own backfill estimate from requested times, the job queued now with its request
    there (`sbatch -M`'s choice): the earliest predicted start, speed and data ignored. The cloud's
    estimate adds its configured median provisioning delay."""

    name = "EarliestStart"

    def choose(self, view: View, job: CJob) -> int:
        starts: dict[int, float] = {}
        for d in _home_first(view.feasible(job), job.home):
            start = requested_start(view.state(d), view.hypothetical(job, d))
            starts[d] = float(start) + (PROVISIONING.p50_s if view.sites[d].cloud else 0.0)
            if starts[d] <= view.t:  # nothing starts earlier, and ties go home, then to lower indices
                break
        return _best(starts, job.home)


def _home_first(sites: Sequence[int], home: int) -> list[int]:
    return [home, *(d for d in sites if d != home)] if home in sites else list(sites)


def requested_start(state: SiteState, job: Job) -> int:
    """The hypothetical `job`'s start in `forecast_run(state, Policy.easy(), RequestedTime(),
    extra=[job], plan="requested")` — every job planned and run for its requested time — computed
    on the same engine without the forecast's table, and stopped once the job has started (the
    same start: the events before it do not depend on what comes after; checked in
    tests/bench/test_continuum.py)."""
    return _start_of(state, replace(job, run_s=job.req_s, submit_s=state.now_s), state.now_s, requested=True)


def _site_sim(state: SiteState, *, requested: bool) -> Simulator:
    """A simulator holding `state`'s running and waiting jobs at its instant, each planned with its
    request (what EASY plans with); `requested` runs every job to its limit instead of its run."""
    sim = Simulator(state.site, EASY, RequestedTime(), now_s=state.now_s)
    now = state.now_s
    for r in state.running:
        held = r.job
        if requested:  # runs to its limit (a job past it, which cannot be here, would end now)
            req = held.req_s or 1
            held = Job(held.job_id, held.submit_s, max(req, now - r.start_s), req, held.procs, held.nodes, held.user)
        sim.place_running(held, r.start_s, held.req_s or 1)
    for p in state.pending:
        req = p.req_s or 1
        if requested:
            p = Job(p.job_id, p.submit_s, req, req, p.procs, p.nodes, p.user)
        sim.submit(p, at_s=now, planned_s=req)  # planned with the request: what RequestedTime gives
    return sim


def _start_of(state: SiteState, job: Job, arrive_s: int, *, requested: bool) -> int:
    sim = _site_sim(state, requested=requested)
    now = state.now_s
    sim.submit(job, at_s=arrive_s, planned_s=job.req_s or 1)
    horizon = max(arrive_s, now) + 3600
    while True:
        sim.run(until=horizon)
        start = sim.start_times()[-1]
        if start is not None:
            return start
        horizon += 2 * (horizon - now)


def clairvoyant_start(state: SiteState, job: Job, arrive_s: int) -> int:
    """When `job`, queued at `arrive_s`, starts at a site in `state` if nothing else arrives: the
    site's own EASY (planning with requested times) replayed with every job's actual run time."""
    return _start_of(state, replace(job, submit_s=arrive_s), arrive_s, requested=False)


class Oracle(PlacementPolicy):
    """Per job in arrival order, the site with the least realised turnaround given every job's
    actual run time (and the cloud's actual provisioning delay): a bound, not a policy. It does not
    know later arrivals."""

    name = "Oracle"

    def choose(self, view: View, job: CJob) -> int:
        turnaround: dict[int, float] = {}
        for d in _home_first(view.feasible(job), job.home):
            arrive = view.arrival_s(job, d)
            rest = view.at_site(job, d)[0] + view.stage_out_s(job, d)
            if turnaround and arrive - view.t + rest >= min(turnaround.values()):
                continue  # cannot beat the best so far even without waiting (ties go to it)
            start = clairvoyant_start(view.state(d), view.hypothetical(job, d, arrive), arrive)
            turnaround[d] = start - view.t + rest
        return _best(turnaround, job.home)


class SocialOracle(PlacementPolicy):
    """Exploration only (`Oracle[social]`): the Oracle's knowledge, and the job's cost to the jobs
    already waiting counted too. Per site: the AWRT weight of the job × its realised turnaround
    there, plus the weighted delay it causes the site's waiting jobs (each site's EASY replayed to
    the end with actual run times, with and without it; weight = processors × run there). The
    least total wins: the change of the AWRT numerator over the jobs known now. It answers whether
    any placement rule, even knowing every run time, gets far below EarliestStart here; later
    arrivals are still unknown to it."""

    name = "Oracle[social]"

    def choose(self, view: View, job: CJob) -> int:
        cost: dict[int, float] = {}
        weight = job.procs * job.run_s
        for d in _home_first(view.feasible(job), job.home):
            state = view.state(d)
            arrive = view.arrival_s(job, d)
            rest = view.at_site(job, d)[0] + view.stage_out_s(job, d)
            without = _drained_starts(state)
            with_job = _drained_starts(state, view.hypothetical(job, d, arrive), arrive)
            n_run, n_wait = len(state.running), len(state.pending)
            moved = with_job[n_run : n_run + n_wait] - without[n_run:]
            weights = np.array([p.procs * p.run_s for p in state.pending], np.float64)
            cost[d] = weight * (with_job[-1] - view.t + rest) + float((weights * moved).sum())
        return _best(cost, job.home)


def _drained_starts(state: SiteState, job: Job | None = None, arrive_s: int = 0) -> np.ndarray:
    """Start of every job of `state` (running first, then waiting, then `job`) when its EASY runs
    to the end with actual run times and nothing else arrives."""
    sim = _site_sim(state, requested=False)
    if job is not None:
        sim.submit(job, at_s=arrive_s, planned_s=job.req_s or 1)
    sim.run()
    return np.array(sim.start_times(), np.float64)


@dataclass(frozen=True)
class SimSource:
    """twin.advice.runtimes.RuntimeSource over a simulated site: its users' finished runs, now."""

    site: str
    now_s: int
    history: History

    def hypothetical(self) -> None:
        return None  # no learned model: AVE2


def site_specs(sites: Sequence[SiteConf]) -> list[SiteSpec]:
    specs = []
    for s in sites:
        pricing = Pricing(core_hour=s.core_hour, egress_per_gb=s.egress_per_gb)
        if s.cloud:
            place = Placement(speed=s.speed, quota_cores=s.capacity, provisioning=PROVISIONING, pricing=pricing)
        else:
            place = Placement(speed=s.speed, pricing=pricing)
        specs.append(SiteSpec(s.name, "cloud" if s.cloud else "hpc", placement=place))
    return specs


GuessMode = Literal["site-limit", "home", "per-site"]
"""How ctwin's runtime guess is asked for when a job's request differs by site (scaled by speed):

- "site-limit" (default): `guess_runtimes` once with the job's home request, as the service calls
  it; a site where the engine falls back to "the request (no history)" (it has seen the user fewer
  than twice) reads that as the request at that site (its limit there), not the home one;
- "home": the engine's answer as it is (that fallback is the home request, more than a faster
  site's limit: evaluate then excludes the site, "would be killed");
- "per-site": `guess_runtimes` with each site's own request (AVE2 is then capped at the
  destination's limit before the speed translation: an underestimate at faster sites)."""


@dataclass
class CtwinDecision:
    key: int
    chosen: int
    stayed_home: bool
    best: int
    """The engine's best-ranked site (the stay-home rule may have kept the job home instead)."""
    predicted_s: float
    """Predicted p50 turnaround at the chosen site."""
    home_predicted_s: float | None
    width_s: float
    """How much lower the gain of moving is at its worst quantile than at the median (the
    stay-home rule's band: it keeps the job home when the gain does not exceed it)."""
    gain_s: float
    """Home's predicted turnaround minus the best site's (0 when best is home)."""


class Ctwin(PlacementPolicy):
    """The placement-advice engine itself (twin.advice.rank): per site a Candidate built from what
    the site could know at the instant (its queue forecast with AVE2 runtimes of the running and
    waiting jobs, planned with requested times; its users' finished runs), the job's run time from
    `guess_runtimes`, `evaluate` at every site, `rank` with the job's home and AdvicePolicy().
    Moved jobs are booked in a HerdingLedger (on the site clock) until they enter the destination
    queue, as the service books its advice."""

    name = "ctwin"

    def __init__(
        self,
        sites: Sequence[SiteConf],
        planner: TransferPlanner,
        policy: AdvicePolicy | None = None,
        *,
        guess: GuessMode = "site-limit",
        risk: Literal["p50", "p90"] = "p50",
        cache: bool = True,
        prune: bool = True,
    ) -> None:
        self.sites = tuple(sites)
        self.specs = site_specs(sites)
        self.planner = planner
        self.policy = policy or AdvicePolicy()
        self.guess = guess
        self.risk: Literal["p50", "p90"] = risk
        """What the job's request asks the ranking for (JobRequest.risk)."""
        self.cache = cache
        self.prune = prune and risk == "p50"
        """Skip sites that cannot beat the best p50 turnaround found so far even with no wait (the
        recommendation is the same: they could not be ranked first; tests/bench checks it). Off when
        ranking by the p90, which that bound does not bound."""
        self.pruned = 0
        self.now = 0.0
        self.ledger = HerdingLedger(self.policy.herding_ttl_s, lambda: self.now)
        self.egress = {s.name: s.egress_per_gb for s in sites}
        self.decisions: list[CtwinDecision] = []
        self._forecasts: dict[int, tuple[tuple[int, int, int], int, Occupancy]] = {}
        self.forecasts_run = 0
        self.forecasts_reused = 0

    def request(self, view: View, job: CJob, d: int) -> JobRequest:
        """The job as it would be submitted at site d: its request there (scaled by speed)."""
        home = self.sites[job.home].name
        return JobRequest(
            cores=job.procs,
            walltime_s=view.at_site(job, d)[1],
            user=job.user,
            input=DataSpec(job.input_bytes, home),
            output=DataSpec(job.input_bytes * OUTPUT_SHARE, home),
            home=home,
            risk=self.risk,
        )

    def occupancy(self, view: View, d: int) -> Occupancy:
        """`forecast_run(state, Policy.easy(), Ave2(), plan="requested").occupancy["p50"]` of site d
        now. Reused from the site's previous forecast when nothing can have changed: the site had no
        event since (same jobs, running and waiting counts: any arrival, start or end moves one) and
        that forecast starts or ends nothing up to now (so no running job outlived its plan and no
        pass would start anything). Then the forecast from now is the same simulation, event for
        event (tests/bench/test_continuum.py checks the decisions equal those without reuse)."""
        state = view.state(d)
        key = (len(view.sims[d].jobs), len(state.running), len(state.pending))
        kept = self._forecasts.get(d)
        if self.cache and kept is not None and kept[0] == key and kept[1] > view.t:
            self.forecasts_reused += 1
            return kept[2]
        occ = forecast_run(state, EASY, Ave2(), plan="requested").occupancy["p50"]
        self.forecasts_run += 1
        future = np.concatenate([occ.end_s, occ.start_s[occ.start_s >= view.t]])
        future = future[future >= view.t]
        first = int(future.min()) if future.size else 2**62
        self._forecasts[d] = (key, first, occ)
        return occ

    def profile(self, view: View, d: int) -> FreeProfile:
        """The site's free capacity from now (FreeProfile.of its forecast), with the bookings of
        moved jobs not yet in its queue taken out (as twin.advice.live books handed-out advice)."""
        profile = FreeProfile.of(self.occupancy(view, d), self.sites[d].capacity, view.t)
        for b in self.ledger.active(self.sites[d].name):
            if b.start_s is not None and b.end_s is not None:
                profile = profile.reserve(b.start_s, b.end_s, b.cores)
        return profile

    def lower_bound(self, request: JobRequest, run_p50: float, home: str, d: int) -> float:
        """The least p50 turnaround `evaluate` can give at site d: stage-in, no wait (a batch site;
        the provisioning delay at a cloud), the run, stage-out — the same formulas."""
        name = self.sites[d].name
        stage_in = self.planner.route(home, name, request.input.size_bytes)
        stage_out = self.planner.route(name, home, request.output.size_bytes)
        if stage_in is None or stage_out is None:
            return math.inf
        wait = PROVISIONING.p50_s if self.sites[d].cloud else 0.0
        return (
            stage_in.seconds(request.input.size_bytes).p50
            + wait
            + run_p50
            + stage_out.seconds(request.output.size_bytes).p50
        )

    def runtimes(self, view: View, job: CJob, requests: Sequence[JobRequest]) -> dict[str, RuntimeGuess]:
        """The job's RuntimeGuess at every site from `guess_runtimes` (see GuessMode)."""
        home = self.sites[job.home].name
        bases = {
            s.name: SimSource(s.name, view.t, view.sims[d].history) for d, s in enumerate(self.sites) if not s.cloud
        }
        if self.guess == "per-site":
            every = guess_runtimes(requests, self.specs, bases, [home] * len(requests))
            return {s.name: every[d][s.name] for d, s in enumerate(self.specs)}
        guesses = guess_runtimes([requests[job.home]], self.specs, bases, [home])[0]
        if self.guess == "home":
            return guesses
        out = {}
        for d, s in enumerate(self.specs):
            g = guesses[s.name]
            if g.source.startswith("the request"):  # "runs to its limit": the limit at this site
                g = RuntimeGuess(Band.point(float(requests[d].walltime_s)), g.source)
            out[s.name] = g
        return out

    def candidate(self, view: View, job: CJob, d: int) -> Candidate:
        spec, conf = self.specs[d], self.sites[d]
        if conf.capacity < job.procs:  # excluded by the engine on capacity before its queue is read
            return Candidate(spec, "ok", 0.0, capacity_cores=conf.capacity)
        if conf.cloud:  # its quota as the service sees it: the instances it runs, until their predicted ends
            return Candidate(spec, None, None, capacity_cores=conf.capacity, quota=self.profile(view, d))
        state = view.state(d)
        queue = QueueInputs(
            now_s=view.t,
            seen_wall_s=float(view.t),
            profiles={"p50": self.profile(view, d)},
            pending=len(state.pending),
            predictor="ave2",
        )
        return Candidate(spec, "ok", 0.0, capacity_cores=conf.capacity, queue=queue, data_ages={"state": 0.0})

    def choose(self, view: View, job: CJob) -> int:
        self.now = float(view.t)
        home = self.sites[job.home].name
        requests = [self.request(view, job, d) for d in range(len(self.sites))]
        guesses = self.runtimes(view, job, requests)
        bound = {d: self.lower_bound(requests[d], guesses[s.name].band.p50, home, d) for d, s in enumerate(self.specs)}
        outcomes = []
        best = math.inf
        for d in [job.home, *sorted((d for d in bound if d != job.home), key=lambda d: bound[d])]:
            if self.prune and d != job.home and bound[d] > best + 1e-3:
                self.pruned += 1  # even starting at once it would lose to `best`: not forecast
                continue
            outcome = evaluate(
                requests[d],
                self.candidate(view, job, d),
                guesses[self.specs[d].name],
                self.planner,
                home=home,
                wall_now_s=float(view.t),
                policy=self.policy,
                source_pricing=self.egress,
            )
            outcomes.append(outcome)
            if outcome.feasible and outcome.turnaround_s is not None:
                best = min(best, outcome.turnaround_s.p50)
        advice = rank(
            requests[job.home], outcomes, advice_id=job.job_id, home=home, wall_now_s=float(view.t), policy=self.policy
        )
        index = {s.name: d for d, s in enumerate(self.sites)}
        chosen = index[advice.recommended] if advice.recommended is not None else job.home
        feasible = [o for o in advice.ranked if o.feasible]
        best = feasible[0] if feasible else None
        by_site = {o.site: o for o in feasible}
        chosen_o = by_site.get(self.sites[chosen].name)
        home_o = by_site.get(home)
        width = gain = 0.0
        if (
            best is not None
            and best.turnaround_s is not None
            and home_o is not None
            and home_o.turnaround_s is not None
        ):
            # the stay-home rule's band: how far the gain falls at the worst quantile (twin.advice.rank)
            gains = [home_o.turnaround_s.at(q) - best.turnaround_s.at(q) for q in ("p10", "p50", "p90")]
            gain = gains[1]
            width = gain - min(gains)
        self.decisions.append(
            CtwinDecision(
                job.key,
                chosen,
                advice.stayed_home,
                index[best.site] if best is not None else job.home,
                chosen_o.turnaround_s.p50 if chosen_o is not None and chosen_o.turnaround_s is not None else math.nan,
                home_o.turnaround_s.p50 if home_o is not None and home_o.turnaround_s is not None else None,
                width,
                gain,
            )
        )
        if chosen != job.home and chosen_o is not None:
            self._book(view, job, chosen, chosen_o)
        return chosen

    def _book(self, view: View, job: CJob, d: int, outcome: SiteOutcome) -> None:
        """As twin.advice.live.Advisor books an answer, then reports the job run there."""
        name = self.sites[d].name
        if outcome.wait_s is None or outcome.run_s is None or outcome.stage_in_s is None:
            return
        start = view.t + int(outcome.stage_in_s.p50 + outcome.wait_s.p50)  # the cloud too: its quota is a profile
        self.ledger.book(job.job_id, name, job.procs, start, start + int(outcome.run_s.p50) + 1)
        self.ledger.reported(job.job_id, name, job.job_id)

    def arrived(self, view: View, job: CJob, d: int) -> None:
        self.ledger.seen(self.sites[d].name, {job.job_id})


# ------------------------------------------------------------------------------------------ the run
@dataclass
class RunOutcome:
    """Where every job ran, when it ended, and each site's queue over time."""

    policy: str
    dest: np.ndarray
    arrival: np.ndarray
    """When each job entered its site's queue."""
    start: np.ndarray
    end: np.ndarray
    stage_out: np.ndarray
    run_at_site: np.ndarray
    peak_queue: list[int]
    """Per site: the most jobs waiting at once after the warm-up."""
    decisions: list[CtwinDecision] = field(default_factory=list)


class Continuum:
    """The sites on one clock. `run(workload, policy)` replays the workload once."""

    def __init__(
        self,
        sites: Sequence[SiteConf],
        histories: Sequence[Sequence[tuple[str, int]]],
        links: Sequence[tuple[str, str, float, float]] = LINKS,
    ) -> None:
        self.sites = tuple(sites)
        self.histories = histories
        """Per site: (user, run) completions known before the window, oldest first (the cloud: none)."""
        self.planner = planner_of(self.sites, links)

    def _sims(self) -> list[Simulator]:
        sims = []
        for d, s in enumerate(self.sites):
            history = History(2)
            for user, run in self.histories[d] if d < len(self.histories) else ():
                history.record(user, run)
            sims.append(Simulator(Site.single(s.name, s.capacity), EASY, RequestedTime(), history=history, now_s=0))
        return sims

    def run(self, workload: Sequence[CJob], policy: PlacementPolicy, warm_s: int = 0) -> RunOutcome:
        sims = self._sims()
        view = View(self.sites, sims, self.planner)
        n = len(workload)
        dest = np.array([j.home for j in workload], np.int64)
        arrival = np.array([j.submit_s for j in workload], np.int64)
        stage_out = np.zeros(n, np.int64)
        run_at = np.array([j.run_s for j in workload], np.int64)
        index: list[dict[str, int]] = [{} for _ in self.sites]
        events: list[tuple[int, int, int]] = []  # (time, 1, key): a moved job enters its destination queue
        k = 0
        while k < n or events:
            if events and (k >= n or events[0][0] <= workload[k].submit_s):
                t, _, key = heapq.heappop(events)
                job, d = workload[key], int(dest[key])
                sims[d].submit(view.hypothetical(job, d, t), at_s=t)
                index[d][job.job_id] = key
                policy.arrived(view, job, d)
                continue
            job = workload[k]
            k += 1
            t = job.submit_s
            d = job.home
            if job.movable:
                view.at(t)
                d = policy.choose(view, job)
            if d == job.home:
                sims[d].submit(Job(job.job_id, t, job.run_s, job.req_s, job.procs, user=job.user), at_s=t)
                index[d][job.job_id] = job.key
                continue
            dest[job.key] = d
            arrive = view.arrival_s(job, d)
            arrival[job.key] = arrive
            stage_out[job.key] = view.stage_out_s(job, d)
            run_at[job.key] = view.at_site(job, d)[0]
            heapq.heappush(events, (arrive, 1, job.key))
            policy.sent(view, job, d)
        start = np.zeros(n, np.int64)
        end = np.zeros(n, np.int64)
        peaks = []
        for d, sim in enumerate(sims):
            sim.run()
            starts = sim.start_times()
            queued, began = [], []
            for job, s in zip(sim.jobs, starts, strict=True):
                assert s is not None
                key = index[d][job.job_id]
                start[key] = s
                end[key] = s + (job.run_s or 0)
                queued.append(job.submit_s)
                began.append(s)
            peaks.append(peak_waiting(np.array(queued, np.int64), np.array(began, np.int64), warm_s))
        decisions = policy.decisions if isinstance(policy, Ctwin) else []
        return RunOutcome(policy.name, dest, arrival, start, end, stage_out, run_at, peaks, decisions)


def peak_waiting(queued: np.ndarray, started: np.ndarray, after_s: int = 0) -> int:
    """The most jobs waiting at once (queued at or before t, started after t) for t >= after_s."""
    if queued.size == 0:
        return 0
    times = np.concatenate([queued, started])
    delta = np.concatenate([np.ones(queued.size, np.int64), -np.ones(started.size, np.int64)])
    order = np.argsort(times, kind="stable")
    times, delta = times[order], delta[order]
    level = np.cumsum(delta)
    # the level once every event of an instant is counted; the last one before after_s carries into it
    last = np.r_[times[1:] != times[:-1], True]
    at_instants = level[last]
    instants = times[last]
    before = instants < after_s
    carried = int(at_instants[before][-1]) if before.any() else 0
    later = at_instants[~before]
    return max(carried, int(later.max()) if later.size else 0)


# ------------------------------------------------------------------------------------------ metrics
def run_metrics(
    workload: Sequence[CJob], out: RunOutcome, sites: Sequence[SiteConf], tau_s: float = 10.0
) -> dict[str, float]:
    """AWRT (weight = processors × run time at home), turnaround mean / median / p95, AVEbsld of all
    and of local (non-movable) jobs (bsld against the run time at home), share of movable jobs moved,
    cost (EUR) and energy (kWh) of the measured jobs' runs where they ran."""
    measured = np.array([j.measured for j in workload])
    movable = np.array([j.movable for j in workload])
    submit = np.array([j.submit_s for j in workload], np.float64)
    run_home = np.array([j.run_s for j in workload], np.float64)
    procs = np.array([j.procs for j in workload], np.float64)
    size = np.array([j.input_bytes for j in workload], np.float64)
    home = np.array([j.home for j in workload], np.int64)
    ta = out.end - submit + out.stage_out
    m = measured
    weight = procs[m] * run_home[m]
    bsld = np.maximum(1.0, ta / np.maximum(run_home, tau_s))
    local = m & ~movable
    moved = out.dest != home
    hours = out.run_at_site / 3600.0
    core_hour = np.array([s.core_hour for s in sites])[out.dest]
    egress = np.array([s.egress_per_gb for s in sites])[out.dest]
    cost = procs * hours * core_hour + np.where(moved, size * OUTPUT_SHARE / 1e9 * egress, 0.0)
    energy = Energy()
    watts = procs * energy.tdp_per_core_w * energy.usage + procs * MEM_PER_CORE_GB * W_PER_GB
    kwh = hours * watts * energy.pue / 1000.0
    return {
        "awrt_h": float((weight * ta[m]).sum() / weight.sum()) / 3600.0,
        "mean_h": float(ta[m].mean()) / 3600.0,
        "median_h": float(np.median(ta[m])) / 3600.0,
        "p95_h": float(np.percentile(ta[m], 95)) / 3600.0,
        "bsld": float(bsld[m].mean()),
        "bsld_local": float(bsld[local].mean()),
        "moved": float(moved[m].sum() / max(1, movable.sum())),
        "cost": float(cost[m].sum()),
        "kwh": float(kwh[m].sum()),
        "jobs": float(m.sum()),
        "movable": float(movable.sum()),
    }


def herding(out: RunOutcome, local: RunOutcome, home: np.ndarray) -> float:
    """Peak queue length at the site this policy sent the most jobs to, over Local's peak there
    (at least 1); 1.0 when nothing moved."""
    moved = out.dest[out.dest != home]
    if moved.size == 0:
        return 1.0
    top = int(np.bincount(moved).argmax())
    return out.peak_queue[top] / max(1, local.peak_queue[top])
