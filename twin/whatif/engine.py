"""The what-if engine: scenario changes applied to copies of the cached queue bases and link views
(live state is never touched), only the affected sites' queues re-simulated with the forecast's own
simulator and predictor (QueueForecaster.rerun), and the comparison with today.

Draining nodes is simulated as a job at the head of the site's queue that holds the drained cores
for good: the scheduler reserves them as the jobs running there end (EASY still backfills what ends
before), which is what a drain does. A site taken down starts none of its queued jobs and is
excluded from the ranking with the reason; a link down or a new bandwidth changes stage-in only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from twin.advice.live import Advisor
from twin.advice.outcome import Advice
from twin.advice.request import JobRequest
from twin.errors import InvalidScenarioError, NoBatchQueueError, UnknownJobError, UnknownLinkError
from twin.queues import QueueBase
from twin.view import LinkView
from twin.whatif.changes import Change, LinkBandwidth, LinkDown, MoveJob, Nodes, SiteDown, describe

__all__ = ["Comparison", "JobShift", "WhatIf"]

_DRAIN = "__drain__"
_FOREVER_S = 10 * 365 * 86400
MAX_CHANGES = 20


@dataclass(frozen=True)
class JobShift:
    """One affected job: its predicted start today and under the scenario, each in its site's clock."""

    job_id: str
    site: str
    """Where it is under the scenario (today's site unless it moved)."""
    from_site: str
    today_start_s: int | None
    scenario_start_s: int | None
    """None: it does not start (its site is down, or it is wider than the site)."""
    shift_s: int | None
    """How much later it starts (negative: earlier), as waits from each site's now."""
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    changes: tuple[Change, ...]
    described: tuple[str, ...]
    sites: tuple[str, ...]
    """The sites whose queues the scenario changed."""
    now_s: dict[str, int]
    """Each of those sites' clock now (trace time for a replayed site)."""
    jobs: tuple[JobShift, ...]
    """Affected jobs, the biggest shift first (at most `limit`)."""
    affected: int
    earlier: int
    later: int
    today: Advice | None
    scenario: Advice | None
    notes: tuple[str, ...] = ()
    """What the simulation assumed that a reader should know (how many cores a node is)."""


@dataclass
class _Queue:
    base: QueueBase
    queue: pl.DataFrame
    processors: int
    drained: int = 0


