"""Live forecasts from job-history rows: state building, corrections, empty queues, scoring."""

from __future__ import annotations

import polars as pl

from telemetry.jobs import conform_jobs
from twin.forecasting import ForecastTracker, build_state, forecast_queue
from twin.sim import Job


def _queue(rows: list[dict]) -> pl.DataFrame:
    return conform_jobs(pl.DataFrame(rows)).collect()


NOW = 1_000


def test_an_empty_queue_forecasts_nothing_and_a_hypothetical_job_starts_now() -> None:
    empty = _queue([{"site": "s", "job_id": "0", "state": "COMPLETED", "observed_s": NOW}]).filter(
        pl.col("state") == "PENDING"
    )
    assert forecast_queue(empty, 8, "s").jobs.is_empty()
    what = forecast_queue(empty, 8, "s", extra=[Job("w", 0, None, 60, 4)])
    assert what.jobs["predicted_start_s"].to_list() == [what.now_s]


def test_queue_is_simulated_forward_with_requested_times() -> None:
    queue = _queue(
        [
            {
                "site": "s",
                "job_id": "r",
                "state": "RUNNING",
                "submit_s": 0,
                "start_s": 900,
                "req_walltime_s": 300,
                "alloc_cores": 8,
                "observed_s": NOW,
            },
            {
                "site": "s",
                "job_id": "p1",
                "state": "PENDING",
                "submit_s": 950,
                "req_walltime_s": 100,
                "req_cores": 8,
                "observed_s": NOW,
                "expected_start_s": 1200,
            },
            {
                "site": "s",
                "job_id": "p2",
                "state": "PENDING",
                "submit_s": 960,
                "req_walltime_s": None,
                "req_cores": 2,
                "observed_s": NOW,
            },
            {
                "site": "s",
                "job_id": "huge",
                "state": "PENDING",
                "submit_s": 970,
                "req_walltime_s": 10,
                "req_cores": 64,
                "observed_s": NOW,
            },
        ]
    )
    result = forecast_queue(queue, 8, "s", predictor="requested")
    starts = dict(zip(result.jobs["job_id"].to_list(), result.jobs["predicted_start_s"].to_list(), strict=True))
    assert result.now_s == NOW
    assert starts["p1"] == 1200  # the running job ends at 900 + 300
    assert starts["p2"] == 1300  # behind p1 (8 CPUs until 1300); its missing limit became the queue's longest
    assert "huge" not in starts
    assert result.corrections == {"wider_than_site": 1, "request_assumed": 1}
    assert result.jobs.filter(pl.col("job_id") == "p1")["scheduler_start_s"].item() == 1200


def test_history_feeds_ave2_and_only_the_past_counts() -> None:
    finished = _queue(
        [
            {"site": "s", "job_id": str(i), "user": "u", "state": "COMPLETED", "start_s": s, "end_s": e}
            for i, (s, e) in enumerate([(0, 100), (100, 300), (500, 5000)])
        ]
    )
    state, _ = build_state(
        _queue([]).with_columns(pl.lit(NOW).alias("observed_s")), 4, "s", finished=finished, now_s=NOW
    )
    assert state.history is not None and state.history.recent("u") == (100, 200)  # the job ending at 5000 is future


def test_tracker_scores_first_forecasts_when_jobs_start() -> None:
    queue = _queue(
        [
            {
                "site": "s",
                "job_id": "a",
                "state": "PENDING",
                "submit_s": 990,
                "req_walltime_s": 60,
                "req_cores": 1,
                "observed_s": NOW,
            }
        ]
    )
    tracker = ForecastTracker()
    tracker.record(forecast_queue(queue, 4, "s"))
    tracker.observe("s", _queue([{"site": "s", "job_id": "a", "state": "RUNNING", "start_s": NOW + 300}]))
    acc = tracker.accuracy("s")
    assert acc.scored == 1 and acc.median_abs_error_s == 300 and acc.within_10min == 1.0 and acc.within_1min == 0.0


def test_more_running_than_reported_capacity_raises_the_pool_and_says_so() -> None:
    """Real logs (and schedulers between two reads) can show more running than the site's size."""
    queue = _queue(
        [
            {
                "site": "s",
                "job_id": str(i),
                "state": "RUNNING",
                "submit_s": 0,
                "start_s": 900,
                "req_walltime_s": 300,
                "alloc_cores": 6,
                "observed_s": NOW,
            }
            for i in range(2)
        ]
        + [
            {
                "site": "s",
                "job_id": "p",
                "state": "PENDING",
                "submit_s": 990,
                "req_walltime_s": 60,
                "req_cores": 2,
                "observed_s": NOW,
            }
        ]
    )
    result = forecast_queue(queue, 8, "s", predictor="requested")
    assert result.processors == 12 and result.corrections == {"capacity_raised_to_running": 4}
    assert result.jobs["predicted_start_s"].to_list() == [1200]
