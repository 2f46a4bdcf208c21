"""The Advisor over a real twin (its state fed as a collector would): sites ranked from their
cached forecasts, bookings against herding, the advice log."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from telemetry.jobs import conform_jobs
from telemetry.pipeline import CollectorStats
from telemetry.schema import Batch, Sample
from twin.advice.herding import HerdingLedger
from twin.advice.live import Advisor
from twin.advice.log import AdviceLog
from twin.advice.rank import AdvicePolicy
from twin.advice.request import DataSpec, JobRequest
from twin.errors import AdviceConflictError, InvalidJobError
from twin.live import Twin, build_twin
from twin.topology import CollectorSpec, LinkSpec, Placement, Provisioning, SiteSpec, Topology

WALL = 1_800_000_000.0
S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> float:
        return self.now


def _twin(
    clock: Clock, speeds: dict[str, float], busy: dict[str, int], *, clouds: tuple[SiteSpec, ...] = ()
) -> tuple[Twin, dict[str, CollectorStats]]:
    """Batch sites of 64 CPUs (`busy` of them taken by a job running to 2 h), plus `clouds`, which
    have no collector; every site linked to home."""
    sites = (
        tuple(
            SiteSpec(
                name, "hpc", collectors=(CollectorSpec(f"{name}/slurm", "slurm", 30.0),), placement=Placement(speed=s)
            )
            for name, s in speeds.items()
        )
        + clouds
    )
    links = tuple(LinkSpec("home", s.name, bandwidth_bps=10e9, latency_s=0.01) for s in sites if s.name != "home")
    stats = {f"{name}/slurm": CollectorStats(f"{name}/slurm", collections=1, last_success_s=WALL) for name in speeds}
    twin = build_twin(Topology(sites, links), None, stats, clock=clock)
    samples = []
    rows = []
    for name in speeds:
        used = busy.get(name, 0)
        samples += [
            Sample("batch_cpus", used, {"site": name, "state": "allocated"}, int(WALL * S)),
            Sample("batch_cpus", 64 - used, {"site": name, "state": "idle"}, int(WALL * S)),
        ]
        if used:
            rows.append({"site": name, "job_id": "r1", "user": "x", "state": "RUNNING", "submit_s": int(WALL) - 100,
                         "start_s": int(WALL) - 50, "req_walltime_s": 7200, "alloc_cores": used,
                         "observed_s": int(WALL)})  # fmt: skip
        else:
            rows.append({"site": name, "job_id": "old", "user": "x", "state": "COMPLETED", "submit_s": int(WALL) - 900,
                         "start_s": int(WALL) - 800, "end_s": int(WALL) - 700, "req_walltime_s": 600,
                         "alloc_cores": 1, "observed_s": int(WALL)})  # fmt: skip
    twin.state.write(Batch.from_samples(samples))
    twin.state.write_jobs(conform_jobs(pl.DataFrame(rows)).collect())
    return twin, stats


def _advisor(twin: Twin, clock: Clock, ttl_s: float = 600.0) -> Advisor:
    policy = AdvicePolicy(herding_ttl_s=ttl_s, default_home="home")
    return Advisor(twin, AdviceLog(None, clock), HerdingLedger(ttl_s, clock), policy, clock=clock)


def test_fifty_identical_requests_do_not_all_pile_onto_one_site() -> None:
    clock = Clock()
    twin, _ = _twin(clock, {"home": 1.0, "a": 1.2, "b": 1.0}, {"home": 64})
    job = JobRequest(cores=32, walltime_s=3600, input=DataSpec(1e9, "home"))

    blind = _advisor(twin, clock, ttl_s=0.0)  # bookings expire at once: no herding protection
    piled = Counter(a.recommended for a in blind.advise_batch([job] * 50))
    assert piled == {"a": 50}  # each answer alone is right, together they are wrong

    advisor = _advisor(twin, clock)
    answers = advisor.advise_batch([job] * 50)
    spread = Counter(a.recommended for a in answers)
    assert set(spread) >= {"a", "b"} and max(spread.values()) < 50
    for advice in answers:  # every answer is the best site given the ones before it
        assert advice.recommended == advice.ranked[0].site
    waits = [next(o for o in a.ranked if o.site == "a").wait_s.p50 for a in answers]  # type: ignore[union-attr]
    assert waits[0] == 0 and waits[-1] > waits[0]  # the bookings are load: a's queue grows
    assert len(advisor.ledger) == 50
    first_a = next(o for o in answers[0].ranked if o.site == "a")
    assert first_a.reason.startswith("0 jobs ahead, wait ≈ 0 s")  # nothing booked there yet
    last_a = next(o for o in answers[-1].ranked if o.site == "a")
    booked = spread["a"] - (answers[-1].recommended == "a")  # the answers before the last that went to a
    assert last_a.reason.startswith(f"0 jobs ahead + {booked} advised jobs booked ({32 * booked} cores), wait ≈ ")


def test_a_preview_books_nothing_and_logs_nothing() -> None:
    """A dry run (POST /v1/advice?preview=true, `ctwin sbatch --dry-run`) must not move the answers
    after it: fifty previews leave the ledger and the log empty, and each ranks like the first."""
    clock = Clock()
    twin, _ = _twin(clock, {"home": 1.0, "a": 1.2, "b": 1.0}, {"home": 64})
    job = JobRequest(cores=32, walltime_s=3600, input=DataSpec(1e9, "home"))
    advisor = _advisor(twin, clock)
    previews = [advisor.preview(job) for _ in range(50)]
    assert {p.recommended for p in previews} == {"a"} and all(p.advice_id.startswith("preview-") for p in previews)
    assert len(advisor.ledger) == 0 and advisor.log.stats().advised == {}
    assert advisor.advise(job).recommended == "a"  # the first real answer is the one it would have been


def test_a_batch_preview_ranks_like_the_batch_but_books_holds_and_logs_nothing() -> None:
    """POST /v1/advice/batch?preview=true: each job sees the earlier jobs' bookings (the spread the
    real batch gives), the ledger, the cloud holds and the log stay empty, every id is a preview's."""
    clock = Clock()
    cloud = SiteSpec("cloud", "cloud", placement=Placement(quota_cores=64, provisioning=Provisioning(30, 60, 120)))
    twin, _ = _twin(clock, {"home": 1.0, "a": 1.2, "b": 1.0}, {"home": 64}, clouds=(cloud,))
    job = JobRequest(cores=32, walltime_s=3600, input=DataSpec(1e9, "home"))
    advisor = _advisor(twin, clock)
    previews = advisor.preview_batch([job] * 20)
    ids = [p.advice_id for p in previews]
    assert all(i.startswith("preview-") for i in ids) and len(set(ids)) == 20
    assert len(advisor.ledger) == 0 and advisor.ledger.held("cloud") == [] and advisor.log.stats().advised == {}
    assert "cloud" in {p.recommended for p in previews}  # the quota is seen filling up within the batch
    real = advisor.advise_batch([job] * 20)
    assert [p.recommended for p in previews] == [r.recommended for r in real]
    for p, r in zip(previews, real, strict=True):
        assert [(o.site, o.wait_s) for o in p.ranked] == [(o.site, o.wait_s) for o in r.ranked]
        assert [o.reason for o in p.ranked] == [o.reason for o in r.ranked]


