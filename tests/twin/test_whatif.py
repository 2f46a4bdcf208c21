"""What-ifs over real bases (two sites replaying the KTH SP2 trace): moves, drains, a site or link
down, a slower link — each re-simulated on copies, the live forecasts untouched."""

from __future__ import annotations

import polars as pl
import pytest

from tests.twin.whatif_helpers import Replayed, replayed
from twin.advice.request import DataSpec, JobRequest
from twin.errors import InvalidScenarioError, UnknownJobError, UnknownLinkError, UnknownSiteError
from twin.whatif import LinkBandwidth, LinkDown, MoveJob, Nodes, SiteDown


@pytest.fixture(scope="module")
def r() -> Replayed:
    return replayed()


def _waits(r: Replayed, site: str) -> dict[str, int]:
    jobs = r.twin.queues.base(site).forecast.jobs
    return dict(zip(jobs["job_id"].to_list(), jobs["predicted_wait_s"].to_list(), strict=True))


def _waiting_job(r: Replayed, site: str) -> str:
    """The queued job with the most jobs waiting behind it (the head of the queue that waits)."""
    jobs = r.twin.queues.base(site).forecast.jobs.filter(pl.col("predicted_wait_s") > 0).sort("submit_s")
    return str(jobs["job_id"][0])


def test_moving_a_job_off_a_busy_site_makes_the_jobs_behind_it_start_earlier(r: Replayed) -> None:
    """The queue behind the head job waits less in all. Not every job: EASY backfilling is not
    monotone (a job that backfilled into the hole the head's reservation left may lose it; on
    this trace one job of 13 starts later), and the comparison shows that as it is."""
    live = r.twin.queues.base("kth")
    job = _waiting_job(r, "kth")
    today = _waits(r, "kth")
    out = r.whatif.run([MoveJob(job, "kth", "kth2")])
    assert r.twin.queues.base("kth") is live and job in live.queue["job_id"].to_list()  # live state untouched
    assert out.sites == ("kth", "kth2")
    at_kth = [s for s in out.jobs if s.site == "kth"]
    assert at_kth and all(s.shift_s is not None for s in at_kth)
    assert sum(s.shift_s or 0 for s in at_kth) < 0
    assert sum(1 for s in at_kth if (s.shift_s or 0) < 0) > 3 * sum(1 for s in at_kth if (s.shift_s or 0) > 0)
    behind = [s for s in at_kth if (s.today_start_s or 0) >= live.forecast.jobs.filter(pl.col("job_id") == job)[
        "predicted_start_s"][0]]  # fmt: skip
    assert behind and sum(s.shift_s or 0 for s in behind) < 0
    for s in at_kth:
        assert s.today_start_s is not None and s.scenario_start_s is not None
        assert s.shift_s == s.scenario_start_s - s.today_start_s  # one clock: the shift is the start's
        assert today[s.job_id] + s.shift_s >= 0
    moved = next(s for s in out.jobs if s.job_id == job)
    assert (moved.from_site, moved.site, moved.note) == ("kth", "kth2", "moved from kth")
    assert moved.today_start_s == live.forecast.jobs.filter(pl.col("job_id") == job)["predicted_start_s"][0]


def test_draining_nodes_delays_and_adding_them_speeds_the_queue_up(r: Replayed) -> None:
    """Adding is not monotone per job either (EASY, as above): the queue as a whole waits less."""
    drained = r.whatif.run([Nodes("kth2", drain=40)])
    assert drained.notes == ("kth2 configures no cores_per_node: a node is counted as 1 core",)
    assert drained.later >= 1
    assert all(s.shift_s is None or s.shift_s >= 0 for s in drained.jobs)
    assert all(s.job_id != "__drain__" for s in drained.jobs)
    wide = r.whatif.run([Nodes("kth", drain=60)])  # 40 CPUs left: a wider job never starts, and says why
    never = [s for s in wide.jobs if s.scenario_start_s is None]
    assert never and all(s.note == "wider than the CPUs left in service" and s.shift_s is None for s in never)
    procs = dict(
        zip(*r.twin.queues.base("kth").forecast.jobs.select("job_id", "procs").to_dict().values(), strict=True)
    )
    assert all(procs[s.job_id] > 40 for s in never)
    assert wide.later >= len(never)  # never starting counts as later
    added = r.whatif.run([Nodes("kth2", add=40)])
    assert added.earlier > 3 * added.later and sum(s.shift_s or 0 for s in added.jobs) < 0


