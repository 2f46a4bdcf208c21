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
