"""Placement advice over the live twin: gather what the twin knows of every site, ask the engine
(twin.advice.rank), book the answer against herding, log it.

Nothing here touches the network or simulates a queue on the request path: batch sites are read
off their cached forecast base (twin.queues), and each base's free-capacity profiles are built
once (and again only when its queue changes or advice is booked there). An advice over ten sites
with thousands of queued jobs each is a few profile insertions and one model call
(bench/advice_latency.py).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache

import numpy as np
import polars as pl

from twin.advice.containers import ContainerEffects
from twin.advice.herding import Booking, HerdingLedger
from twin.advice.log import AdviceLog
from twin.advice.outcome import Advice, human_duration
from twin.advice.profile import FreeProfile
from twin.advice.rank import (
    AdvicePolicy,
    Candidate,
    QueueInputs,
    RuntimeGuess,
    cores_at,
    evaluate,
    rank,
    site_clock_at,
)
from twin.advice.request import JobRequest
from twin.advice.runtimes import guess_runtimes
from twin.advice.serialise import iso_utc
from twin.advice.speeds import learn_speeds
from twin.advice.transfer import TransferPlanner
from twin.errors import InvalidJobError, TwinError
from twin.live import Twin
from twin.queues import QueueBase
from twin.sim import Occupancy
from twin.topology import SiteSpec
from twin.view import LinkView, SiteView

__all__ = ["REPORT_TOLERANCE_S", "Advisor"]

REPORT_TOLERANCE_S = 60.0
"""How much earlier than its advice a reported job may have been submitted (site clock seconds):
the scheduler's clock and the twin's may disagree by that much."""


class Advisor:
    def __init__(
        self,
        twin: Twin,
        log: AdviceLog,
        ledger: HerdingLedger,
        policy: AdvicePolicy | None = None,
        *,
        clock: Callable[[], float] | None = None,
        containers: ContainerEffects | None = None,
    ) -> None:
        self.twin = twin
        self.containers = containers
        """The container-effect model: the runtime at a site that forces another configuration."""
        self.log = log
        self.ledger = ledger
        self.policy = policy or AdvicePolicy()
        self.clock = clock or twin.clock
        self._profiles: dict[str, _Profiles] = {}
        self._lock = threading.Lock()
        self._speeds: tuple[tuple[int, ...], dict[str, float]] | None = None
        self.restored_holds = self._restore_holds()
        """Cloud quota held again at start from the advice log (the ledger lives in memory)."""

    # ------------------------------------------------------------------ public
    def advise(self, request: JobRequest, hook: str = "api") -> Advice:
        return self._advise([request], hook, labelled=False)[0]

    def advise_batch(self, requests: Sequence[JobRequest], hook: str = "api") -> list[Advice]:
        """Advice for each request, in order; each one's booking is seen by the ones after it.
        `hook` (telemetry.advice.HOOKS) is logged with each answer: which scheduler hook asked.
        A refusal names the item it is about (`jobs[3]: no site named 'x'`)."""
        return self._advise(requests, hook, labelled=True)

    def _advise(self, requests: Sequence[JobRequest], hook: str, *, labelled: bool) -> list[Advice]:
        topology = self.twin.topology
        homes = self._homes(requests, labelled=labelled)
        bases = self._bases()
        views = {v.name: v for v in self.twin.current.sites()}
        runtimes = self._runtimes(requests, bases, homes, self.speeds(bases))
        planner = TransferPlanner(self.twin.links(), probe_max_age_s=self.policy.max_data_age_s)
        out = []
        with self._lock:  # one booking at a time: the next request sees the previous one's
            candidates = {s.name: self._candidate(s, views[s.name], bases.get(s.name)) for s in topology.sites}
            for request, home, guesses in zip(requests, homes, runtimes, strict=True):
                now = self.clock()
                advice = self._rank(request, home, candidates, guesses, planner, now, _new_id(now))
                booked = self._book(advice, request, bases)
                if booked is not None:  # only the booked site's candidate changed
                    candidates[booked] = self._candidate(topology.site(booked), views[booked], bases.get(booked))
                self.log.record(advice, request, hook)
                out.append(advice)
        return out

    def preview(
        self,
        request: JobRequest,
        *,
        bases: Mapping[str, QueueBase] | None = None,
        links: Sequence[LinkView] | None = None,
        down: Mapping[str, str] | None = None,
    ) -> Advice:
        """The ranking `advise` would answer now, without booking it or logging it (what-ifs,
        twin.whatif). `bases` replace sites' cached bases (scenario copies), `links` the live link
        views, and `down` marks sites down with the reason shown in the ranking."""
        return self._preview([request], bases, links, down, labelled=False)[0]

    def preview_batch(self, requests: Sequence[JobRequest]) -> list[Advice]:
        """The answers `advise_batch` would give now, without booking or logging any of them (a
        batch dry run): each job still sees the earlier jobs' bookings, kept in a copy of the
        candidates only, so the preview ranks as the real batch would and moves no later answer."""
        return self._preview(requests, None, None, None, labelled=True)

    def _preview(
        self,
        requests: Sequence[JobRequest],
        bases: Mapping[str, QueueBase] | None,
        links: Sequence[LinkView] | None,
        down: Mapping[str, str] | None,
        *,
        labelled: bool,
    ) -> list[Advice]:
        topology = self.twin.topology
        homes = self._homes(requests, labelled=labelled)
        today = self._bases()
        used = {**today, **(bases or {})}
        views = {v.name: v for v in self.twin.current.sites()}
        runtimes = self._runtimes(requests, used, homes, self.speeds(today))
        planner = TransferPlanner(
            self.twin.links() if links is None else links, probe_max_age_s=self.policy.max_data_age_s
        )
        candidates: dict[str, Candidate] = {}
        out = []
        with self._lock:
            for spec in topology.sites:
                base = used.get(spec.name)
                fresh = base is not None and base is not today.get(spec.name)
                candidate = self._candidate(spec, views[spec.name], base, fresh=fresh)
                if down and spec.name in down:
                    candidate = replace(candidate, state="down", last_error=down[spec.name])
                candidates[spec.name] = candidate
            for request, home, guesses in zip(requests, homes, runtimes, strict=True):
                now = self.clock()
                advice = self._rank(request, home, candidates, guesses, planner, now, _new_id(now, "preview"))
                taken = self._booking(advice, request, used)
                if taken is not None:  # the next job sees it, the ledger never does
                    candidates[taken.site] = _with_booking(candidates[taken.site], taken)
                out.append(advice)
        return out

    def _restore_holds(self, lookback_s: float = 30 * 86400.0) -> int:
        """After a restart, hold again the cloud quota of the answers that sent jobs there and
        whose predicted end is still ahead: the instances did not stop with the service, and a
        cloud shows the twin no queue to find them in. Returns how many."""
        clouds = {s.name: s for s in self.twin.topology.sites if s.placement.provisioning is not None}
        if not clouds or len(self.ledger):
            return 0
        now = self.clock()
        held = 0
        for row in self.log.sent_to(clouds, now - lookback_s):
            spec = clouds[row.get("chosen_site") or row["recommended"]]
            prov = spec.placement.provisioning
            there = next((o for o in row.get("ranked") or () if o.get("site") == spec.name), None)
            if prov is None or there is None or there.get("start_at_s") is None:
                continue
            begin, end = _held_span(there["start_at_s"], (there.get("run_s") or {}).get("p50", 0.0), prov.p50_s, now)
            if end <= now:
                continue
            request = row.get("request") or {}
            cores = cores_at(spec, int(request.get("cores") or 1), request.get("nodes"))
            self.ledger.hold(row["advice_id"], spec.name, cores, begin, end)
            held += 1
        return held

    def _homes(self, requests: Sequence[JobRequest], *, labelled: bool) -> list[str]:
        """Each request's home, every site it names checked (UnknownSiteError); `labelled`: the
        message says which item of a batch it is about."""
        homes = []
        for k, request in enumerate(requests):
            try:
                homes.append(self._home(request))
                self._check_names(request)
            except TwinError as exc:
                if labelled:
                    exc.message = f"jobs[{k}]: {exc.message}"
                    exc.args = (exc.message,)
                raise
        return homes

    def _check_names(self, request: JobRequest) -> None:
        """UnknownSiteError for a data site or an allowed site the topology does not know."""
        topology = self.twin.topology
        for data in (request.input, request.output):
            if data.site is not None:
                topology.site(data.site)
        for name in request.constraints.allowed_sites:
            topology.site(name)

    def _runtimes(
        self,
        requests: Sequence[JobRequest],
        bases: Mapping[str, QueueBase],
        homes: list[str],
        speeds: dict[str, float],
    ) -> list[dict[str, RuntimeGuess]]:
        """Each request's run time at every site, the container effect of each site applied."""
        sites = self.twin.topology.sites
        runtimes = guess_runtimes(requests, sites, bases, homes, speeds)
        return self.containers.apply(requests, sites, runtimes) if self.containers is not None else runtimes

    def _rank(
        self,
        request: JobRequest,
        home: str,
        candidates: Mapping[str, Candidate],
        guesses: Mapping[str, RuntimeGuess],
        planner: TransferPlanner,
        now: float,
        advice_id: str,
    ) -> Advice:
        """Every site's outcome for the request, ranked (twin.advice.rank)."""
        sites = self.twin.topology.sites
        egress = {s.name: s.placement.pricing.egress_per_gb for s in sites}
        outcomes = [
            evaluate(
                request,
                candidates[spec.name],
                guesses[spec.name],
                planner,
                home=home,
                wall_now_s=now,
                policy=self.policy,
                source_pricing=egress,
            )
            for spec in sites
        ]
        currency = sites[0].placement.pricing.currency if sites else "EUR"
        return rank(
            request, outcomes, advice_id=advice_id, home=home, wall_now_s=now, policy=self.policy, currency=currency
        )

    def report(self, advice_id: str, site: str, job_id: str, stage_in_s: float | None = None) -> dict[str, object]:
        """The caller ran the job at `site` as `job_id`; herding and the outcome join follow.
        InvalidJobError when the twin already knows that job as submitted before the advice was
        given (it cannot be the advised job: joining it would score the advice on another job's
        wait); a job the twin has not seen yet is taken on the caller's word. The same report
        again is answered as before, a different one refused (AdviceLog.report)."""
        self.twin.topology.site(site)
        row = self.log.get(advice_id)
        if row.get("job_id") is None:  # a repeated report keeps what was accepted the first time
            self._check_submitted_after(row, site, job_id)
        answer = self.log.report(advice_id, site, job_id, stage_in_s)
        self.ledger.reported(advice_id, site, job_id)
        return answer

    def _check_submitted_after(self, row: Mapping[str, object], site: str, job_id: str) -> None:
        """InvalidJobError if `job_id` at `site` is known (its live queue, else the store's job
        history) and was submitted more than REPORT_TOLERANCE_S before the advice's creation, in
        the site's own clock (a replayed site's trace time)."""
        submit = self._submit_s(site, job_id)
        created = float(row["created_s"])  # type: ignore[arg-type]
        created_site = self.twin.current.site(site).clock_at(created)
        if submit is None or created_site is None:
            return
        if submit < created_site - REPORT_TOLERANCE_S:
            before = human_duration(created_site - submit)
            raise InvalidJobError(
                f"job {job_id} at {site} was submitted {before} before advice {row['advice_id']} was given"
                f" ({iso_utc(created)}): it cannot be the job that followed this advice; report the job"
                " submitted after it"
            )

    def _submit_s(self, site: str, job_id: str) -> float | None:
        """When the twin saw `job_id` submitted at `site` (site clock), None if it knows no such job."""
        queue = self.twin.state.queue(site)
        for frame in (queue, self.log.store.job(site, job_id) if self.log.store is not None else None):
            if frame is None or frame.height == 0:
                continue
            found = frame.filter(pl.col("job_id").cast(pl.String) == job_id)["submit_s"].drop_nulls()
            if found.len():
                return float(found.min())  # type: ignore[arg-type]
        return None

    def speeds(self, bases: dict[str, QueueBase] | None = None) -> dict[str, float]:
        """Learned speeds of the sites without a configured one (from the finished jobs their
        cached bases already hold, relative to the home site), recomputed when a base changes."""
        unset = [s.name for s in self.twin.topology.sites if not s.placement.speed_configured]
        if not unset:
            return {}
        bases = bases if bases is not None else self._bases()
        home = self.policy.default_home
        key = tuple(id(bases[n]) for n in sorted(bases))
        if self._speeds is not None and self._speeds[0] == key:
            return self._speeds[1]
        frames = [b.finished for b in bases.values() if b.finished is not None and b.finished.height]
        learned: dict[str, float] = {}
        if frames and home in bases:
            reference = self.twin.topology.site(home).placement.speed
            found = learn_speeds(pl.concat(frames, how="vertical_relaxed"), home, reference)
            learned = {site: s.speed for site, s in found.items() if site in unset}
        self._speeds = (key, learned)
        return learned

    # ------------------------------------------------------------------ inputs
    def _home(self, request: JobRequest) -> str:
        home = request.home or request.input.site or self.policy.default_home
        try:
            self.twin.topology.site(home)
        except KeyError:
            if request.home or request.input.site:
                raise
            names = [s.name for s in self.twin.topology.sites]
            if not names:
                raise InvalidJobError("the twin has no sites to advise on") from None
            home = names[0]
        return home

    def _bases(self) -> dict[str, QueueBase]:
        bases: dict[str, QueueBase] = {}
        for spec in self.twin.topology.sites:
            try:
                bases[spec.name] = self.twin.queues.base(spec.name)
            except LookupError:
                continue  # no batch queue there (edge, cloud, not collected yet)
        return bases

    def _profiles_of(self, base: QueueBase) -> _Profiles:
        """The base's free-capacity profiles with this site's bookings applied. The clean ones are
        built once per base; bookings added since are applied on top, and all of them again only
        when one ended early or expired (the ledger's removed count says so)."""
        site = base.site
        cached = self._profiles.get(site)
        jobs = cores = 0
        if cached is not None and cached.base is base:
            removed, new = self.ledger.tail(site, cached.applied)
            if removed == cached.removed:
                if not new:
                    return cached
                start, todo, clean, applied = cached.booked, new, cached.clean, cached.applied + len(new)
                jobs, cores = cached.jobs, cached.cores
            else:
                removed, todo = self.ledger.tail(site, 0)
                start = clean = cached.clean
                applied = len(todo)
        else:
            removed, todo = self.ledger.tail(site, 0)
            clean = {
                level: FreeProfile.of(occ, base.processors, base.now_s)
                for level, occ in base.forecast.occupancy.items()
            }
            start, applied = clean, len(todo)
        timed = [b for b in todo if b.start_s is not None and b.end_s is not None]
        booked = {}
        for level, profile in start.items():
            for b in timed:
                assert b.start_s is not None and b.end_s is not None
                profile = profile.reserve(b.start_s, b.end_s, b.cores)
            booked[level] = profile
        jobs, cores = jobs + len(timed), cores + sum(b.cores for b in timed)
        profiles = _Profiles(base, removed, applied, clean, booked, jobs, cores)
        self._profiles[site] = profiles
        return profiles

    def _fresh_profiles(self, base: QueueBase) -> _Profiles:
        """A scenario base's profiles with the site's live bookings applied, never cached (the
        cache holds the live bases' profiles)."""
        removed, bookings = self.ledger.tail(base.site, 0)
        timed = [b for b in bookings if b.start_s is not None and b.end_s is not None]
        out = {}
        for level, occ in base.forecast.occupancy.items():
            profile = FreeProfile.of(occ, base.processors, base.now_s)
            for b in timed:
                assert b.start_s is not None and b.end_s is not None
                profile = profile.reserve(b.start_s, b.end_s, b.cores)
            out[level] = profile
        return _Profiles(base, removed, len(bookings), out, out, len(timed), sum(b.cores for b in timed))

    def _candidate(self, spec: SiteSpec, view: SiteView, base: QueueBase | None, *, fresh: bool = False) -> Candidate:
        now = self.clock()
        last_error = next((c.last_error for c in view.collectors if c.last_error), None)
        ages: dict[str, float | None] = {"state": view.data_age_s}
        state = view.state if spec.collectors else None
        if base is not None:
            seen = _seen_wall_s(base)
            ages["queue"] = max(0.0, now - seen)
            if base.model is not None:
                created = _created_s(getattr(getattr(base.model, "card", None), "created", None))
                ages["model"] = None if created is None else max(0.0, now - created)
            profiles = self._fresh_profiles(base) if fresh else self._profiles_of(base)
            queue = QueueInputs(
                now_s=base.now_s,
                seen_wall_s=seen,
                profiles=profiles.booked,
                pending=base.forecast.jobs.height,
                predictor=base.forecast.predictor,
                booked_jobs=profiles.jobs,
                booked_cores=profiles.cores,
            )
            return Candidate(spec, state, view.data_age_s, last_error, base.processors, None, queue, ages)
        place = spec.placement
        if place.provisioning is not None:  # its quota's free cores over time, from the holds there
            quota = place.quota_cores
            holds = self.ledger.held(spec.name)
            held = None if quota is None else _quota_profile(quota, holds, now)
            return Candidate(
                spec, state, view.data_age_s, last_error, quota, None, None, ages, held,
                held_jobs=len(holds), held_cores=sum(b.cores for b in holds),
            )  # fmt: skip
        cpus = int(view.cpus_total) if view.cpus_total else place.quota_cores
        idle: float | None = None
        if view.cpus_total:
            idle = max(0.0, view.cpus_total - (view.cpus_busy or 0.0) - self.ledger.booked_cores(spec.name))
        return Candidate(spec, state, view.data_age_s, last_error, cpus, idle, None, ages)

    def _booking(self, advice: Advice, request: JobRequest, bases: Mapping[str, QueueBase]) -> _Taken | None:
        """What the recommendation takes at its site against herding, if anything."""
        site = advice.recommended
        if site is None:
            return None
        outcome = next(o for o in advice.ranked if o.site == site)
        if outcome.wait_s is None or outcome.run_s is None or outcome.stage_in_s is None:
            return None
        spec = self.twin.topology.site(site)
        cores = cores_at(spec, request.cores, request.nodes)
        base = bases.get(site)
        prov = spec.placement.provisioning
        if base is not None:  # from the site's clock at the answer, as the engine placed it
            now_s = site_clock_at(base.now_s, _seen_wall_s(base), advice.created_s, spec.placement.clock_speed)
            start = now_s + int(outcome.stage_in_s.p50 + outcome.wait_s.p50)
            return _Taken(site, cores, start, start + int(outcome.run_s.p50) + 1, held=False)
        if prov is not None and outcome.start_at_s is not None:
            begin, end = _held_span(outcome.start_at_s, outcome.run_s.p50, prov.p50_s, self.clock())
            return _Taken(site, cores, begin, end, held=True)
        return _Taken(site, cores, None, None, held=False)

    def _book(self, advice: Advice, request: JobRequest, bases: dict[str, QueueBase]) -> str | None:
        """Book the recommendation against herding; the site booked, if any."""
        taken = self._booking(advice, request, bases)
        if taken is None:
            return None
        if taken.held:
            assert taken.start_s is not None and taken.end_s is not None
            self.ledger.hold(advice.advice_id, taken.site, taken.cores, taken.start_s, taken.end_s)
        else:
            self.ledger.book(advice.advice_id, taken.site, taken.cores, taken.start_s, taken.end_s)
        return taken.site


