"""FCFS, EASY, EASY++ and SJBF on tiny workloads whose schedules are worked out by hand."""

from __future__ import annotations

import random

import pytest

from tests.twin.sim_helpers import Fixed, job, starts
from twin.sim import Ave2, Clairvoyant, Job, Partition, Policy, RequestedTime, Simulator, Site, simulate

FOUR = Site.single("tiny", 4)


def blocked_head_workload() -> list[Job]:
    """Capacity 4. A holds 3 processors until 10; B needs all 4 (the head from t=1, shadow 10,
    no extra processors); C (1 proc, 20 s) would delay B; D (1 proc, 5 s) ends by the shadow."""
    return [
        job("A", 0, 10, 10, 3),
        job("B", 1, 5, 5, 4),
        job("C", 2, 20, 20, 1),
        job("D", 3, 5, 5, 1),
    ]


def test_fcfs_never_overtakes() -> None:
    result = simulate(blocked_head_workload(), FOUR, Policy.fcfs())
    assert starts(result) == {"A": 0, "B": 10, "C": 15, "D": 15}


def test_easy_backfills_a_job_that_ends_by_the_shadow_time_and_not_one_that_would_delay_the_head() -> None:
    result = simulate(blocked_head_workload(), FOUR, Policy.easy())
    # D fits in the hole before B's reservation at 10; C would run past it on B's processors.
    assert starts(result) == {"A": 0, "B": 10, "C": 15, "D": 3}


def test_easy_backfills_on_the_extra_processors_only_while_there_are_some() -> None:
    # B (3 procs) is reserved at 10, when 4 will be free: one extra processor. C takes it for a
    # long run; D, just as long, finds no extra processor left and must wait.
    jobs = [job("A", 0, 10, 10, 2), job("B", 1, 5, 5, 3), job("C", 2, 50, 50, 1), job("D", 3, 50, 50, 1)]
    assert starts(simulate(jobs, FOUR, Policy.easy())) == {"A": 0, "B": 10, "C": 2, "D": 15}


def test_easy_plans_with_the_estimate_and_uses_an_early_end() -> None:
    # A asks for 10 s but ends at 5. D (6 s) ends at 9 <= shadow 10: backfilled at 3, so B,
    # re-planned at A's early end, starts when D ends.
    jobs = [job("A", 0, 5, 10, 3), job("B", 1, 5, 5, 4), job("D", 3, 6, 6, 1)]
    assert starts(simulate(jobs, FOUR, Policy.easy())) == {"A": 0, "D": 3, "B": 9}


def test_jobs_are_killed_at_their_requested_time() -> None:
    result = simulate([job("A", 0, 100, 50, 1), job("B", 0, 10, 20, 1)], FOUR, Policy.easy_plus_plus(), Ave2())
    row = result.jobs.filter(result.jobs["job_id"] == "A").row(0, named=True)
    assert (row["start_s"], row["end_s"], row["run_s"]) == (0, 50, 50)
    assert result.corrections.killed_at_request == 1


def correction_workload() -> tuple[list[Job], Fixed]:
    """Capacity 3. A is predicted 10 s but runs 20 (request 100); B needs all 3 processors; C and
    D need one each, predicted exactly. Worked out in the test below."""
    jobs = [
        job("A", 0, 20, 100, 2),
        job("B", 1, 10, 10, 3),
        job("C", 2, 9, 9, 1),
        job("D", 11, 5, 5, 1),
    ]
    return jobs, Fixed({"A": 10})


def test_easy_plus_plus_corrects_an_outlived_prediction_and_backfills_shortest_first() -> None:
    # t=1: B is the head, reserved at A's predicted end 10 (no extra processor).
    # t=2: C would end at 11 > 10: no backfill.
    # t=10: A outlives its prediction; "reqtime" re-plans it to end at 100 (no pass by itself).
    # t=11: D arrives; the shadow is now 100: both C and D could go, one processor is free:
    #       shortest first, D. t=16: D ends, C goes (ends 25). t=20: A ends, B needs 3, C holds 1.
    # t=25: B starts.
    jobs, predictor = correction_workload()
    result = simulate(jobs, Site.single("three", 3), Policy.easy_plus_plus("reqtime"), predictor)
    assert starts(result) == {"A": 0, "B": 25, "C": 16, "D": 11}
    corrections = dict(zip(result.jobs["job_id"], result.jobs["corrections"], strict=True))
    assert corrections == {"A": 1, "B": 0, "C": 0, "D": 0}
    assert predictor.observed == ["D", "A", "C", "B"]  # the completion hook, in completion order