def test_a_site_down_starts_nothing_there_and_is_excluded_from_the_ranking_with_a_reason(r: Replayed) -> None:
    request = JobRequest(cores=4, walltime_s=3600, home="kth")
    out = r.whatif.run([SiteDown("kth2")], request)
    assert out.jobs and all(s.site == "kth2" and s.scenario_start_s is None for s in out.jobs)
    assert all(s.note == "its site is down" for s in out.jobs)
    assert out.today is not None and out.scenario is not None
    before = {o.site: o for o in out.today.ranked}
    after = {o.site: o for o in out.scenario.ranked}
    assert before["kth2"].feasible
    assert not after["kth2"].feasible and after["kth2"].excluded_because == "down"
    assert "taken down in this what-if" in after["kth2"].reason
    assert r.advisor.ledger.booked_cores("kth") == 0 and r.advisor.ledger.booked_cores("cloud") == 0


def test_a_link_down_or_slower_lengthens_stage_in(r: Replayed) -> None:
    request = JobRequest(cores=4, walltime_s=3600, home="kth", input=DataSpec(50e9, "kth"))
    down = r.whatif.run([LinkDown("kth", "kth2")], request)
    slower = r.whatif.run([LinkBandwidth("kth2", "kth", 0.5)], request)
    assert down.jobs == () and slower.jobs == ()  # queues are not affected by links
    for out in (down, slower):
        assert out.today is not None and out.scenario is not None
        today = next(o for o in out.today.ranked if o.site == "kth2")
        then = next(o for o in out.scenario.ranked if o.site == "kth2")
        assert today.stage_in_s is not None and then.stage_in_s is not None
        assert then.stage_in_s.p50 > today.stage_in_s.p50 * 5
    # kth–kth2 down: the data goes round via the cloud's 1 Gb/s link
    assert next(o for o in down.scenario.ranked if o.site == "kth2").stage_in_s.p50 > 400  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ([MoveJob("no-such-job", "kth", "kth2")], UnknownJobError, "no job 'no-such-job'"),
        ([MoveJob("1", "nowhere", "kth2")], UnknownSiteError, "no site named 'nowhere'"),
        ([LinkDown("kth2", "kth2")], UnknownLinkError, "no link between"),
        ([MoveJob("1", "kth", "cloud")], InvalidScenarioError, "cannot move a job to cloud"),
        ([Nodes("kth", drain=100)], InvalidScenarioError, "leaves kth no CPU"),
        ([Nodes("kth", add=2, drain=1)], InvalidScenarioError, "either add=N or drain=N"),
        ([LinkBandwidth("kth", "kth2", 0)], InvalidScenarioError, "bandwidth must be > 0"),
        ([], InvalidScenarioError, "at least one change"),
    ],
)
def test_bad_scenarios_say_what_is_wrong(r: Replayed, changes: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        r.whatif.run(changes)


def test_a_running_job_cannot_move(r: Replayed) -> None:
    running = r.twin.queues.base("kth").queue.filter(pl.col("state") == "RUNNING")["job_id"][0]
    with pytest.raises(InvalidScenarioError, match="only a queued job can move"):
        r.whatif.run([MoveJob(running, "kth", "kth2")])


def test_a_what_if_is_not_scored_booked_logged_or_cached() -> None:
    """Fresh twin: the scenario's forecasts stay out of the accuracy trackers and the base cache,
    its rankings out of the herding ledger and the advice log."""
    r = replayed()
    live = {site: r.twin.queues.base(site) for site in ("kth", "kth2")}
    job = _waiting_job(r, "kth")
    opened = dict(r.twin.queues.forecasts._log._open["kth2"])
    r.whatif.run([MoveJob(job, "kth", "kth2"), Nodes("kth", add=8)], JobRequest(cores=4, walltime_s=3600))
    assert r.twin.queues.forecasts._log._open["kth2"] == opened and job not in opened
    assert all(r.twin.queues.base(site) is base for site, base in live.items())
    assert r.advisor.log.stats().advised == {}
    assert all(r.advisor.ledger.booked_cores(s) == 0 for s in ("kth", "kth2", "cloud"))
    assert r.advisor._profiles == {} or all(p.base is live[s] for s, p in r.advisor._profiles.items())
    advice = r.advisor.advise(JobRequest(cores=4, walltime_s=3600))  # the real thing still books and logs
    assert advice.recommended is not None and sum(r.advisor.log.stats().advised.values()) == 1