@dataclass
class _Profiles:
    base: QueueBase
    removed: int
    """The site's removed count when these were built (another: rebuild from the clean ones)."""
    applied: int
    """How many of the site's bookings (oldest first) `booked` has applied."""
    clean: dict[str, FreeProfile]
    booked: dict[str, FreeProfile]
    jobs: int
    """How many timed bookings `booked` holds (said in the reason: load the queue does not show)."""
    cores: int


@dataclass(frozen=True)
class _Taken:
    """A booking an answer takes: a batch site's cores in its clock [start_s, end_s), a cloud's
    quota held in wall clock (`held`), or an edge site's cores now (no times)."""

    site: str
    cores: int
    start_s: int | None
    end_s: int | None
    held: bool


def _with_booking(candidate: Candidate, taken: _Taken) -> Candidate:
    """The candidate as it would be with `taken` booked there (a preview's batch: the next job
    sees it, the ledger does not)."""
    q = candidate.queue
    if q is not None:
        if taken.start_s is None or taken.end_s is None:
            return candidate
        start, end = taken.start_s, taken.end_s
        profiles = {level: p.reserve(start, end, taken.cores) for level, p in q.profiles.items()}
        jobs, cores = q.booked_jobs + 1, q.booked_cores + taken.cores
        return replace(candidate, queue=replace(q, profiles=profiles, booked_jobs=jobs, booked_cores=cores))
    if taken.held:
        if candidate.quota is None or taken.start_s is None or taken.end_s is None:
            return candidate
        return replace(
            candidate,
            quota=candidate.quota.reserve(taken.start_s, taken.end_s, taken.cores),
            held_jobs=candidate.held_jobs + 1,
            held_cores=candidate.held_cores + taken.cores,
        )
    if candidate.idle_cores is None:
        return candidate
    return replace(candidate, idle_cores=max(0.0, candidate.idle_cores - taken.cores))


