"""The estimator contract (scikit-learn's own checks) and what each model promises."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.estimators import LastTwoAverage, RuntimeQuantileRegressor, UserEstimate, WaitQuantileRegressor
from models.features import FEATURES


@parametrize_with_checks(
    [
        RuntimeQuantileRegressor(request_column=None, reference_column=None, min_samples_leaf=5, max_iter=10),
        WaitQuantileRegressor(min_samples_leaf=5, max_iter=10),
        UserEstimate(request_column=0),
        LastTwoAverage(0, 1, 1),
    ],
    expected_failed_checks=lambda est: (
        {
            "check_fit2d_1feature": "AVE2 needs a request and a history column",
            "check_requires_y_none": "a rule needs no y; the 1-feature data lacks its columns",
        }
        if isinstance(est, LastTwoAverage)
        else {}
    ),
)
def test_sklearn_contract(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


@pytest.fixture(scope="module")
def split(kth_features: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    data = kth_features.sort("submit_s", maintain_order=True)
    return data[:8000], data[8000:11000]


def test_runtime_quantiles_are_ordered_and_capped(split: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, test = split
    model = RuntimeQuantileRegressor(max_iter=30).fit(train.select(FEATURES), train["runtime_s"])
    q = model.predict_quantiles(test.select(FEATURES))
    req = test["req_walltime_s"].to_numpy()
    assert (q.p10 <= q.p50).all() and (q.p50 <= q.p90).all()
    assert (q.p90 <= req).all() and (q.p10 >= 1).all()
    np.testing.assert_array_equal(model.predict(test.select(FEATURES)), q.p50)
    assert not model.calibrated_in_sample_ and model.n_iter_ == 30


def test_columns_are_picked_by_name(split: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, test = split
    model = RuntimeQuantileRegressor(max_iter=10).fit(train.select(FEATURES), train["runtime_s"])
    shuffled = test.select([*reversed(FEATURES), "runtime_s"])
    np.testing.assert_allclose(model.predict(shuffled), model.predict(test.select(FEATURES)))
    with pytest.raises(ValueError, match="lacks the feature column"):
        model.predict(test.select(FEATURES).drop("req_cores"))


def test_unseen_categories_are_missing_values(split: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, test = split
    train = train.with_columns(
        pl.when(pl.col("req_cores") > 8).then(pl.lit("big")).otherwise(pl.lit("small")).alias("partition")
    )
    model = WaitQuantileRegressor(max_iter=10).fit(train.select(FEATURES), train["wait_s"])
    assert model.encoding_.categories["partition"] == ("small", "big") or set(
        model.encoding_.categories["partition"]
    ) == {"small", "big"}
    q = model.predict_quantiles(test.with_columns(pl.lit("new").alias("partition")).select(FEATURES))
    assert np.isfinite(q.p50).all() and (q.p10 >= 0).all() and (q.p10 <= q.p90).all()


def test_baselines(split: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, test = split
    X = test.select(FEATURES)
    np.testing.assert_array_equal(UserEstimate().fit(X).predict(X), test["req_walltime_s"].to_numpy())
    ave2 = LastTwoAverage().fit(X).predict(X)
    np.testing.assert_array_equal(ave2, test["ave2_s"].to_numpy())  # the rule and the feature agree
    last1, last2, req = (test[c].to_numpy() for c in ("user_last1_s", "user_last2_s", "req_walltime_s"))
    i = int(np.flatnonzero(~np.isnan(last2) & ((last1 + last2) // 2 < req))[0])
    assert ave2[i] == (last1[i] + last2[i]) // 2
    q = LastTwoAverage().fit(X).predict_quantiles(X)
    assert (q.p10 == q.p90).all()


def test_clone_keeps_parameters() -> None:
    model = RuntimeQuantileRegressor(min_samples_leaf=7, band=(0.05, 0.95))
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(ValueError, match="band"):
        RuntimeQuantileRegressor(band=(0.6, 0.9)).fit(np.ones((10, 2)), np.ones(10))