class WhatIf:
    """Scenarios over the live twin, through its forecaster and its Advisor (previews only)."""

    def __init__(self, advisor: Advisor) -> None:
        self.advisor = advisor
        self.twin = advisor.twin

    def run(self, changes: Sequence[Change], request: JobRequest | None = None, *, limit: int = 500) -> Comparison:
        """Apply `changes` in order and compare with today. UnknownSiteError / UnknownJobError /
        UnknownLinkError: a name the twin does not know; InvalidScenarioError: a change that
        cannot be (a running job moved, every node drained, ...)."""
        if not changes:
            raise InvalidScenarioError("a what-if needs at least one change")
        if len(changes) > MAX_CHANGES:
            raise InvalidScenarioError(f"at most {MAX_CHANGES} changes in one what-if, not {len(changes)}")
        queues: dict[str, _Queue] = {}
        links = list(self.twin.links())
        down: dict[str, str] = {}
        moved: dict[str, tuple[str, str]] = {}
        notes: list[str] = []
        for change in changes:
            self._check_sites(change)
            match change:
                case MoveJob():
                    self._move(change, queues, down)
                    moved[change.job] = (change.from_site, change.to_site)
                case Nodes():
                    notes += self._nodes(change, queues)
                case SiteDown(site):
                    down[site] = "taken down in this what-if"
                case LinkDown(a, b):
                    links.pop(_link_index(links, a, b))
                case LinkBandwidth(a, b, gbps):
                    if not gbps > 0 or gbps > 1e6:
                        raise InvalidScenarioError(f"bandwidth must be > 0 and at most 1e6 Gb/s, not {gbps}")
                    i = _link_index(links, a, b)
                    links[i] = _with_bandwidth(links[i], gbps * 1e9)
        scenario = {
            site: self.twin.queues.rerun(q.base, q.queue, q.processors, {_DRAIN: _FOREVER_S} if q.drained else None)
            for site, q in queues.items()
        }
        for site in down:  # a down site's queue is shown too: nothing there starts
            if site not in queues:
                base = self._base_or_none(site)
                if base is not None:
                    queues[site] = _Queue(base, base.queue, base.processors)
        shifts = self._shifts(queues, scenario, down, moved)
        shifts.sort(key=lambda s: (s.shift_s is not None, -abs(s.shift_s or 0), s.site, s.job_id))
        affected = [s for s in shifts if s.shift_s != 0]
        today = scenario_advice = None
        if request is not None:
            today = self.advisor.preview(request)
            scenario_advice = self.advisor.preview(request, bases=scenario, links=links, down=down)
        return Comparison(
            changes=tuple(changes),
            described=tuple(describe(c) for c in changes),
            sites=tuple(sorted(queues)),
            now_s={site: q.base.now_s for site, q in sorted(queues.items())},
            jobs=tuple(affected[:limit]),
            affected=len(affected),
            earlier=sum(1 for s in affected if _sooner(s)),
            later=sum(1 for s in affected if not _sooner(s)),
            today=today,
            scenario=scenario_advice,
            notes=tuple(dict.fromkeys(notes)),
        )

    # ------------------------------------------------------------------ changes
    def _check_sites(self, change: Change) -> None:
        topology = self.twin.topology
        match change:
            case MoveJob(_, a, b) | LinkDown(a, b) | LinkBandwidth(a, b, _):
                topology.site(a)
                topology.site(b)
            case Nodes(site) | SiteDown(site):
                topology.site(site)

    def _base_or_none(self, site: str) -> QueueBase | None:
        try:
            return self.twin.queues.base(site)
        except LookupError:
            return None

    def _queue(self, site: str, queues: dict[str, _Queue], why: str) -> _Queue:
        if site not in queues:
            try:
                base = self.twin.queues.base(site)
            except NoBatchQueueError as exc:
                raise InvalidScenarioError(f"{why}: {exc}") from None
            queues[site] = _Queue(base, base.queue, base.processors)
        return queues[site]

    def _move(self, change: MoveJob, queues: dict[str, _Queue], down: dict[str, str]) -> None:
        job, a, b = change.job, change.from_site, change.to_site
        if a == b:
            raise InvalidScenarioError(f"job {job} is moved from {a} to the same site")
        if b in down:
            raise InvalidScenarioError(f"job {job} cannot move to {b}: this what-if takes it down")
        source = self._queue(a, queues, f"cannot move a job from {a}")
        target = self._queue(b, queues, f"cannot move a job to {b}")
        ids = source.queue["job_id"].cast(pl.String)
        rows = source.queue.filter(ids == job)
        if rows.is_empty():
            raise UnknownJobError(f"no job {job!r} in the queue of {a}")
        state = rows["state"][0]
        if state != "PENDING":
            raise InvalidScenarioError(f"job {job} is {str(state).lower()} at {a}: only a queued job can move")
        row = rows.head(1)
        cores = int(row.select(pl.coalesce("req_cores", "alloc_cores").fill_null(1)).item())
        if cores > target.processors:
            raise InvalidScenarioError(f"job {job} needs {cores} CPUs; {b} has {target.processors} in service")
        arrived = row.with_columns(
            pl.lit(b).cast(row.schema["site"]).alias("site"),
            pl.lit(target.base.now_s).cast(row.schema["submit_s"]).alias("submit_s"),
            pl.lit(target.base.now_s).cast(row.schema["observed_s"]).alias("observed_s"),
            pl.lit(None).cast(row.schema["expected_start_s"]).alias("expected_start_s"),
        )
        source.queue = source.queue.filter(ids != job)
        target.queue = pl.concat([target.queue, arrived.select(target.queue.columns)], how="vertical_relaxed")

    def _nodes(self, change: Nodes, queues: dict[str, _Queue]) -> list[str]:
        """Apply the change; the notes on what it assumed."""
        if (change.add > 0) == (change.drain > 0) or change.add < 0 or change.drain < 0:
            raise InvalidScenarioError("give either add=N or drain=N nodes, N > 0")
        q = self._queue(change.site, queues, f"cannot change the nodes of {change.site}")
        configured = self.twin.topology.site(change.site).placement.cores_per_node
        per_node = configured or 1
        notes = [] if configured else [f"{change.site} configures no cores_per_node: a node is counted as 1 core"]
        if change.add:
            q.processors += change.add * per_node
            return notes
        cores = change.drain * per_node
        if cores + q.drained >= q.processors:
            raise InvalidScenarioError(
                f"draining {change.drain} node(s) ({cores} cores) leaves {change.site} no CPU"
                f" ({q.processors - q.drained} in service)"
            )
        q.drained += cores
        q.queue = q.queue.filter(pl.col("job_id").cast(pl.String) != _DRAIN)
        q.queue = pl.concat([_drain_row(q.queue, q.base, q.drained), q.queue], how="vertical_relaxed")
        return notes

    # ------------------------------------------------------------------ comparison
    def _shifts(
        self,
        queues: dict[str, _Queue],
        scenario: dict[str, QueueBase],
        down: dict[str, str],
        moved: dict[str, tuple[str, str]],
    ) -> list[JobShift]:
        today_rows: dict[tuple[str, str], tuple[int | None, int]] = {}  # (site, job) → (start, now)
        for site, q in queues.items():
            for job, start in _starts(q.base):
                today_rows[(site, job)] = (start, q.base.now_s)
        out: list[JobShift] = []
        for site, q in queues.items():
            after = scenario.get(site)
            now = (after or q.base).now_s
            rows = _starts(after) if after is not None else _starts(q.base)
            for job, start in rows:
                if job == _DRAIN:
                    continue
                came = moved.get(job)
                origin = came[0] if came is not None and came[1] == site else site
                before = today_rows.get((origin, job))
                then = None if site in down else start
                note = "its site is down" if site in down else ""
                if then is not None and q.drained and then >= now + _FOREVER_S // 2:
                    then, note = None, "wider than the CPUs left in service"
                if origin != site:
                    note = "; ".join(n for n in (f"moved from {origin}", note) if n)
                today_start, today_now = before if before is not None else (None, now)
                shift = None
                if then is not None and today_start is not None:
                    shift = (then - now) - (today_start - today_now)
                elif then is None and today_start is None:
                    shift = 0
                out.append(JobShift(job, site, origin, today_start, then, shift, note))
        return out