def test_a_booking_ends_when_the_job_is_seen_in_the_queue_or_reported_elsewhere() -> None:
    clock = Clock()
    twin, _ = _twin(clock, {"home": 1.0, "a": 1.0}, {"home": 64})
    advisor = _advisor(twin, clock)
    job = JobRequest(cores=64, walltime_s=3600)
    first, second = advisor.advise_batch([job, job])
    assert first.recommended == "a" and len(advisor.ledger) == 2
    advisor.report(first.advice_id, "a", "1234")
    assert len(advisor.ledger) == 2  # still booked until the collector sees job 1234 there
    advisor.ledger.observe(
        "a", conform_jobs(pl.DataFrame([{"site": "a", "job_id": "1234", "state": "PENDING"}])).collect()
    )
    assert len(advisor.ledger) == 1
    advisor.report(second.advice_id, "home", "99")  # ran elsewhere: its booking at its advised site goes
    assert len(advisor.ledger) == 0
    clock.now += 601
    assert advisor.ledger.active("a") == []


def test_the_answer_is_in_wall_clock_with_data_ages_and_is_logged() -> None:
    clock = Clock()
    twin, stats = _twin(clock, {"home": 1.0, "a": 1.0}, {"home": 64})
    advisor = _advisor(twin, clock)
    clock.now += 20
    advice = advisor.advise(JobRequest(cores=8, walltime_s=600, user="u1"))
    a = next(o for o in advice.ranked if o.site == "a")
    # its queue was read at WALL, 20 s before the answer: the job starts at the answer, not before
    assert a.start_at_s == pytest.approx(WALL + 20, abs=1) and a.start_at_s >= advice.created_s
    assert a.wait_s is not None and a.wait_s.p50 == 0
    assert a.data_age_s["queue"] == pytest.approx(20) and a.data_age_s["state"] == pytest.approx(20)
    row = advisor.log.get(advice.advice_id)
    assert row["recommended"] == "a" and row["ranked"][0]["site"] == "a" and row["request"]["user"] == "u1"
    stats["a/slurm"].last_success_s = WALL - 3600  # a's collector stopped an hour ago
    stale = advisor.advise(JobRequest(cores=8, walltime_s=600))
    assert next(o for o in stale.ranked if o.site == "a").excluded_because == "stale"


