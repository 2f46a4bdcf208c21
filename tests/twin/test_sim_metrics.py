"""The metric definitions (predictsim's swf2vis_metrics.R) on numbers checked by hand."""

from __future__ import annotations

import polars as pl
import pytest

from tests.twin.sim_helpers import job
from twin.sim import Policy, Site, compute, simulate


def frame(rows: list[tuple[int, int, int, int]]) -> pl.DataFrame:
    """(submit, start, run, cores) rows."""
    return pl.DataFrame(
        {
            "submit_s": [r[0] for r in rows],
            "start_s": [r[1] for r in rows],
            "end_s": [r[1] + r[2] for r in rows],
            "run_s": [r[2] for r in rows],
            "cores": [r[3] for r in rows],
        }
    )


def test_bounded_slowdown_uses_a_ten_second_floor_and_never_drops_below_one() -> None:
    # wait 0, run 5:   max(1, 5 / 10)    = 1
    # wait 90, run 10: max(1, 100 / 10)  = 10
    # wait 50, run 100: max(1, 150 / 100) = 1.5
    m = compute(frame([(0, 0, 5, 1), (0, 90, 10, 1), (10, 60, 100, 2)]), processors=2)
    assert m.avebsld == pytest.approx((1 + 10 + 1.5) / 3)
    assert m.max_bsld == pytest.approx(10)
    assert m.mean_wait_s == pytest.approx((0 + 90 + 50) / 3)
    assert m.mean_flow_s == pytest.approx((5 + 100 + 150) / 3)  # flow time = wait + run
    # work 5 + 10 + 200 core-seconds over 2 processors × (160 - 0) s
    assert m.utilisation == pytest.approx(215 / 320)
    assert (m.jobs, m.makespan_s) == (3, 160)


def test_tau_is_a_parameter() -> None:
    m = compute(frame([(0, 90, 10, 1)]), processors=1, tau_s=50)
    assert m.avebsld == pytest.approx(100 / 50)


def test_metrics_of_a_result_count_every_completed_job_once() -> None:
    # One processor, three 10 s jobs at once: waits 0, 10, 20; bsld 1, 2, 3.
    result = simulate([job(str(i), 0, 10, 10, 1) for i in range(3)], Site.single("one", 1), Policy.fcfs())
    m = compute(result)
    assert (m.jobs, m.avebsld, m.mean_wait_s, m.utilisation) == (3, 2.0, 10.0, 1.0)


def test_a_bare_frame_needs_the_site_size_and_an_empty_one_is_all_zero() -> None:
    with pytest.raises(ValueError, match="processors"):
        compute(frame([(0, 0, 5, 1)]))
    empty = frame([(0, 0, 5, 1)]).with_columns(pl.lit(None, pl.Int64).alias("end_s"))
    assert compute(empty, processors=1).jobs == 0