def _sooner(shift: JobShift) -> bool:
    """Starts earlier, or starts at all where it could not today (nodes added)."""
    if shift.shift_s is None:
        return shift.today_start_s is None and shift.scenario_start_s is not None
    return shift.shift_s < 0


def _starts(base: QueueBase) -> list[tuple[str, int | None]]:
    jobs = base.forecast.jobs.filter(~pl.col("hypothetical"))
    return list(zip(jobs["job_id"].to_list(), jobs["predicted_start_s"].to_list(), strict=True))


def _drain_row(queue: pl.DataFrame, base: QueueBase, cores: int) -> pl.DataFrame:
    """The job that holds drained cores for good, first in queue order."""
    submits = queue.filter(pl.col("state") == "PENDING")["submit_s"].drop_nulls()
    first = min(int(submits.min()), base.now_s) if submits.len() else base.now_s  # type: ignore[arg-type]
    row: dict[str, object] = {c: None for c in queue.columns}
    row.update(
        site=base.site,
        job_id=_DRAIN,
        user=_DRAIN,
        state="PENDING",
        submit_s=first - 1,
        req_walltime_s=_FOREVER_S,
        req_cores=cores,
        observed_s=base.now_s,
    )
    return pl.DataFrame([row], schema=queue.schema)


def _link_index(links: list[LinkView], a: str, b: str) -> int:
    for i, link in enumerate(links):
        if {link.a, link.b} == {a, b}:
            return i
    raise UnknownLinkError(f"no link between {a!r} and {b!r}" + (" (or it is already down)" if links else ""))


def _with_bandwidth(link: LinkView, bps: float) -> LinkView:
    """The link at another capacity: its probe's figures, measured on the old one, no longer hold."""
    return replace(
        link,
        bandwidth_bps=bps,
        probe_throughput_bps=None,
        probe_throughput_last_bps=None,
        probe_throughput_age_s=None,
    )
