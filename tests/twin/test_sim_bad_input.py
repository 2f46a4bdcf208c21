"""Bad input: a clear error or a documented, counted correction; never a hang or a silent answer."""

from __future__ import annotations

import math

import polars as pl
import pytest

from tests.twin.sim_helpers import Fixed, job, starts
from twin.sim import (
    Job,
    Partition,
    Policy,
    SimInputError,
    SimTimeError,
    Simulator,
    Site,
    UnknownPartitionError,
    jobs_from_frame,
    jobs_from_history,
    simulate,
)

FOUR = Site.single("tiny", 4)


def test_a_job_larger_than_its_partition_is_an_error_naming_it() -> None:
    with pytest.raises(SimInputError, match=r"job big: needs 8 processors, partition 'batch' has 4"):
        simulate([job("ok", 0, 10, 10, 1), job("big", 0, 10, 10, 8)], FOUR, Policy.easy())


def test_or_a_counted_drop_on_request() -> None:
    result = simulate([job("ok", 0, 10, 10, 1), job("big", 0, 10, 10, 8)], FOUR, Policy.easy(), oversize="drop")
    assert result.jobs["job_id"].to_list() == ["ok"]
    assert result.corrections.dropped_oversize == 1 and result.corrections.dropped_ids == ["big"]


def test_node_granular_size_counts_whole_nodes() -> None:
    site = Site("n", (Partition.of_nodes("batch", 2, 4),))
    with pytest.raises(SimInputError, match="needs 3 nodes, partition 'batch' has 2"):
        simulate([job("wide", 0, 10, 10, 9)], site, Policy.fcfs())


def test_zero_and_missing_run_times_are_corrected_and_counted() -> None:
    jobs = [
        job("zero", 0, 0, 100, 1),  # holds its processor for 1 s
        job("unknown", 0, None, 50, 1),  # runs to its request
        job("no-request", 0, 30, None, 1),  # its run time stands in for the request
        job("over", 0, 80, 60, 1),  # killed at its request
    ]
    result = simulate(jobs, FOUR, Policy.easy())
    runs = dict(zip(result.jobs["job_id"], result.jobs["run_s"], strict=True))
    assert runs == {"zero": 1, "unknown": 50, "no-request": 30, "over": 60}
    assert result.corrections.as_dict() == {
        "killed_at_request": 1,
        "runtime_from_request": 1,
        "runtime_raised": 1,
        "request_from_runtime": 1,
        "dropped_oversize": 0,
    }


def test_a_job_with_neither_run_time_nor_request_is_refused() -> None:
    with pytest.raises(SimInputError, match="job lost: has neither a run time nor a requested time"):
        simulate([job("lost", 0, None, None, 1)], FOUR, Policy.easy())
    with pytest.raises(SimInputError, match="at least one processor"):
        simulate([job("none", 0, 10, 10, 0)], FOUR, Policy.easy())


def test_an_unknown_partition_is_named_with_the_known_ones() -> None:
    site = Site("s", (Partition("cpu", 4), Partition("gpu", 2)))
    with pytest.raises(UnknownPartitionError, match=r"no partition 'fat' \(known: cpu, gpu\)"):
        simulate([job("a", 0, 10, 10, 1, partition="fat")], site, Policy.easy())


def test_time_going_backwards_is_an_error() -> None:
    sim = Simulator(FOUR, Policy.easy())
    sim.submit(job("a", 100, 10, 10, 1))
    with pytest.raises(SimTimeError, match="before the previous submission"):
        sim.submit(job("b", 50, 10, 10, 1))
    sim.run(until=200)
    with pytest.raises(SimTimeError, match="before the simulator's clock"):
        sim.submit(job("c", 150, 10, 10, 1))
    with pytest.raises(SimTimeError, match="already at 200"):
        sim.run(until=199)
    sim.submit(job("d", 200, 10, 10, 1))  # the clock itself is fine
    sim.run()
    assert starts(sim.result()) == {"a": 100, "d": 200}


def test_bad_predictions_cannot_hang_the_engine() -> None:
    jobs = [job("a", 0, 1000, 1000, 4), job("b", 1, 1000, 1000, 4), job("c", 2, 10, 10, 1)]
    wild = Fixed({"a": -5, "b": 1e12, "c": 0.2})  # below 1 s, far past the request, a fraction
    result = simulate(jobs, FOUR, Policy.easy_plus_plus("doubling"), wild)
    assert result.jobs["predicted_s"].to_list() == [1, 1000, 1]
    assert result.jobs["end_s"].null_count() == 0
    with pytest.raises(SimInputError, match="NaN"):
        simulate(jobs, FOUR, Policy.easy_plus_plus(), Fixed({"a": math.nan}))


def test_sites_and_partitions_are_validated() -> None:
    with pytest.raises(SimInputError, match="at least one processor"):
        Partition("p", 0)
    with pytest.raises(SimInputError, match="nodes and cores_per_node"):
        Partition("p", 8, nodes=2)
    with pytest.raises(SimInputError, match="!= 9 processors"):
        Partition("p", 9, nodes=2, cores_per_node=4)
    with pytest.raises(SimInputError, match="at least one partition"):
        Site("empty", ())
    with pytest.raises(SimInputError, match="duplicate"):
        Site("dup", (Partition("p", 1), Partition("p", 2)))
    with pytest.raises(ValueError, match="tie_break"):
        Simulator(FOUR, Policy.easy(), tie_break="random")  # type: ignore[arg-type]


def test_job_frames_need_their_columns_and_submit_times() -> None:
    with pytest.raises(SimInputError, match="lacks columns"):
        jobs_from_frame(pl.DataFrame({"job_id": ["1"]}))
    frame = pl.DataFrame({"job_id": [1, 2], "submit_s": [0, None], "run_s": [1, 1], "req_s": [1, 1], "procs": [1, 1]})
    with pytest.raises(SimInputError, match="1 jobs have no submit time"):
        jobs_from_frame(frame)


def test_jobs_from_job_history_rows() -> None:
    history = pl.DataFrame(
        {
            "job_id": ["7"],
            "submit_s": [100],
            "start_s": [110],
            "end_s": [170],
            "req_walltime_s": [120],
            "alloc_cores": [None],
            "req_cores": [8],
            "alloc_nodes": [2],
            "req_nodes": [None],
            "user": ["alice"],
            "partition": ["cpu"],
        }
    )
    assert jobs_from_history(history) == [Job("7", 100, 60, 120, 8, 2, "alice", "cpu")]
