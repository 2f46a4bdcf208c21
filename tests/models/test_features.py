"""Feature values on a hand-made history, where every number can be checked by eye."""

from __future__ import annotations

import polars as pl

from models.features import FEATURES, ID_COLUMNS, TARGETS, build_features, feature_schema


def _jobs() -> pl.DataFrame:
    # job, user, submit, start, end, cores, request
    rows = [
        ("a", "u", 0, 0, 100, 4, 200),
        ("b", "u", 10, 100, 400, 2, 600),  # waits for a
        ("c", "v", 50, 50, 60, 1, 60),
        ("d", "u", 400, 400, 500, 4, 300),  # a and b ended before 400? b ends AT 400: not yet known
        ("e", "u", 401, 500, 900, 1, 1000),
    ]
    return pl.DataFrame(
        rows,
        schema=["job_id", "user", "submit_s", "start_s", "end_s", "req_cores", "req_walltime_s"],
        orient="row",
    ).with_columns(pl.lit("s").alias("site"))


def test_user_history_uses_only_jobs_ended_strictly_before_submit() -> None:
    f = build_features(_jobs()).collect()
    d, e = f.row(3, named=True), f.row(4, named=True)
    assert d["user_last1_s"] == 100 and d["user_last2_s"] is None and d["user_ended"] == 1
    assert d["ave2_s"] == 300  # fewer than two known run times: the request
    assert e["user_last1_s"] == 300 and e["user_last2_s"] == 100 and e["user_ended"] == 2
    assert e["ave2_s"] == 200 and e["user_last1_ratio"] == 0.5
    assert e["user_submitted"] == 3 and e["user_since_last_submit_s"] == 1


def test_queue_and_load_at_submit() -> None:
    f = build_features(_jobs()).collect()
    c, d, e = f.row(2, named=True), f.row(3, named=True), f.row(4, named=True)
    assert c["site_waiting_jobs"] == 1 and c["site_waiting_cores"] == 2  # b waits, a runs
    assert c["site_running_jobs"] == 1 and c["site_running_cores"] == 4
    assert c["site_running_left_work"] == 4 * (0 + 200 - 50)
    assert d["site_waiting_jobs"] == 0 and d["site_running_cores"] == 2  # b still counts as running at 400
    assert e["site_waiting_jobs"] == 0 and e["site_running_cores"] == 4  # b ended at 400 < 401; d runs
    assert e["user_waiting_jobs"] == 0


def test_output_shape_and_order() -> None:
    jobs = _jobs().reverse()
    f = build_features(jobs).collect()
    assert f.columns == [*ID_COLUMNS, *TARGETS, *FEATURES]
    assert f["job_id"].to_list() == jobs["job_id"].to_list()
    assert set(feature_schema()) == set(FEATURES)
