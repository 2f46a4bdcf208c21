"""Proof that no feature of job X looks past X's submit instant t.

For many random X on a real log: rebuild the history as it could have looked at t, i.e.
- drop every job submitted at or after t (except X),
- move the start of every job that had not started before t (X included) to a random instant >= t,
- move the end of every job that had not ended before t to a random instant after its start and >= t,
  which also changes its run time,
and check that X's features are identical to those computed on the true history. A feature that
used a later submit, a start or end at or after t, or a run time not yet known would change.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.features import FEATURES, TARGETS, build_features

SLICE = 6000  # jobs: enough for long queues and user histories, fast enough for 40 rebuilds
TRIALS = 40


def _as_of(history: pl.DataFrame, x: int, rng: np.random.Generator) -> pl.DataFrame:
    t = history["submit_s"][x]
    rows = history.with_row_index("_i").filter((pl.col("submit_s") < t) | (pl.col("_i") == x))
    n = rows.height
    start = rows["start_s"].to_numpy().copy()
    end = rows["end_s"].to_numpy().copy()
    unstarted = start >= t
    start[unstarted] = t + rng.integers(0, 200_000, unstarted.sum())
    unended = end >= t
    end[unended] = np.maximum(start[unended], t) + rng.integers(1, 500_000, unended.sum())
    assert (end >= start).all() and n > 0
    return rows.with_columns(pl.Series("start_s", start), pl.Series("end_s", end)).drop("_i")


@pytest.mark.parametrize("seed", [0, 1])
def test_features_of_a_job_do_not_depend_on_anything_after_its_submit(kth_history: pl.DataFrame, seed: int) -> None:
    history = kth_history.sort("submit_s", maintain_order=True).slice(3000, SLICE)
    truth = build_features(history).collect()
    rng = np.random.default_rng(seed)
    picks = rng.choice(np.arange(200, SLICE), TRIALS, replace=False)
    changed_jobs = 0
    for x in picks:
        x = int(x)
        perturbed = _as_of(history, x, rng)
        changed_jobs += perturbed.height
        mine = perturbed["job_id"] == history["job_id"][x]
        got = build_features(perturbed).collect().filter(mine).select(FEATURES)
        want = truth[x].select(FEATURES)
        assert got.height == 1
        for name in FEATURES:
            a, b = got[name][0], want[name][0]
            same = (a is None and b is None) or (a is not None and b is not None and np.isclose(a, b, rtol=1e-12))
            if isinstance(a, str) or isinstance(b, str):
                same = a == b
            assert same, f"job {history['job_id'][x]}: feature {name} = {b} on the true history, {a} as of its submit"
    assert changed_jobs > TRIALS * 100  # the perturbed histories were not trivially small


def test_the_check_would_catch_a_leak(kth_history: pl.DataFrame) -> None:
    """The outcomes (not features) do change under the same perturbation: the test has teeth."""
    history = kth_history.sort("submit_s", maintain_order=True).slice(3000, 2000)
    rng = np.random.default_rng(7)
    x = 1500
    truth = build_features(history).collect()[x]
    perturbed = _as_of(history, x, rng)
    got = build_features(perturbed).collect().filter(pl.col("job_id") == history["job_id"][x])
    assert any(got[t][0] != truth[t][0] for t in TARGETS)


def test_history_features_are_informative(kth_features: pl.DataFrame) -> None:
    """Causal does not mean empty: most jobs have a user history and see a queue."""
    share = kth_features.select(
        pl.col("user_last2_s").is_not_null().mean(), (pl.col("site_waiting_jobs") > 0).mean()
    ).row(0)
    assert share[0] > 0.95 and share[1] > 0.7
