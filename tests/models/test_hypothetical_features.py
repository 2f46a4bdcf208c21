"""A job not yet submitted gets the same features as if it were a row of the history: its context
(the user's runs, the site's queue and load at its submit) from `context_at`, its request from
`features_for` — checked against `build_features` on real KTH-SP2 jobs."""

from __future__ import annotations

import polars as pl
import pytest

from models.features import CONTEXT_FEATURES, FEATURES, collect_features, context_at, features_for
from telemetry.jobs import conform_jobs


@pytest.mark.parametrize("at", [2_000, 9_000, 20_000])
def test_a_hypothetical_job_has_the_features_of_the_same_job_in_the_history(kth_history: pl.DataFrame, at: int) -> None:
    history, job = kth_history.head(at), kth_history.slice(at, 1)
    expected = collect_features(pl.concat([history, job])).tail(1).select(FEATURES)
    contexts = context_at(history, job.select("site", "user", "submit_s"))
    got = features_for(conform_jobs(job).collect(), contexts)
    assert got.to_dicts() == expected.to_dicts()
    assert contexts.select(CONTEXT_FEATURES).null_count().sum_horizontal().item() < len(CONTEXT_FEATURES)


def test_probes_do_not_see_each_other_and_an_unknown_user_has_no_history(kth_history: pl.DataFrame) -> None:
    history = kth_history.head(5_000)
    now = int(history["submit_s"].max()) + 60
    user = history["user"][-1]
    probes = pl.DataFrame({"site": ["KTH-SP2"] * 3, "user": [user, user, "nobody-ever"], "submit_s": [now] * 3})
    contexts = context_at(history, probes)
    assert contexts[0].to_dicts() == contexts[1].to_dicts()  # the second probe does not count the first
    assert contexts["user_ended"][2] is None and contexts["user_submitted"][2] == 0
    assert contexts["site_waiting_jobs"][2] == contexts["site_waiting_jobs"][0]  # the same site state
    with pytest.raises(ValueError, match="2 requests but 3 contexts"):
        features_for(conform_jobs(history.head(2)).collect(), contexts)


def test_the_plain_column_path_gives_the_frame_features_for_gives(kth_history: pl.DataFrame) -> None:
    """`hypothetical_features` (placement advice's fast path) against `features_for` on real KTH
    users' contexts and requests drawn from the log itself, with unknown users, missing memory and
    node counts, partitions and container fields among them."""
    import numpy as np
    from polars.testing import assert_frame_equal

    from models.features import hypothetical_features

    history = kth_history.head(6_000)
    now = int(history["submit_s"].max()) + 60
    rng = np.random.default_rng(7)
    picked = kth_history.slice(6_000, 400).sample(200, seed=3)
    users = [*picked["user"].to_list()[:190], *[f"new-{i}" for i in range(10)]]
    n = len(users)
    request = {
        "req_walltime_s": picked["req_walltime_s"].to_list(),
        "req_cores": picked["req_cores"].to_list(),
        "req_nodes": [None if i % 3 else int(v or 1) for i, v in enumerate(picked["req_cores"].to_list())],
        "req_mem_bytes": [None if i % 2 else int(rng.integers(1, 10**11)) for i in range(n)],
        "gpus": [int(rng.integers(0, 3)) for _ in range(n)],
        "partition": [None if i % 4 else "batch" for i in range(n)],
        "container_image": [None if i % 5 else "img:1" for i in range(n)],
        "container_runtime": [None if i % 5 else "apptainer" for i in range(n)],
    }
    probes = pl.DataFrame({"site": ["KTH-SP2"] * n, "user": users, "submit_s": [now] * n})
    matrix = context_at(history, probes).select(CONTEXT_FEATURES).cast(pl.Float64).to_numpy()
    rows = conform_jobs(pl.DataFrame({**request, "site": ["KTH-SP2"] * n, "submit_s": [now] * n})).collect()
    contexts = pl.DataFrame(matrix, schema=list(CONTEXT_FEATURES), orient="row")
    expected = features_for(rows, contexts)
    got = hypothetical_features(request, [now] * n, matrix)
    assert_frame_equal(got, expected)
    assert got["ave2_s"].is_nan().sum() == 0 and got["user_last_log_gap"].is_nan().sum() > 0  # both cases met
