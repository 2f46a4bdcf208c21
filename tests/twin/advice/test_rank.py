"""The advice engine on hand-built sites: feasibility with its reasons, the outcome's parts, the
ranking by objective and risk, and the stay-home rule."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from tests.twin.advice.helpers import NOW, batch_site, cloud_site, planner, run
from twin.advice.outcome import Band
from twin.advice.profile import FreeProfile
from twin.advice.rank import AdvicePolicy, evaluate, rank
from twin.advice.request import Constraints, DataSpec, JobRequest, Weights
from twin.errors import InvalidJobError
from twin.sim import Occupancy
from twin.topology import PartitionLimits, Pricing

POLICY = AdvicePolicy()
GB = 1e9


def _eval(request: JobRequest, candidate, guess=None, links=None):  # type: ignore[no-untyped-def]
    links = links or planner("home", candidate.spec.name)
    return evaluate(request, candidate, guess or run(3600), links, home="home", wall_now_s=NOW, policy=POLICY)


@pytest.mark.parametrize(
    ("request_", "candidate", "word", "says"),
    [
        (JobRequest(cores=64, walltime_s=7200), batch_site("hpc", 32), "capacity", "needs 64 cores; hpc has 32"),
        (JobRequest(cores=4, walltime_s=7200, gpus=2), batch_site("hpc", 32), "gpus", "needs 2 GPUs; hpc has 0"),
        (
            JobRequest(cores=4, walltime_s=7200, partition="gpu"),
            batch_site("hpc", 32, partitions=(PartitionLimits("batch"),)),
            "partition",
            "no partition 'gpu'",
        ),
        (
            JobRequest(cores=4, walltime_s=3 * 86400),
            batch_site("hpc", 32, partitions=(PartitionLimits("batch", max_walltime_s=86400),)),
            "walltime",
            "the limit here is 24 h",
        ),
        (
            JobRequest(cores=4, walltime_s=7200, constraints=Constraints(allowed_sites=("elsewhere",))),
            batch_site("hpc", 32),
            "not_allowed",
            "not among the allowed sites",
        ),
    ],
)
def test_a_site_that_cannot_take_the_job_says_why(request_, candidate, word, says) -> None:  # type: ignore[no-untyped-def]
    outcome = _eval(request_, candidate)
    assert not outcome.feasible and outcome.excluded_because == word and says in outcome.reason


def test_what_the_site_cannot_confirm_is_said_not_passed_silently() -> None:
    """Memory or a partition the site's config does not describe: feasible, and the reason says it
    was not checked; where the config describes them, nothing is added."""
    request = JobRequest(cores=4, walltime_s=3600, memory_bytes=1000 * 2**40, partition="big")
    o = _eval(request, batch_site("hpc", 32))
    assert o.feasible
    assert "1024000 GiB per node not checked (node memory not configured here)" in o.reason
    assert "partition 'big' not checked (no partitions configured here)" in o.reason
    known = batch_site("hpc", 32, memory_per_node_bytes=2000 * 2**40, partitions=(PartitionLimits("big"),))
    assert "not checked" not in _eval(request, known).reason
    assert "not checked" not in _eval(JobRequest(cores=4, walltime_s=3600), batch_site("hpc", 32)).reason


def test_down_stale_and_unreachable_sites_are_excluded() -> None:
    from dataclasses import replace

    site = batch_site("hpc", 32)
    down = _eval(JobRequest(cores=1, walltime_s=60), replace(site, state="down", last_error="connection refused"))
    assert down.excluded_because == "down" and "connection refused" in down.reason
    stale = _eval(JobRequest(cores=1, walltime_s=60), replace(site, data_age_s=3600.0))
    assert stale.excluded_because == "stale" and "1 h old" in stale.reason
    lonely = evaluate(
        JobRequest(cores=1, walltime_s=60, input=DataSpec(GB, "home")),
        site,
        run(30),
        planner("other", "x"),
        home="home",
        wall_now_s=NOW,
        policy=POLICY,
    )
    assert lonely.excluded_because == "no_route"
    killed = _eval(JobRequest(cores=1, walltime_s=600), site, run(1200))
    assert killed.excluded_because == "walltime" and "would be killed" in killed.reason


def test_the_outcome_adds_stage_in_wait_run_and_prices_energy_like_green_algorithms() -> None:
    # 32 CPUs, 24 busy until t=1000: an 16-core job waits for them; 10 GB at 10 Gb/s = 8 s + 10 ms.
    site = batch_site("hpc", 32, [(0, 1000, 24)], pending=3, pricing=Pricing(0.02))
    request = JobRequest(cores=16, walltime_s=7200, input=DataSpec(10 * GB, "home"), memory_bytes=64 * 2**30)
    o = _eval(request, site, run(3600, 1800, 5400))
    assert o.feasible and o.jobs_ahead == 3
    assert o.stage_in_s == Band(8.01, 8.01, 16.01)
    assert o.wait_s is not None and o.wait_s.p50 == pytest.approx(1000 - 9)  # ready at 9 s (rounded up), starts at 1000
    assert o.turnaround_s is not None and o.turnaround_s.p50 == pytest.approx(8.01 + 991 + 3600)
    assert o.cost is not None and o.cost.p50 == pytest.approx(16 * 0.02)  # 16 core-hours at 0.02
    watts = (16 * 12.0 + 64 * 0.3725) * 1.56  # cores × TDP per core + memory GB × 0.3725 W, × PUE
    assert o.energy_kwh is not None and o.energy_kwh.p50 == pytest.approx(watts / 1000)
    assert o.co2_g is not None and o.co2_g.p50 == pytest.approx(watts / 1000 * 475)
    assert (
        o.start_at_s == pytest.approx(NOW + 8.01 + 991) and "3 jobs ahead" in o.reason and "10 GB in over" in o.reason
    )


def test_ranking_follows_the_objective_and_the_risk_level() -> None:
    links = planner("home", "fast", "cloud")
    fast = batch_site("fast", 64, [(0, 600, 64)], pricing=Pricing(0.5))
    cloud = cloud_site("cloud", price=0.01)
    request = JobRequest(cores=8, walltime_s=7200)
    outcomes = [
        evaluate(request, fast, run(1000, 900, 1100), links, home="home", wall_now_s=NOW, policy=POLICY),
        evaluate(request, cloud, run(1000, 900, 1100), links, home="home", wall_now_s=NOW, policy=POLICY),
    ]
    by_time = rank(request, outcomes, advice_id="a", home="home", wall_now_s=NOW, policy=POLICY)
    assert [o.site for o in by_time.ranked] == ["cloud", "fast"]  # 60 s provisioning beats a 600 s wait
    cheap = JobRequest(cores=8, walltime_s=7200, objective="cost")
    assert rank(cheap, outcomes, advice_id="b", home="home", wall_now_s=NOW, policy=POLICY).recommended == "cloud"
    dear = [
        evaluate(cheap, cloud_site("cloud", price=1.0), run(1000), links, home="home", wall_now_s=NOW, policy=POLICY),
        outcomes[0],
    ]
    assert rank(cheap, dear, advice_id="c", home="home", wall_now_s=NOW, policy=POLICY).recommended == "fast"
    limited = JobRequest(cores=8, walltime_s=7200, constraints=Constraints(max_cost=1.5))
    capped = rank(limited, dear, advice_id="d", home="home", wall_now_s=NOW, policy=POLICY)
    assert (
        capped.recommended == "fast"
        and next(o for o in capped.ranked if o.site == "cloud").excluded_because == "max_cost"
    )
    soon = JobRequest(cores=8, walltime_s=7200, constraints=Constraints(deadline_s=NOW + 1200))
    late = rank(soon, outcomes, advice_id="e", home="home", wall_now_s=NOW, policy=POLICY)
    assert (
        late.recommended == "cloud" and next(o for o in late.ranked if o.site == "fast").excluded_because == "deadline"
    )


def test_stay_home_when_the_gain_is_inside_the_prediction_band() -> None:
    links = planner("home", "away")
    request = JobRequest(cores=8, walltime_s=20_000)
    home = batch_site("home", 64, [(0, 300, 64)])  # waits 300 s
    away = batch_site("away", 64)  # starts now
    uncertain = run(3600, 1800, 9000)  # the away run could take 2.5 h
    outcomes = [
        evaluate(request, home, run(3600), links, home="home", wall_now_s=NOW, policy=POLICY),
        evaluate(request, away, uncertain, links, home="home", wall_now_s=NOW, policy=POLICY),
    ]
    advice = rank(request, outcomes, advice_id="a", home="home", wall_now_s=NOW, policy=POLICY)
    assert advice.ranked[0].site == "away" and advice.recommended == "home" and advice.stayed_home
    assert "stay at home" in advice.summary and "band" in advice.summary
    sure = [
        outcomes[0],
        evaluate(request, away, run(3600, 3500, 3700), links, home="home", wall_now_s=NOW, policy=POLICY),
    ]
    moved = rank(request, sure, advice_id="b", home="home", wall_now_s=NOW, policy=POLICY)
    assert moved.recommended == "away" and not moved.stayed_home and "move to away" in moved.summary
    off = rank(request, outcomes, advice_id="c", home="home", wall_now_s=NOW, policy=AdvicePolicy(stay_home=False))
    assert off.recommended == "away"
    # The same job: a run as uncertain at home as away is no reason to stay (the queue's 300 s gain
    # holds at every quantile); only the best site's own band would have said "stay".
    shared = run(3600, 1800, 9000)
    both = [
        evaluate(request, home, shared, links, home="home", wall_now_s=NOW, policy=POLICY),
        evaluate(request, away, shared, links, home="home", wall_now_s=NOW, policy=POLICY),
    ]
    assert rank(request, both, advice_id="d", home="home", wall_now_s=NOW, policy=POLICY).recommended == "away"


def test_no_feasible_site_is_an_answer_with_every_reason() -> None:
    request = JobRequest(cores=1000, walltime_s=60)
    outcomes = [_eval(request, batch_site("hpc", 32))]
    advice = rank(request, outcomes, advice_id="a", home="home", wall_now_s=NOW, policy=POLICY)
    assert (
        advice.recommended is None and "no site can run this job" in advice.summary and "hpc has 32" in advice.summary
    )


def test_a_full_cloud_quota_is_a_queue_until_its_instances_end() -> None:
    """A cloud whose quota the instances it runs hold (until their predicted ends) makes a new job
    wait for room, then for its instance; with room it waits only for the instance; a job wider
    than the whole quota is excluded."""
    links = planner("home", "cloud")
    t0 = int(NOW)
    occupied = Occupancy(
        np.zeros(2, np.int64),
        np.array([t0 - 600, t0 - 60], np.int64),
        np.array([t0 + 3600, t0 + 7200], np.int64),
        np.array([32, 32], np.int64),
    )
    full = replace(cloud_site("cloud", quota=64), quota=FreeProfile.of(occupied, 64, t0))
    o = _eval(JobRequest(cores=16, walltime_s=7200), full, run(1800), links)
    assert o.feasible and o.wait_s is not None
    assert o.wait_s.p50 == pytest.approx(3600 + 60, abs=2)  # the first instance ends in an hour
    assert o.wait_s.p10 == pytest.approx(3600 + 30, abs=2) and o.wait_s.p90 == pytest.approx(3600 + 120, abs=2)
    assert "quota full: 16 cores free in ≈ 1 h" in o.reason and "then an instance in ≈ 1 min" in o.reason
    both = _eval(JobRequest(cores=64, walltime_s=7200), full, run(1800), links)
    assert both.wait_s is not None and both.wait_s.p50 == pytest.approx(7200 + 60, abs=2)  # both must end
    one = Occupancy(*(a[1:] for a in (occupied.partition, occupied.start_s, occupied.end_s, occupied.units)))
    room = replace(cloud_site("cloud", quota=64), quota=FreeProfile.of(one, 64, t0))  # 32 of 64 cores free
    free = _eval(JobRequest(cores=16, walltime_s=7200), room, run(1800), links)
    assert free.wait_s is not None and free.wait_s.p50 == 60 and "no queue: an instance" in free.reason
    wide = _eval(JobRequest(cores=128, walltime_s=7200), full, run(1800), links)
    assert not wide.feasible and wide.excluded_because in ("capacity", "quota")


def test_a_start_is_never_before_the_answer_however_old_the_queue_snapshot() -> None:
    """The forecast is the queue as its snapshot saw it: an answer given later places the job from
    the site's clock then. A replayed site (60 site s a wall s), its queue read 5 wall s (300 site s)
    ago, 16 cores busy until site time 600: a job needing them waits 300 s from now, not 600; one that
    fits at once starts now + its stage-in, not at the snapshot (the start in the past it was)."""
    links = planner("home", "hpc")
    later = NOW + 5
    site = batch_site("hpc", 32, [(0, 600, 16)], clock_speed=60.0)
    data = DataSpec(10 * GB, "home")  # 8.01 s at 10 Gb/s
    kw = {"home": "home", "wall_now_s": later, "policy": POLICY}
    wide = evaluate(JobRequest(cores=32, walltime_s=7200, input=data), site, run(3600), links, **kw)  # type: ignore[arg-type]
    assert wide.wait_s is not None and wide.wait_s.p50 == 600 - 300 - 9  # ready at site 309, starts at 600
    assert wide.start_at_s == pytest.approx(NOW + 600 / 60, abs=0.1)  # the instant does not move
    narrow = evaluate(JobRequest(cores=8, walltime_s=7200, input=data), site, run(3600), links, **kw)  # type: ignore[arg-type]
    assert narrow.wait_s is not None and narrow.wait_s == Band(0, 0, 0)
    assert narrow.start_at_s is not None and narrow.start_at_s >= later + 8.01 / 60
    assert narrow.start_at_s == pytest.approx(later + 9 / 60, abs=0.02)
    banded = replace(
        site,
        queue=replace(
            site.queue,  # type: ignore[arg-type]
            profiles={
                "p10": FreeProfile.of(Occupancy(*(np.array([v]) for v in (0, 0, 300, 16))), 32, 0),
                "p50": site.queue.profiles["p50"],  # type: ignore[union-attr]
                "p90": FreeProfile.of(Occupancy(*(np.array([v]) for v in (0, 0, 1200, 16))), 32, 0),
            },
        ),
    )
    b = evaluate(JobRequest(cores=32, walltime_s=7200, input=data), banded, run(3600), links, **kw)  # type: ignore[arg-type]
    assert b.wait_s is not None and b.wait_s.p10 <= b.wait_s.p50 <= b.wait_s.p90  # the band stays ordered
    assert b.wait_s.p10 == 0 and b.start_at_s is not None and b.start_at_s >= later


def test_the_reason_counts_jobs_ahead_and_the_advice_booked_there() -> None:
    one = _eval(JobRequest(cores=8, walltime_s=7200), batch_site("hpc", 32, pending=1))
    assert one.reason.startswith("1 job ahead, wait ≈ 0 s")
    site = batch_site("hpc", 32, [(0, 5000, 32)])
    booked = replace(site, queue=replace(site.queue, booked_jobs=12, booked_cores=96))  # type: ignore[arg-type]
    o = _eval(JobRequest(cores=8, walltime_s=7200), booked)
    assert o.reason.startswith("0 jobs ahead + 12 advised jobs booked (96 cores), wait ≈ 1 h 23 min")
    single = replace(site, queue=replace(site.queue, booked_jobs=1, booked_cores=8))  # type: ignore[arg-type]
    assert "+ 1 advised job booked (8 cores)" in _eval(JobRequest(cores=8, walltime_s=7200), single).reason


def test_weighted_ranking_needs_a_weight_and_says_its_margin_in_a_unit() -> None:
    links = planner("home", "fast", "cloud")
    fast = batch_site("fast", 64, [(0, 600, 64)], pricing=Pricing(0.5))
    cloud = cloud_site("cloud", price=0.01)
    nothing = JobRequest(cores=8, walltime_s=7200, objective="weighted", weights=Weights(0, 0, 0, 0))
    outcomes = [_eval(nothing, fast, links=links), _eval(nothing, cloud, links=links)]
    with pytest.raises(InvalidJobError, match="at least one weight above 0"):
        rank(nothing, outcomes, advice_id="a", home="home", wall_now_s=NOW, policy=POLICY)
    both = replace(nothing, weights=Weights(1, 1, 0, 0))
    advice = rank(both, outcomes, advice_id="b", home="cloud", wall_now_s=NOW, policy=POLICY)
    assert advice.recommended == "cloud"
    assert re.fullmatch(r"run at cloud, [0-9.]+ weighted-score points better than fast", advice.summary)
    away = rank(both, outcomes, advice_id="c", home="fast", wall_now_s=NOW, policy=POLICY)
    # the gain is a weighted score, the band's edge a turnaround (the one measure with a band here)
    assert re.search(r"≈ [0-9.]+ weighted-score points better than staying at fast", away.summary), away.summary
    assert re.search(r"still ≈ \d+ min better at the edge of the band", away.summary), away.summary