def test_the_log_sums_up_each_sites_advice_by_hook_and_how_it_turned_out(tmp_path: Path) -> None:
    """What the Dash twin shows under a site: per hook, answers recommending it, reported,
    followed, joined, the mean |turnaround error| and regret; the same numbers from memory and
    from the DuckDB store."""
    from telemetry.stores.duckdb_store import DuckDBStore

    for store in (None, DuckDBStore(tmp_path / "s.duckdb")):
        clock = Clock()
        twin, _ = _twin(clock, {"home": 1.0, "a": 1.0}, {"home": 64})
        policy = AdvicePolicy(herding_ttl_s=600.0, default_home="home")
        advisor = Advisor(twin, AdviceLog(store, clock), HerdingLedger(600.0, clock), policy, clock=clock)
        job = JobRequest(cores=8, walltime_s=3600)
        s1, s2 = advisor.advise_batch([job, job], "sbatch")
        k = advisor.advise(job, "k8s-extender")
        assert s1.recommended == s2.recommended == k.recommended == "a"
        advisor.report(s1.advice_id, "a", "7")
        advisor.report(s2.advice_id, "home", "8")  # not followed
        predicted = next(o for o in s1.ranked if o.site == "a").turnaround_s.p50  # type: ignore[union-attr]
        ended = {"site": "a", "job_id": "7", "user": "x", "state": "COMPLETED", "submit_s": int(WALL),
                 "start_s": int(WALL) + 10, "end_s": int(WALL) + 1210, "req_walltime_s": 3600, "alloc_cores": 8,
                 "observed_s": int(WALL) + 1300}  # fmt: skip
        assert advisor.log.observe("a", conform_jobs(pl.DataFrame([ended])).collect()) == 1
        summary = {r["hook"]: r for r in advisor.log.summary("a").iter_rows(named=True)}
        assert set(summary) == {"sbatch", "k8s-extender"}
        sb = summary["sbatch"]
        assert (sb["answers"], sb["reported"], sb["followed"], sb["joined"]) == (2, 2, 1, 1)
        realised = 10 + 1200 + (next(o for o in s1.ranked if o.site == "a").stage_in_s.p50 or 0)  # type: ignore[union-attr]
        realised += next(o for o in s1.ranked if o.site == "a").stage_out_s.p50 or 0  # type: ignore[union-attr]
        assert sb["abs_error_s"] == pytest.approx(abs(realised - predicted))
        assert (summary["k8s-extender"]["answers"], summary["k8s-extender"]["joined"]) == (1, 0)
        assert summary["k8s-extender"]["abs_error_s"] is None
        assert advisor.log.summary("nowhere").height == 0
        advisor.log.close()
        if store is not None:
            store.close()


def test_the_logs_recent_answers_come_newest_first_with_their_outcome(tmp_path: Path) -> None:
    """What the Dash advice page lists: the last N answers of every hook, newest first, the
    joined outcome decoded; the same from memory and from the DuckDB store."""
    from telemetry.stores.duckdb_store import DuckDBStore

    for store in (None, DuckDBStore(tmp_path / "r.duckdb")):
        clock = Clock()
        twin, _ = _twin(clock, {"home": 1.0, "a": 1.0}, {"home": 64})
        advisor = Advisor(twin, AdviceLog(store, clock), HerdingLedger(600.0, clock), _policy(), clock=clock)
        assert advisor.log.recent(5) == []
        job = JobRequest(cores=8, walltime_s=3600)
        answers = []
        for hook in ("sbatch", "cli", "api"):
            answers.append(advisor.advise(job, hook))
            clock.now += 1
        advisor.report(answers[0].advice_id, "a", "7")
        ended = {"site": "a", "job_id": "7", "user": "x", "state": "COMPLETED", "submit_s": int(WALL),
                 "start_s": int(WALL) + 10, "end_s": int(WALL) + 610, "req_walltime_s": 3600, "alloc_cores": 8,
                 "observed_s": int(WALL) + 700}  # fmt: skip
        assert advisor.log.observe("a", conform_jobs(pl.DataFrame([ended])).collect()) == 1
        rows = advisor.log.recent(2)
        assert [r["advice_id"] for r in rows] == [answers[2].advice_id, answers[1].advice_id]
        assert [r["hook"] for r in rows] == ["api", "cli"] and rows[0]["ranked"][0]["site"] == "a"
        everything = advisor.log.recent(10)
        assert [r["advice_id"] for r in everything] == [a.advice_id for a in reversed(answers)]
        oldest = everything[-1]
        assert oldest["outcome"]["realised"]["run_s"] == 600 and oldest["outcome"]["regret_s"] is not None
        assert advisor.log.recent(0) == []
        advisor.log.close()
        if store is not None:
            store.close()


