"""The replayed continuum of bench/advice_continuum.py: load scaling, paired windows, and each
policy's choice on a hand-built two-site case (tiny and synthetic: no shared logs, a few seconds)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import continuum_sim as cs

from twin.advice.rank import AdvicePolicy
from twin.sim import Job, RequestedTime, Simulator, Site, forecast_run

A = cs.SiteConf("A", 10, 1.0, 0.02, "A")
B = cs.SiteConf("B", 10, 0.5, 0.02, "B")
AB_LINK = (("A", "B", 10.0, 10.0),)


def synthetic(n: int, procs: int, seed: int, start: int = 0, gap: int = 600) -> list[Job]:
    rng = random.Random(seed)
    jobs, t = [], start
    for i in range(n):
        t += rng.randint(1, 2 * gap)
        req = rng.choice((600, 3600, 7200, 14400))
        jobs.append(Job(str(i), t, rng.randint(1, req), req, rng.randint(1, procs), user=f"u{rng.randrange(8)}"))
    return jobs


# ------------------------------------------------------------------------------------------ windows
def test_scale_window_reaches_the_load_and_fits_the_span() -> None:
    jobs = synthetic(3000, 10, 0)
    span = 5 * cs.DAY_S
    for load in (0.7, 0.85, 0.95):
        scaled, factor, covered = cs.scale_window(jobs, 10, jobs[100].submit_s, load, span)
        assert all(0 <= j.submit_s < span for j in scaled)
        assert cs.offered_load(scaled, 10, span) == pytest.approx(load, abs=0.01)
        assert factor == pytest.approx(span / covered)
        assert scaled[0].job_id == "100"  # from the window's start on, in order
        gaps = np.diff([j.submit_s for j in scaled])
        assert (gaps >= 0).all()


def test_a_lower_load_is_a_prefix_of_the_same_jobs() -> None:
    jobs = synthetic(3000, 10, 1)
    low, _, _ = cs.scale_window(jobs, 10, jobs[0].submit_s, 0.7, 5 * cs.DAY_S)
    high, _, _ = cs.scale_window(jobs, 10, jobs[0].submit_s, 0.95, 5 * cs.DAY_S)
    assert [j.job_id for j in low] == [j.job_id for j in high[: len(low)]]


def test_log_window_prefixes_names_and_knows_only_the_past() -> None:
    jobs = synthetic(2000, 10, 2)
    w = cs.log_window(A, jobs, 1, 0.85, 5 * cs.DAY_S, slot_s=cs.DAY_S)
    start = jobs[0].submit_s + cs.DAY_S
    assert w.start_s == start and w.jobs[0].job_id.startswith("A:") and w.jobs[0].user.startswith("A:")
    ended = sorted((j for j in jobs if j.submit_s + j.run_s <= start), key=lambda j: j.submit_s + j.run_s)
    assert w.history == [(f"A:{j.user}", j.run_s) for j in ended]


def test_workloads_are_paired_and_nested() -> None:
    a = synthetic(400, 10, 3)
    b = synthetic(300, 10, 4)
    w10 = cs.build_workload([a, b], 0.1, 0, 1, warm_s=a[50].submit_s)
    w20 = cs.build_workload([a, b], 0.2, 0, 1, warm_s=a[50].submit_s)
    again = cs.build_workload([a, b], 0.2, 0, 1, warm_s=a[50].submit_s)
    assert w20 == again
    assert [j.submit_s for j in w20] == sorted(j.submit_s for j in w20)
    assert {(j.home, j.job_id, j.input_bytes) for j in w10} == {(j.home, j.job_id, j.input_bytes) for j in w20}
    moved10 = {j.job_id for j in w10 if j.movable}
    moved20 = {j.job_id for j in w20 if j.movable}
    assert moved10 < moved20
    assert not any(j.movable or j.measured for j in w20 if j.submit_s < a[50].submit_s)
    assert all(1e7 <= j.input_bytes <= 1e11 for j in w20)
    shorter = cs.build_workload([a[:200], b], 0.2, 0, 1, warm_s=0)  # a prefix keeps its draws
    first = {(j.home, j.job_id): (j.movable, j.input_bytes) for j in shorter if j.home == 0}
    full = {(j.home, j.job_id): (j.movable, j.input_bytes) for j in cs.build_workload([a, b], 0.2, 0, 1, 0)}
    assert all(full[k] == v for k, v in first.items())


def test_peak_waiting() -> None:
    queued = np.array([0, 0, 5, 6, 20])
    started = np.array([0, 10, 12, 30, 20])
    assert cs.peak_waiting(queued, started) == 3  # at 6: jobs 2, 3, 4 wait
    assert cs.peak_waiting(queued, started, after_s=13) == 1


# ------------------------------------------------------------------------------------------ policies
def two_sites(ave2_of_running: int) -> tuple[cs.View, cs.CJob]:
    """A (home, 10 cores, speed 1) fully held by a job that asked 5000 s and runs 100 s; B (10
    cores, speed 0.5) idle; a 10-core job asking 2000 s, running 1000 s, arrives at A at t = 10.
    The running job's user has run `ave2_of_running` s twice; the new job's user 1000 s twice."""
    history = [("u", ave2_of_running), ("u", ave2_of_running), ("v", 1000), ("v", 1000)]
    cont = cs.Continuum((A, B), [history, []], AB_LINK)
    sims = cont._sims()
    sims[0].submit(Job("r", 0, 100, 5000, 10, user="u"))
    view = cs.View(cont.sites, sims, cont.planner)
    view.at(10)
    job = cs.CJob(0, "x", 0, 10, 1000, 2000, 10, "v", True, True, 1e9, 60)
    return view, job


def test_earliest_start_takes_the_earliest_requested_start() -> None:
    view, job = two_sites(100)
    assert cs.requested_start(view.state(0), view.hypothetical(job, 0)) == 5000  # A frees at the request
    assert cs.requested_start(view.state(1), view.hypothetical(job, 1)) == 10
    assert cs.EarliestStart().choose(view, job) == 1  # B, though it runs the job twice as long


def test_oracle_takes_the_least_realised_turnaround() -> None:
    view, job = two_sites(100)
    assert cs.clairvoyant_start(view.state(0), view.hypothetical(job, 0), 10) == 100
    assert view.at_site(job, 1) == (2000, 4000)  # run and request scaled by 1.0 / 0.5
    assert cs.Oracle().choose(view, job) == 0  # A: 90 s wait + 1000 s; B: 2000 s + transfers


def test_social_oracle_counts_the_delay_it_causes() -> None:
    """A (home) runs a 4-core and a 2-core job; a 10-core job waits for every core (reserved at
    2000 s) and a 6-core 500 s job behind it would backfill at 500 s. A 4-core 1000 s job arriving
    at 10 s backfills at A at once (1000 s), against about 1002 s at the idle B (stage-in and out):
    the Oracle keeps it home. There it holds the cores the 6-core job needed at 500 s, delaying it
    510 s: counting that, Oracle[social] sends it to B."""
    same = cs.SiteConf("B", 10, 1.0, 0.02, "B")
    cont = cs.Continuum((A, same), [[], []], AB_LINK)
    sims = cont._sims()
    for job_id, run, procs in (("00", 500, 4), ("01", 2000, 2), ("02", 1000, 10), ("03", 500, 6)):
        sims[0].submit(Job(job_id, 0, run, run, procs, user="u"))
    view = cs.View(cont.sites, sims, cont.planner)
    view.at(10)
    job = cs.CJob(0, "x", 0, 10, 1000, 1000, 4, "v", True, True, 1e6, 60)
    assert cs.clairvoyant_start(view.state(0), view.hypothetical(job, 0), 10) == 10
    assert cs.Oracle().choose(view, job) == 0
    without = cs._drained_starts(view.state(0))
    with_job = cs._drained_starts(view.state(0), view.hypothetical(job, 0, 10), 10)
    assert (without[-1], with_job[-2]) == (500, 1010)  # the 6-core job: 510 s later
    assert cs.SocialOracle().choose(view, job) == 1


@pytest.mark.parametrize(("ave2", "expected"), [(100, 0), (5000, 1)])
def test_ctwin_follows_the_engine(ave2: int, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the running job's AVE2 at 100 s the engine sees A free soon and keeps the job home; at
    5000 s it sees A busy and sends it to B. Either way the choice is what rank() recommends."""
    view, job = two_sites(ave2)
    seen = []
    real_rank = cs.rank

    def spy(*args: object, **kwargs: object) -> object:
        advice = real_rank(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(advice)
        return advice

    monkeypatch.setattr(cs, "rank", spy)
    policy = cs.Ctwin((A, B), view.planner, prune=False)  # every site evaluated, to read B's outcome
    chosen = policy.choose(view, job)
    assert chosen == expected
    assert seen[0].recommended == ("A", "B")[expected]
    b = next(o for o in seen[0].ranked if o.site == "B")
    assert b.run_s is not None and b.run_s.p50 == 2000  # AVE2 at home, translated by speed
    if expected == 1:
        assert [x.site for x in policy.ledger.active("B")] == ["B"]  # booked until it shows up
        policy.arrived(view, job, 1)
        assert policy.ledger.active("B") == []


def test_requested_start_equals_the_forecast() -> None:
    rng = random.Random(5)
    sim = Simulator(Site.single("S", 16), cs.EASY, RequestedTime())
    for job in synthetic(200, 16, 6, gap=120):
        sim.submit(job)
    for t in range(3000, 30000, 1500):
        sim.run(until=t)
        state = sim.state()
        probe = Job("probe", t, None, rng.choice((300, 3600, 20000)), rng.randint(1, 16))
        want = forecast_run(state, cs.EASY, RequestedTime(), extra=[probe], plan="requested").frame
        assert cs.requested_start(state, probe) == want["predicted_start_s"][-1]


def small_continuum(share: float = 0.5) -> tuple[cs.Continuum, list[cs.CJob]]:
    a, b = synthetic(80, 10, 7, gap=300), synthetic(80, 10, 8, gap=300)
    a = [Job(f"A:{j.job_id}", j.submit_s, j.run_s, j.req_s, j.procs, user=f"A:{j.user}") for j in a]
    b = [Job(f"B:{j.job_id}", j.submit_s, j.run_s, j.req_s, j.procs, user=f"B:{j.user}") for j in b]
    return cs.Continuum((A, B), [[], []], AB_LINK), cs.build_workload([a, b], share, 0, 1, warm_s=3600)


def test_ctwin_reusing_a_forecast_decides_as_without() -> None:
    cont, workload = small_continuum()
    cached = cs.Ctwin(cont.sites, cont.planner)
    fresh = cs.Ctwin(cont.sites, cont.planner, cache=False)
    one, two = cont.run(workload, cached), cont.run(workload, fresh)
    assert cached.forecasts_reused > 0
    assert np.array_equal(one.dest, two.dest) and np.array_equal(one.end, two.end)


def test_every_policy_runs_every_job_once() -> None:
    cont, workload = small_continuum()
    home = np.array([j.home for j in workload])
    local = cont.run(workload, cs.Local(), 3600)
    policies = [cs.RandomSite(0), cs.RoundRobin(), cs.LeastQueued(), cs.LeastWork(), cs.EarliestStart(), cs.Oracle()]
    policies.append(cs.Ctwin(cont.sites, cont.planner, AdvicePolicy(stay_home=False)))
    for policy in [*policies, cs.Local()]:
        out = cont.run(workload, policy, 3600)
        run = np.array([j.run_s for j in workload])
        assert (out.start >= out.arrival).all() and (out.end - out.start == out.run_at_site).all()
        moved = out.dest != home
        assert (out.arrival[moved] > np.array([j.submit_s for j in workload])[moved]).all()
        assert (out.run_at_site[moved & (out.dest == 1)] == 2 * run[moved & (out.dest == 1)]).all()
        m = cs.run_metrics(workload, out, cont.sites)
        assert m["awrt_h"] > 0 and m["bsld"] >= 1 and 0 <= m["moved"] <= 1
        assert cs.herding(out, local, home) >= 0
        if isinstance(policy, cs.Local):
            assert m["moved"] == 0 and cs.herding(out, local, home) == 1.0


def test_site_state_is_the_simulators_state() -> None:
    sim = Simulator(Site.single("S", 16), cs.EASY, RequestedTime())
    for job in synthetic(3000, 16, 9, gap=60):
        sim.submit(job)
    for t in range(10_000, 200_000, 7_000):
        sim.run(until=t)
        assert cs.site_state(sim) == sim.state()


class EveryStart(cs.EarliestStart):
    def choose(self, view: cs.View, job: cs.CJob) -> int:
        starts = {d: float(cs.requested_start(view.state(d), view.hypothetical(job, d))) for d in view.feasible(job)}
        return cs._best(starts, job.home)


class EveryTurnaround(cs.Oracle):
    def choose(self, view: cs.View, job: cs.CJob) -> int:
        ta = {}
        for d in view.feasible(job):
            arrive = view.arrival_s(job, d)
            start = cs.clairvoyant_start(view.state(d), view.hypothetical(job, d, arrive), arrive)
            ta[d] = float(start - view.t + view.at_site(job, d)[0] + view.stage_out_s(job, d))
        return cs._best(ta, job.home)


@pytest.mark.parametrize(
    ("quick", "every"),
    [
        (lambda c: cs.EarliestStart(), lambda c: EveryStart()),
        (lambda c: cs.Oracle(), lambda c: EveryTurnaround()),
        (lambda c: cs.Ctwin(c.sites, c.planner), lambda c: cs.Ctwin(c.sites, c.planner, prune=False)),
    ],
)
def test_skipping_sites_that_cannot_win_changes_no_choice(quick: object, every: object) -> None:
    cont, workload = small_continuum(share=0.8)
    one = cont.run(workload, quick(cont))  # type: ignore[operator]
    two = cont.run(workload, every(cont))  # type: ignore[operator]
    assert (one.dest != np.array([j.home for j in workload])).any()
    assert np.array_equal(one.dest, two.dest) and np.array_equal(one.end, two.end)