def test_fcfs_backfill_order_takes_the_queue_order_instead() -> None:
    # Same workload, EASY order: at t=11 C comes first (ends 20 <= 100) and takes the processor;
    # t=20: A and C end, B starts; D waits for B (ends 30).
    jobs, predictor = correction_workload()
    result = simulate(jobs, Site.single("three", 3), Policy.easy("fcfs"), predictor)
    assert starts(result) == {"A": 0, "B": 20, "C": 11, "D": 30}


def test_tsafrir_correction_steps_up_from_the_initial_prediction() -> None:
    # Predicted 10, runs 400 (request 1000): corrected at 10 (to 10+60), at 70 (to 10+300) and
    # at 310 (to 10+900, past its end).
    result = simulate([job("A", 0, 400, 1000, 1)], FOUR, Policy.easy_plus_plus("tsafrir"), Fixed({"A": 10}))
    assert result.jobs["corrections"].to_list() == [3]
    assert result.jobs["end_s"].to_list() == [400]


def test_doubling_correction_terminates_even_from_a_one_second_prediction() -> None:
    result = simulate([job("A", 0, 10_000, 10_000, 1)], FOUR, Policy.easy_plus_plus("doubling"), Fixed({"A": 0}))
    assert result.jobs["corrections"].to_list() == [14]  # 1, 2, 4, ... 8192, then 10,000 (the request)


def test_policy_correction_is_bounded_to_the_request_and_strictly_increasing() -> None:
    policy = Policy.easy_plus_plus("doubling")
    assert policy.corrected(current=600, initial=600, req=1000, n=1) == 1000
    assert Policy.easy_plus_plus("tsafrir").corrected(current=70, initial=10, req=50, n=2) == 50
    with pytest.raises(ValueError, match="correction"):
        Policy("x", backfill=True, correction="sometimes")  # type: ignore[arg-type]


def test_sjbf_with_user_estimates_orders_candidates_by_request() -> None:
    # Capacity 2: A holds one processor until 100; B (2 procs) is the head, shadow 100.
    # C (req 50) and D (req 20) both fit before it, one processor: SJBF takes D first.
    # They arrive together at 5: SJBF runs D (5-25) then C (25-75); queue order runs C (5-55)
    # then D (55-75). Both end by 100, so B is not delayed either way.
    jobs = [job("A", 0, 100, 100, 1), job("B", 1, 10, 10, 2), job("C", 5, 50, 50, 1), job("D", 5, 20, 20, 1)]
    two = Site.single("two", 2)
    assert starts(simulate(jobs, two, Policy.easy("sjbf"))) == {"A": 0, "B": 100, "C": 25, "D": 5}
    assert starts(simulate(jobs, two, Policy.easy("fcfs"))) == {"A": 0, "B": 100, "C": 5, "D": 55}


def test_node_granular_partitions_allocate_whole_nodes() -> None:
    # 2 nodes × 4 cores: a 1-core job holds a whole node, so three 1-core jobs need two rounds.
    site = Site("nodes", (Partition.of_nodes("batch", 2, 4),))
    jobs = [job("A", 0, 10, 10, 1), job("B", 0, 10, 10, 1), job("C", 0, 10, 10, 1), job("D", 0, 10, 10, 5)]
    result = simulate(jobs, site, Policy.fcfs())
    assert starts(result) == {"A": 0, "B": 0, "C": 10, "D": 20}
    assert result.jobs["units"].to_list() == [1, 1, 1, 2]
    assert result.jobs["cores"].to_list() == [4, 4, 4, 8]


def test_partitions_are_independent_queues() -> None:
    site = Site("two-parts", (Partition("small", 1), Partition("big", 2)))
    jobs = [job("A", 0, 10, 10, 1, partition="small"), job("B", 0, 10, 10, 1, partition="small"),
            job("C", 0, 10, 10, 2, partition="big")]  # fmt: skip
    assert starts(simulate(jobs, site, Policy.fcfs())) == {"A": 0, "B": 10, "C": 0}