def _policy() -> AdvicePolicy:
    return AdvicePolicy(herding_ttl_s=600.0, default_home="home")


def test_a_cloud_quota_stays_taken_until_the_advised_jobs_end() -> None:
    """A cloud site shows the twin no queue, so the advice sent there is all it knows of its quota:
    each booking holds its cores until the job's predicted end, well past the herding TTL, and
    once the quota is full the cloud is a queue (wait for room, then the instance)."""
    clock = Clock()
    cloud = SiteSpec("cloud", "cloud", placement=Placement(quota_cores=64, provisioning=Provisioning(30, 60, 120)))
    twin, stats = _twin(clock, {"home": 1.0}, {"home": 64}, clouds=(cloud,))  # home: full for two hours
    advisor = _advisor(twin, clock)
    job = JobRequest(cores=32, walltime_s=3 * 3600)  # the cloud knows no history: it runs its 3 h limit
    first, second = advisor.advise_batch([job, job])
    assert first.recommended == second.recommended == "cloud"
    assert len(advisor.ledger.held("cloud")) == 2
    clock.now += 601  # past the herding TTL: the two instances still run
    stats["home/slurm"].last_success_s = clock.now  # home's collector keeps reporting
    third = advisor.advise(job)
    at_cloud = next(o for o in third.ranked if o.site == "cloud")
    assert at_cloud.feasible and at_cloud.wait_s is not None and at_cloud.wait_s.p50 > 3 * 3600 - 700
    assert "quota full (held by 2 advised jobs, 64 cores): 32 cores free in" in at_cloud.reason
    assert third.recommended == "home"  # home's running job ends sooner than the cloud's instances
    advisor.report(second.advice_id, "home", "77")  # the second ran at home after all: its hold goes
    assert [b.advice_id for b in advisor.ledger.held("cloud")] == [first.advice_id]
    clock.now = WALL + 4 * 3600 + 200  # every instance has ended
    stats["home/slurm"].last_success_s = clock.now
    fourth = next(o for o in advisor.advise(job).ranked if o.site == "cloud")
    assert fourth.wait_s is not None and fourth.wait_s.p50 == 60 and "no queue" in fourth.reason


def test_a_restarted_advisor_holds_the_cloud_quota_its_log_sent_there(tmp_path: Path) -> None:
    """The ledger lives in memory, the cloud instances do not stop with the service: a new advisor
    on the same store holds again the quota of every answer that sent a job to the cloud and
    whose predicted end is still ahead, and not of one the caller ran elsewhere."""
    from telemetry.stores.duckdb_store import DuckDBStore

    store = DuckDBStore(tmp_path / "a.duckdb")
    clock = Clock()
    cloud = SiteSpec("cloud", "cloud", placement=Placement(quota_cores=64, provisioning=Provisioning(30, 60, 120)))
    twin, stats = _twin(clock, {"home": 1.0}, {"home": 64}, clouds=(cloud,))
    policy = _policy()
    before = Advisor(twin, AdviceLog(store, clock), HerdingLedger(600.0, clock), policy, clock=clock)
    assert before.restored_holds == 0
    job = JobRequest(cores=32, walltime_s=3 * 3600)
    first, second, third = before.advise_batch([job, job, job])
    assert first.recommended == second.recommended == "cloud" and third.recommended == "home"
    before.report(second.advice_id, "home", "77")  # it ran at home after all
    before.log.close()

    clock.now += 1800
    stats["home/slurm"].last_success_s = clock.now
    after = Advisor(twin, AdviceLog(store, clock), HerdingLedger(600.0, clock), policy, clock=clock)
    assert after.restored_holds == 1
    assert [(b.advice_id, b.cores) for b in after.ledger.held("cloud")] == [(first.advice_id, 32)]
    at_cloud = next(o for o in after.advise(JobRequest(cores=64, walltime_s=3 * 3600)).ranked if o.site == "cloud")
    assert at_cloud.wait_s is not None and at_cloud.wait_s.p50 > 2 * 3600  # the first instance still runs

    clock.now = WALL + 5 * 3600  # past every predicted end: nothing to hold
    stats["home/slurm"].last_success_s = clock.now
    assert Advisor(twin, AdviceLog(store, clock), HerdingLedger(600.0, clock), policy, clock=clock).restored_holds == 0