def _seen_wall_s(base: QueueBase) -> float:
    """Wall time the base's queue was read (its site clock then: `base.now_s`)."""
    return base.queue_seen_wall_s if base.queue_seen_wall_s is not None else base.built_wall_s


def _held_span(start_at_s: float, run_s: float, provisioning_s: float, now: float) -> tuple[int, int]:
    """Wall seconds a job sent to a cloud takes its quota: from its instance request (after any
    wait for room; not before now) to the predicted end of its run."""
    return max(int(now), int(start_at_s - provisioning_s)), int(start_at_s + run_s) + 1


def _quota_profile(quota: int, held: Sequence[Booking], now: float) -> FreeProfile:
    """A cloud quota's free cores from now, given the bookings held there until their ends."""
    occupancy = Occupancy(
        partition=np.zeros(len(held), np.int64),
        start_s=np.array([b.start_s or 0 for b in held], np.int64),
        end_s=np.array([b.end_s or 0 for b in held], np.int64),
        units=np.array([b.cores for b in held], np.int64),
    )
    return FreeProfile.of(occupancy, quota, int(now))


def _new_id(now: float, prefix: str = "adv") -> str:
    """Sortable by time (milliseconds, hex), unique by 8 random hex digits (a preview's prefix is
    `preview`: the advice routes take only `adv-` ids, so it can be neither read nor reported)."""
    return f"{prefix}-{int(now * 1000):011x}-{secrets.token_hex(4)}"


@cache
def _created_s(created: str | None) -> float | None:
    """A model card's ISO creation time as unix seconds (parsed once per card)."""
    if not created:
        return None
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