def random_workload(seed: int, n: int = 300) -> list[Job]:
    rng = random.Random(seed)
    jobs, t = [], 0
    for i in range(n):
        t += rng.choice([0, 0, 1, 5, 30, 120])
        req = rng.choice([60, 600, 3600])
        jobs.append(job(str(i), t, rng.randint(0, req + 100), req, rng.randint(1, 16), f"u{rng.randint(0, 9)}"))
    return jobs


@pytest.mark.parametrize(
    ("policy", "predictor"),
    [
        (Policy.fcfs(), RequestedTime()),
        (Policy.easy(), RequestedTime()),
        (Policy.easy_plus_plus("tsafrir"), Ave2()),
        (Policy.easy_plus_plus(), Clairvoyant()),
    ],
    ids=["fcfs", "easy", "easy++", "clairvoyant"],
)
@pytest.mark.parametrize("tie_break", ["batched", "predictsim"])
def test_same_input_same_output(policy: Policy, predictor: object, tie_break: str) -> None:
    jobs = random_workload(7)
    site = Site.single("r", 16)
    first = simulate(jobs, site, policy, predictor, tie_break=tie_break)  # type: ignore[arg-type]
    shuffled = jobs[:]
    random.Random(1).shuffle(shuffled)  # input order does not matter: queue order is (submit, id)
    again = simulate(shuffled, site, policy, type(predictor)(), tie_break=tie_break)  # type: ignore[arg-type]
    assert first.jobs.equals(again.jobs)


def test_predictsim_tie_break_considers_a_new_job_before_an_early_completion_of_the_same_instant() -> None:
    # Capacity 3. A (2 procs, asks 20 s) ends early at 10; Q (3 procs) is the head, reserved at 20.
    # At t=10 B (1 proc, 5 s) arrives. Batched: A's end is seen first, Q starts at 10. pyss:
    # B's submission is handled first, with A still holding its processors: B backfills (ends 15
    # <= 20), then A's end leaves 2 free for Q, which waits for B.
    jobs = [job("A", 0, 10, 20, 2), job("Q", 1, 5, 5, 3), job("B", 10, 5, 5, 1)]
    three = Site.single("three", 3)
    assert starts(simulate(jobs, three, Policy.easy()))["Q"] == 10
    assert starts(simulate(jobs, three, Policy.easy(), tie_break="predictsim")) == {"A": 0, "Q": 15, "B": 10}
    # A job ending exactly as planned frees its processors at the start of the instant in pyss.
    on_time = [job("A", 0, 20, 20, 2), job("Q", 1, 5, 5, 3), job("B", 20, 5, 5, 1)]
    assert starts(simulate(on_time, three, Policy.easy(), tie_break="predictsim"))["Q"] == 20


def test_refreshed_predictions_follow_the_users_newest_completions() -> None:
    # Capacity 3: a1, a2 (user u) and b run; big (3 procs) is the head, reserved at 400 (b's end).
    # W (user u, asks 1,000 s, runs 20) cannot backfill on its request. At 30 u's second job ends:
    # refreshed, W is planned with AVE2 = (10 + 30) / 2 = 20 s and backfills at once; predicted
    # once at submission (the default, and the SC'15 artifact), it waits for big to end at 900.
    jobs = [job("a1", 0, 10, 100, 1, "u"), job("a2", 0, 30, 100, 1, "u"), job("b", 0, 400, 400, 1, "v"),
            job("big", 0, 500, 500, 3, "v"), job("W", 1, 20, 1000, 1, "u")]  # fmt: skip
    three = Site.single("three", 3)
    for refresh, expected in ((True, 30), (False, 900)):
        sim = Simulator(three, Policy.easy_plus_plus(), Ave2(), refresh_predictions=refresh)
        for j in jobs:
            sim.submit(j)
        sim.run()
        result = sim.result()
        assert starts(result)["W"] == expected
        assert result.jobs["predicted_s"].to_list()[-1] == 1000  # the initial prediction is reported