def test_a_report_of_a_job_submitted_before_the_advice_is_refused(tmp_path: Path) -> None:
    """A job the twin knows (live queue, or the store's history) that was queued before the advice
    was given cannot be the one that followed it: refused, nothing recorded. A minute of clock
    disagreement is allowed; a job not seen yet is taken as reported."""
    from telemetry.stores.duckdb_store import DuckDBStore

    store = DuckDBStore(tmp_path / "r.duckdb")
    clock = Clock()
    twin, _ = _twin(clock, {"home": 1.0, "a": 1.0}, {"home": 64})  # home runs r1, submitted at WALL - 100
    done = {"site": "a", "job_id": "d1", "user": "x", "state": "COMPLETED", "submit_s": int(WALL) - 3600,
            "start_s": int(WALL) - 3590, "end_s": int(WALL) - 10, "req_walltime_s": 7200, "alloc_cores": 1,
            "observed_s": int(WALL)}  # fmt: skip
    store.append_jobs(conform_jobs(pl.DataFrame([done])).collect())
    advisor = Advisor(twin, AdviceLog(store, clock), HerdingLedger(600.0, clock), _policy(), clock=clock)
    first = advisor.advise(JobRequest(cores=8, walltime_s=600))
    with pytest.raises(InvalidJobError, match=r"job r1 at home was submitted 2 min before advice"):
        advisor.report(first.advice_id, "home", "r1")  # already running when the advice was given
    with pytest.raises(InvalidJobError, match=r"job d1 at a was submitted 1 h before advice"):
        advisor.report(first.advice_id, "a", "d1")  # in the job history: ended before the advice
    assert advisor.log.get(first.advice_id)["job_id"] is None  # nothing recorded
    assert advisor.report(first.advice_id, "a", "new")["job_id"] == "new"  # not seen yet: taken as said

    soon = {"site": "home", "job_id": "s1", "user": "x", "state": "PENDING", "submit_s": int(WALL) + 90,
            "req_walltime_s": 600, "observed_s": int(WALL) + 100}  # fmt: skip
    clock.now = WALL + 120
    twin.state.write_jobs(conform_jobs(pl.DataFrame([soon])).collect())
    late = advisor.advise(JobRequest(cores=8, walltime_s=600))  # given 30 s after s1 was submitted
    assert advisor.report(late.advice_id, "home", "s1")["job_id"] == "s1"  # within the clock tolerance
    advisor.log.close()
    store.close()


def test_one_job_per_advice_a_repeated_report_is_answered_again_a_different_one_refused() -> None:
    clock = Clock()
    twin, _ = _twin(clock, {"home": 1.0, "a": 1.0}, {"home": 64})
    advisor = _advisor(twin, clock)
    advice = advisor.advise(JobRequest(cores=8, walltime_s=600))
    first = advisor.report(advice.advice_id, "a", "7", 2.5)
    clock.now += 5
    assert advisor.report(advice.advice_id, "a", "7", 2.5) == first  # a retry: the same answer
    assert advisor.report(advice.advice_id, "a", "7") == first  # the stage-in left out: still the same job
    for site, job, stage_in in (("a", "8", None), ("home", "7", None), ("a", "7", 9.0)):
        with pytest.raises(AdviceConflictError, match=r"already reported as job 7 at a \(stage-in 2.5 s\)"):
            advisor.report(advice.advice_id, site, job, stage_in)
    ended = {"site": "a", "job_id": "7", "user": "x", "state": "COMPLETED", "submit_s": int(WALL) + 1,
             "start_s": int(WALL) + 10, "end_s": int(WALL) + 610, "req_walltime_s": 600, "alloc_cores": 8,
             "observed_s": int(WALL) + 700}  # fmt: skip
    assert advisor.log.observe("a", conform_jobs(pl.DataFrame([ended])).collect()) == 1
    joined = advisor.report(advice.advice_id, "a", "7", 2.5)  # after the join: the joined row again
    assert joined["job_id"] == "7" and joined["outcome"]["realised"]["run_s"] == 600
    with pytest.raises(AdviceConflictError, match="already reported as job 7 at a"):
        advisor.report(advice.advice_id, "a", "8")
    assert advisor.log.get(advice.advice_id)["outcome"]["realised"]["run_s"] == 600  # kept
