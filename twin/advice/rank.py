"""The advice engine: every candidate site's predicted outcome for one job, and the ranking.

Pure: it reads `Candidate`s (what the twin knows of each site now, gathered by twin.advice.live
from the live twin, or by bench/advice_continuum.py from simulated sites) and never does I/O, so
the service and the benchmark run the same decisions.

Per site, in order: feasibility (allowed, alive and fresh, capacity, GPUs, memory, partition and
walltime limits, a route for the data, a run that fits the limit at this site's speed), then
stage-in over the fastest link path, the queue wait (a batch site: the job inserted into the free
capacity its cached forecast leaves, no earlier than its data arrives; a cloud site: the
provisioning delay, after its quota has room for the job when it is full; an edge host: now, if
its cores are idle), the run at this site's speed, stage-out, cost, energy and CO2 — each p10 /
p50 / p90. Sites are ranked by the objective at the chosen quantile. The stay-home rule (after
Cunha et al., FGCS 2017): when the best site's gain over the home site is smaller than the
prediction's own band — moving would lose if every part of both outcomes turned out at its p10,
or at its p90 — the home site is recommended, and the answer says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from twin.advice.outcome import Advice, Band, SiteOutcome, human_duration
from twin.advice.profile import FreeProfile
from twin.advice.request import JobRequest
from twin.advice.transfer import TransferPlanner
from twin.errors import InvalidJobError
from twin.topology import Placement, SiteSpec
from twin.view import State

__all__ = [
    "AdvicePolicy",
    "Candidate",
    "QueueInputs",
    "RuntimeGuess",
    "cores_at",
    "evaluate",
    "rank",
    "site_clock_at",
]

_DEFAULT_MEM_PER_CORE = 2 * 2**30
"""Memory assumed per core when a request gives none (Slurm's common DefMemPerCPU), for energy."""
_W_PER_GB = 0.3725
"""Green Algorithms' memory power draw, W per GB."""


@dataclass(frozen=True)
class AdvicePolicy:
    max_data_age_s: float = 300.0
    """A site whose newest data is older than this is excluded (its state is not known)."""
    stay_home: bool = True
    herding_ttl_s: float = 600.0
    """How long (wall seconds) handed-out advice counts as load at its site unless seen in its queue."""
    default_home: str = "local"


@dataclass(frozen=True)
class QueueInputs:
    """A batch site's cached forecast, as the engine inserts a job into it."""

    now_s: int
    """The site's clock (trace time for a replay)."""
    seen_wall_s: float
    """Wall time at which the site's clock read now_s."""
    profiles: Mapping[str, FreeProfile]
    """"p50", and "p10" / "p90" when the runtime predictor gives a band."""
    pending: int
    predictor: str
    booked_jobs: int = 0
    """Advice handed out here and booked on `profiles` (herding): load the queue does not show yet."""
    booked_cores: int = 0


def site_clock_at(now_s: int, seen_wall_s: float, wall_s: float, clock_speed: float) -> int:
    """The site's clock at wall instant `wall_s`, from its queue's reading (`now_s` at wall
    `seen_wall_s`), never before that reading. Rounded up: a job placed at or after it can never
    start before `wall_s` (a forecast is anchored at its snapshot, not at the answer)."""
    return now_s + max(0, math.ceil((wall_s - seen_wall_s) * clock_speed))


@dataclass(frozen=True)
class RuntimeGuess:
    """The job's run time at a site: p10 / p50 / p90 seconds at that site's speed."""

    band: Band
    source: str
    """learned, ave2, request — and "×1.5 speed" when translated from another site."""


@dataclass(frozen=True)
class Candidate:
    spec: SiteSpec
    state: State | None
    """None: a site with no collector (a cloud site known by its config only)."""
    data_age_s: float | None
    last_error: str | None = None
    capacity_cores: int | None = None
    """Cores the site can give one job: CPUs in service (batch), its hosts' CPUs (edge), the quota (cloud)."""
    idle_cores: float | None = None
    """Edge and cloud: cores free now (after advice handed out and still counted)."""
    queue: QueueInputs | None = None
    data_ages: Mapping[str, float | None] = field(default_factory=dict)
    quota: FreeProfile | None = None
    """A cloud site: its quota's free cores over wall time (the instances it is known to run and
    advice handed out there, each until its predicted end). None: only `idle_cores` is known, and
    a job wider than them is excluded."""
    held_jobs: int = 0
    """A cloud site: the advised jobs whose holds make up `quota` (said in the reason)."""
    held_cores: int = 0


def cores_at(spec: SiteSpec, cores: int, nodes: int | None) -> int:
    """The cores a job takes at a site: its cores, or its whole nodes there when it asks for nodes."""
    return max(cores, (nodes or 0) * (spec.placement.cores_per_node or 0))


def _cores_needed(request: JobRequest, spec: SiteSpec) -> int:
    return cores_at(spec, request.cores, request.nodes)


def _excluded(candidate: Candidate, word: str, reason: str) -> SiteOutcome:
    return SiteOutcome(
        site=candidate.spec.name,
        kind=candidate.spec.kind,
        feasible=False,
        reason=reason,
        excluded_because=word,
        clock_speed=candidate.spec.placement.clock_speed,
        data_age_s=dict(candidate.data_ages),
    )


def _limits(request: JobRequest, candidate: Candidate, cores: int) -> tuple[str, str] | None:
    """(word, reason) when the site cannot take the job whatever its state."""
    spec, place = candidate.spec, candidate.spec.placement
    capacity = candidate.capacity_cores
    if capacity is not None and cores > capacity:
        return "capacity", f"needs {cores} cores; {spec.name} has {capacity}"
    gpus = place.quota_gpus if place.provisioning is not None and place.quota_gpus is not None else place.gpus
    if request.gpus > gpus:
        return "gpus", f"needs {request.gpus} GPUs; {spec.name} has {gpus}"
    if request.memory_bytes and place.memory_per_node_bytes and request.memory_bytes > place.memory_per_node_bytes:
        have = place.memory_per_node_bytes / 2**30
        return "memory", f"needs {request.memory_bytes / 2**30:.0f} GiB per node; nodes have {have:.0f}"
    limit = place.max_walltime_s
    if place.partitions:
        names = [p.name for p in place.partitions]
        chosen = next((p for p in place.partitions if p.name == request.partition), None)
        if request.partition is not None and chosen is None:
            return "partition", f"no partition {request.partition!r} (has {', '.join(names)})"
        part = chosen or place.partitions[0]
        if part.max_walltime_s is not None:
            limit = part.max_walltime_s if limit is None else min(limit, part.max_walltime_s)
        if part.max_nodes is not None and (request.nodes or 1) > part.max_nodes:
            return "partition", f"partition {part.name} takes at most {part.max_nodes} nodes"
        if part.max_cores is not None and cores > part.max_cores:
            return "partition", f"partition {part.name} takes at most {part.max_cores} cores"
    if limit is not None and request.walltime_s > limit:
        return "walltime", f"asks {human_duration(request.walltime_s)}; the limit here is {human_duration(limit)}"
    return None


def _unchecked(request: JobRequest, place: Placement) -> list[str]:
    """What the request asks that this site's config cannot confirm: said, not silently passed, so
    a caller sees that "feasible" did not cover it."""
    notes = []
    if request.memory_bytes and not place.memory_per_node_bytes:
        notes.append(f"{request.memory_bytes / 2**30:.0f} GiB per node not checked (node memory not configured here)")
    if request.partition is not None and not place.partitions:
        notes.append(f"partition {request.partition!r} not checked (no partitions configured here)")
    return notes


def evaluate(
    request: JobRequest,
    candidate: Candidate,
    runtime: RuntimeGuess,
    planner: TransferPlanner,
    *,
    home: str,
    wall_now_s: float,
    policy: AdvicePolicy,
    source_pricing: Mapping[str, float] | None = None,
) -> SiteOutcome:
    """The predicted outcome of running `request` at `candidate` (or why it cannot run there).
    `source_pricing`: egress price per GB of each site (data leaving it is billed there)."""
    spec, place = candidate.spec, candidate.spec.placement
    allowed = request.constraints.allowed_sites
    if allowed and spec.name not in allowed:
        return _excluded(candidate, "not_allowed", "not among the allowed sites")
    if candidate.state == "down":
        return _excluded(candidate, "down", f"down: {candidate.last_error or 'its collectors never succeeded'}")
    if candidate.queue is None and place.provisioning is None:
        if candidate.state == "starting":
            return _excluded(candidate, "no_data", "no data collected yet")
        if candidate.capacity_cores is None:
            return _excluded(candidate, "no_data", "no host here reports its CPUs and no quota_cores is configured")
    age = candidate.data_age_s
    if candidate.state is not None and age is not None and age > policy.max_data_age_s:
        return _excluded(
            candidate,
            "stale",
            f"data too stale ({human_duration(age)} old, more than {human_duration(policy.max_data_age_s)})",
        )
    cores = _cores_needed(request, spec)
    limited = _limits(request, candidate, cores)
    if limited is not None:
        return _excluded(candidate, *limited)
    src = request.input.site or home
    stage_route = planner.route(src, spec.name, request.input.size_bytes)
    if stage_route is None:
        return _excluded(candidate, "no_route", f"no link path from {src} (where the input lives) to {spec.name}")
    dst = request.output.site or src
    out_route = planner.route(spec.name, dst, request.output.size_bytes)
    if out_route is None:
        return _excluded(candidate, "no_route", f"no link path from {spec.name} back to {dst} for the output")
    run = runtime.band
    if run.p50 > request.walltime_s:
        return _excluded(
            candidate,
            "walltime",
            f"would be killed: runs ≈ {human_duration(run.p50)} here ({runtime.source}), "
            f"more than the {human_duration(request.walltime_s)} asked for",
        )
    stage_in = stage_route.seconds(request.input.size_bytes)
    stage_out = out_route.seconds(request.output.size_bytes)
    parts: list[str] = []
    jobs_ahead: int | None = None
    if candidate.queue is not None:
        q = candidate.queue
        # the forecast is the queue as of its snapshot: the job is placed from the site's clock
        # at the answer (the snapshot's age later), so it never starts before now + its stage-in
        site_now = site_clock_at(q.now_s, q.seen_wall_s, wall_now_s, place.clock_speed)
        starts = {}
        for level in ("p10", "p50", "p90"):
            profile = q.profiles.get(level) or q.profiles["p50"]
            ready = site_now + math.ceil(stage_in.at(level))
            start = profile.earliest(cores, request.walltime_s, not_before=ready)
            if start is None:
                return _excluded(candidate, "capacity", f"needs {cores} cores; {spec.name} has {profile.capacity}")
            starts[level] = start - ready
        wait = Band(*sorted((starts["p10"], starts["p50"], starts["p90"])))
        jobs_ahead = q.pending
        ahead = _count(q.pending, "job", "jobs") + " ahead"
        if q.booked_jobs:  # the wait counts advice handed out here that the queue does not show yet
            ahead += f" + {_count(q.booked_jobs, 'advised job', 'advised jobs')} booked ({q.booked_cores} cores)"
        parts.append(f"{ahead}, wait ≈ {human_duration(wait.p50)}")
        start_wall = q.seen_wall_s + (site_now - q.now_s + stage_in.p50 + wait.p50) / place.clock_speed
    elif place.provisioning is not None:
        prov = place.provisioning
        room = 0.0
        if candidate.quota is not None:  # the quota is a queue: wait until enough of it frees
            ready = math.ceil(wall_now_s + stage_in.p50)
            start = candidate.quota.earliest(cores, max(1, math.ceil(run.p50)), not_before=ready)
            if start is None:
                return _excluded(candidate, "quota", f"needs {cores} cores; the quota is {candidate.quota.capacity}")
            room = float(start - ready)
        else:
            idle = candidate.idle_cores
            if idle is not None and cores > idle:
                return _excluded(candidate, "quota", f"quota: {idle:.0f} of {candidate.capacity_cores} cores free")
        wait = Band(room + prov.p10_s, room + prov.p50_s, room + prov.p90_s)
        if room > 0:  # only advice handed out here holds the quota (the twin sees no queue)
            held = ""
            if candidate.held_jobs:
                jobs = _count(candidate.held_jobs, "advised job", "advised jobs")
                held = f" (held by {jobs}, {candidate.held_cores} cores)"
            parts.append(
                f"quota full{held}: {cores} cores free in ≈ {human_duration(room)}, "
                f"then an instance in ≈ {human_duration(prov.p50_s)}"
            )
        else:
            parts.append(f"no queue: an instance in ≈ {human_duration(prov.p50_s)}")
        start_wall = wall_now_s + (stage_in.p50 + wait.p50) / place.clock_speed
    else:
        idle = candidate.idle_cores
        if idle is not None and cores > idle + 1e-9:
            return _excluded(candidate, "busy", f"busy: {idle:.1f} of {candidate.capacity_cores} cores idle, no queue")
        wait = Band.point(0.0)
        parts.append("runs at once on idle cores")
        start_wall = wall_now_s + stage_in.p50 / place.clock_speed
    parts.append(f"runs ≈ {human_duration(run.p50)} ({runtime.source})")
    if request.input.size_bytes > 0 and stage_route.hops:
        parts.append(stage_route.describe(request.input.size_bytes).replace(" over ", " in over ", 1))
    parts.extend(_unchecked(request, place))
    turnaround = stage_in + wait + run + stage_out
    hours = run.scaled(1 / 3600)
    rate = cores * place.pricing.core_hour + request.gpus * place.pricing.gpu_hour
    egress = 0.0
    prices = source_pricing or {}
    if stage_route.hops:
        egress += request.input.size_bytes / 1e9 * prices.get(src, 0.0)
    if out_route.hops:
        egress += request.output.size_bytes / 1e9 * place.pricing.egress_per_gb
    cost = Band(hours.p10 * rate + egress, hours.p50 * rate + egress, hours.p90 * rate + egress)
    energy = place.energy
    mem_gb = (
        request.memory_bytes * (request.nodes or 1) if request.memory_bytes else cores * _DEFAULT_MEM_PER_CORE
    ) / 2**30
    watts = (cores * energy.tdp_per_core_w + request.gpus * energy.gpu_tdp_w) * energy.usage + mem_gb * _W_PER_GB
    kwh = hours.scaled(watts * energy.pue / 1000.0)
    co2 = kwh.scaled(energy.carbon_intensity_g_per_kwh)
    end_wall = start_wall + (run.p50 + stage_out.p50) / place.clock_speed
    measures = {"turnaround": turnaround, "cost": cost, "energy": kwh, "co2": co2}
    score = None
    if request.objective != "weighted":  # weighted needs every site's best first: rank() scores it
        tie = measures["cost" if request.objective == "turnaround" else "turnaround"]
        score = measures[request.objective].at(request.risk) + 1e-9 * tie.p50
    return SiteOutcome(
        site=spec.name,
        kind=spec.kind,
        feasible=True,
        reason="; ".join(parts),
        stage_in_s=stage_in,
        wait_s=wait,
        run_s=run,
        stage_out_s=stage_out,
        turnaround_s=turnaround,
        cost=cost,
        energy_kwh=kwh,
        co2_g=co2,
        start_at_s=start_wall,
        end_at_s=end_wall,
        jobs_ahead=jobs_ahead,
        clock_speed=place.clock_speed,
        data_age_s=dict(candidate.data_ages),
        score=score,
        scored_for=(request.objective, request.risk) if score is not None else None,
    )


def _measure(outcome: SiteOutcome, what: str) -> Band:
    band = {
        "turnaround": outcome.turnaround_s,
        "cost": outcome.cost,
        "energy": outcome.energy_kwh,
        "co2": outcome.co2_g,
    }[what]
    assert band is not None
    return band


def rank(
    request: JobRequest,
    outcomes: Sequence[SiteOutcome],
    *,
    advice_id: str,
    home: str,
    wall_now_s: float,
    policy: AdvicePolicy,
    currency: str = "EUR",
) -> Advice:
    """Constraints that need the outcome (cost, deadline), then the order, then the stay-home rule."""
    q = request.risk
    checked: list[SiteOutcome] = []
    max_cost = request.constraints.max_cost
    for o in outcomes:
        if o.feasible and max_cost is not None and o.cost is not None and o.cost.at(q) > max_cost:
            o = replace(
                o,
                feasible=False,
                excluded_because="max_cost",
                reason=f"costs ≈ {o.cost.at(q):.2f} {currency}, more than {max_cost:.2f}",
            )
        if o.feasible and request.constraints.deadline_s is not None and o.turnaround_s is not None:
            assert o.end_at_s is not None
            finish = o.end_at_s + (o.turnaround_s.at(q) - o.turnaround_s.p50) / o.clock_speed
            if finish > request.constraints.deadline_s:
                o = replace(
                    o,
                    feasible=False,
                    excluded_because="deadline",
                    reason=f"would finish {human_duration(finish - request.constraints.deadline_s)} after the deadline",
                )
        checked.append(o)
    feasible = [o for o in checked if o.feasible]
    scored = _scores(request, feasible)
    ordered = sorted(scored, key=lambda o: (o.score, o.site))
    excluded = [o for o in checked if not o.feasible]
    ranked = tuple(ordered + excluded)
    if not ordered:
        reasons = "; ".join(f"{o.site}: {o.reason}" for o in excluded)
        return Advice(
            advice_id,
            wall_now_s,
            request.objective,
            q,
            home,
            None,
            ranked,
            f"no site can run this job — {reasons}",
            currency=currency,
        )
    best = ordered[0]
    home_outcome = next((o for o in ordered if o.site == home), None)
    unit = _unit(request.objective, currency)
    edge_unit = _unit(_edge_measure(request), currency)
    if best.site == home or home_outcome is None or not policy.stay_home:
        margin = ""
        if len(ordered) > 1:
            margin = f", {_fmt(ordered[1].score - best.score, unit)} better than {ordered[1].site}"  # type: ignore[operator]
        return Advice(
            advice_id,
            wall_now_s,
            request.objective,
            q,
            home,
            best.site,
            ranked,
            f"run at {best.site}{margin}",
            currency=currency,
        )
    gain = (home_outcome.score or 0.0) - (best.score or 0.0)
    worst, level = _worst_gain(request, home_outcome, best)
    if worst < 0:
        summary = (
            f"stay at {home}: moving to {best.site} gains ≈ {_fmt(gain, unit)} as predicted, but loses"
            f" ≈ {_fmt(-worst, edge_unit)} if every part turns out at its {level}:"
            " the gain is inside the prediction's band"
        )
        return Advice(
            advice_id,
            wall_now_s,
            request.objective,
            q,
            home,
            home,
            ranked,
            summary,
            stayed_home=True,
            currency=currency,
        )
    summary = (
        f"move to {best.site}: ≈ {_fmt(gain, unit)} better than staying at {home}, and still"
        f" ≈ {_fmt(worst, edge_unit)} better at the edge of the band"
    )
    return Advice(advice_id, wall_now_s, request.objective, q, home, best.site, ranked, summary, currency=currency)


def _worst_gain(request: JobRequest, home: SiteOutcome, best: SiteOutcome) -> tuple[float, str]:
    """The gain of moving (home − best) at each quantile, the two sites' outcomes taken at the
    same quantile: the same job, so its run is long or short at both, and both queues' futures
    are those of their p10 / p90 runs. The lowest of them, and where: moving is worth it only
    when it still gains there. (A band of the best site alone counts the run's uncertainty
    that both sites share; the job's runtime is no less uncertain at home.)"""
    what = _edge_measure(request)
    a, b = _measure(home, what), _measure(best, what)
    gains = {level: a.at(level) - b.at(level) for level in ("p10", "p50", "p90")}
    level = min(gains, key=lambda k: gains[k])
    return gains[level], level


def _edge_measure(request: JobRequest) -> str:
    """The measure the stay-home rule's band is judged in (a weighted score has no band of its own)."""
    return request.objective if request.objective != "weighted" else "turnaround"


def _scores(request: JobRequest, feasible: list[SiteOutcome]) -> list[SiteOutcome]:
    q = request.risk
    if request.objective != "weighted":
        tie = "turnaround" if request.objective != "turnaround" else "cost"
        return [
            o
            if o.scored_for == (request.objective, q)
            else replace(o, score=_measure(o, request.objective).at(q) + 1e-9 * _measure(o, tie).p50)
            for o in feasible
        ]
    w = request.weights
    weights = {"turnaround": w.turnaround, "cost": w.cost, "energy": w.energy, "co2": w.co2}
    if not any(weights.values()):  # every site would score 0: a ranking by nothing
        raise InvalidJobError("objective weighted needs at least one weight above 0 (weights are all 0)")
    best = {k: min((_measure(o, k).at(q) for o in feasible), default=0.0) for k in weights}
    out = []
    for o in feasible:
        total = 0.0
        for k, weight in weights.items():
            if weight:
                total += weight * _measure(o, k).at(q) / best[k] if best[k] > 0 else 0.0
        out.append(replace(o, score=total))
    return out


_WEIGHTED_UNIT = "weighted-score points"
"""A weighted score is Σ weight × measure ÷ its best value: a number of "best values", no unit of its own."""


def _unit(objective: str, currency: str) -> str:
    return {"turnaround": "s", "cost": currency, "energy": "kWh", "co2": "g CO2e", "weighted": _WEIGHTED_UNIT}[
        objective
    ]


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return human_duration(value)
    return f"{value:.3g} {unit}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
