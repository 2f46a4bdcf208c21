"""The container-effect model and its baselines, behind the estimator contract of models.estimators.

Every estimator predicts the effect ratio (throughput of a configuration ÷ that of the workload's
reference configuration) with `predict_quantiles(X) -> Quantiles(p10, p50, p90)`.

`ContainerEffectRegressor` fits a gradient-boosted median of log(ratio). Its band must hold for
configurations it has not seen (a container count no run used), so it is calibrated the way it will
be used: one whole group (the middle value of `group_column` other than the reference) is held out
of a calibration fit, and the residuals on that group give the band's offsets. That costs one fit
more than no band; the final model then fits on every row.

Baselines: `NoEffect` (ratio 1: "containerisation changes nothing", what a scheduler assumes today)
and `GranularityRule` (Scanflow-style fixed rule: a node split into several containers gains a
fixed factor, learned per affinity policy as the training median, and one container gains nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from models._matrix import Encoding, column, fit_encoding
from models.estimators import Quantiles, _validated
from models.threads import one_thread

__all__ = ["ContainerEffectRegressor", "GranularityRule", "NoEffect"]


class ContainerEffectRegressor(RegressorMixin, BaseEstimator):
    """Median of log(effect ratio) by gradient boosting, with a band calibrated on an unseen group."""

    def __init__(
        self,
        *,
        band: tuple[float, float] = (0.1, 0.9),
        group_column: str | int = "containers",
        reference_group: float = 1.0,
        max_iter: int = 40,
        learning_rate: float = 0.1,
        min_samples_leaf: int = 10,
        random_state: int | None = 0,
    ) -> None:
        self.band = band
        self.group_column = group_column
        self.reference_group = reference_group
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True  # a log-median model scores poorly on synthetic linear data
        tags.target_tags.positive_only = True  # an effect ratio is positive
        return tags

    def _booster(self) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            loss="absolute_error",
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            min_samples_leaf=self.min_samples_leaf,
            early_stopping=False,
            random_state=self.random_state,
        )

    def fit(self, X: Any, y: Any) -> ContainerEffectRegressor:
        """Two boosted fits (calibration, then the served model) on one OpenMP thread: a couple of
        thousand rows fit faster so, and with a core taken by another process many times faster
        (models.threads)."""
        with one_thread():
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> ContainerEffectRegressor:
        lo, hi = self.band
        if not 0.0 < lo < 0.5 < hi < 1.0:
            raise ValueError(f"band must be two quantiles around the median, e.g. (0.1, 0.9); got {self.band}")
        X, target = _validated(self, X, y)
        if not np.isfinite(target).all() or (target <= 0).any():
            raise ValueError("y must be positive effect ratios (throughput ÷ reference throughput)")
        self.encoding_: Encoding = fit_encoding(X)
        matrix = self.encoding_.transform(X)
        if matrix.shape[0] < 2:
            raise ValueError(f"need at least 2 training rows, got {matrix.shape[0]}")
        self.n_features_in_ = len(self.encoding_.names)
        if self.encoding_.named:
            self.feature_names_in_ = np.array(self.encoding_.names, dtype=object)
        logs = np.log(target)
        groups = column(X, self.group_column)
        self.calibration_group_ = _calibration_group(groups, self.reference_group)
        if self.calibration_group_ is None:
            held = np.zeros(len(logs), dtype=bool)
        else:
            assert groups is not None
            held = groups == self.calibration_group_
        if held.any() and (~held).sum() >= 2:
            calibration = self._booster().fit(matrix[~held], logs[~held])
            scores = logs[held] - calibration.predict(matrix[held])
        else:  # one group only: in-sample residuals (optimistic, but defined)
            calibration = None
            scores = np.array([])
        self.estimator_ = self._booster().fit(matrix, logs)
        if calibration is None:
            scores = logs - self.estimator_.predict(matrix)
        self.band_offsets_ = (float(np.quantile(scores, lo)), float(np.quantile(scores, hi)))
        self.calibrated_in_sample_ = calibration is None
        return self

    @property
    def n_iter_(self) -> int:
        """Boosting iterations of the served model."""
        check_is_fitted(self, "estimator_")
        return int(self.estimator_.n_iter_)

    def predict(self, X: Any) -> np.ndarray:
        """The p50 effect ratio."""
        return self.predict_quantiles(X).p50

    def predict_quantiles(self, X: Any) -> Quantiles:
        check_is_fitted(self, "estimator_")
        X = _validated(self, X)[0]
        with one_thread():  # tens of rows: OpenMP's start-up costs more than the trees
            mid = self.estimator_.predict(self.encoding_.transform(X))
        lo_off, hi_off = self.band_offsets_
        return Quantiles(np.exp(mid + min(lo_off, 0.0)), np.exp(mid), np.exp(mid + max(hi_off, 0.0)))


def _calibration_group(groups: np.ndarray | None, reference: float) -> float | None:
    """The middle of the non-reference group values (the kind of value the model interpolates)."""
    if groups is None:
        return None
    values = np.unique(groups[np.isfinite(groups)])
    values = values[values != reference]
    if len(values) < 2:
        return None
    return float(values[len(values) // 2])


class _Rule(RegressorMixin, BaseEstimator):
    """A rule, not a model: quantiles collapse to one value."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True
        tags.target_tags.positive_only = True
        return tags

    def predict_quantiles(self, X: Any) -> Quantiles:
        p = self.predict(X)
        return Quantiles(p, p, p)

    def predict(self, X: Any) -> np.ndarray:
        raise NotImplementedError


class NoEffect(_Rule):
    """Ratio 1 for every configuration."""

    def fit(self, X: Any, y: Any = None) -> NoEffect:
        _validated(self, X, y, y_required=False)
        self.fitted_ = True
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "fitted_")
        X = _validated(self, X)[0]
        rows = X.height if isinstance(X, pl.DataFrame) else len(X)
        return np.ones(rows)


class GranularityRule(_Rule):
    """One container: ratio 1; several: the training median ratio of split nodes, per affinity policy."""

    def __init__(
        self,
        containers_column: str | int = "containers",
        policy_columns: tuple[str | int, ...] = ("cpu_affinity", "memory_affinity"),
    ) -> None:
        self.containers_column = containers_column
        self.policy_columns = policy_columns

    def _keys(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        containers = column(X, self.containers_column)
        if containers is None:
            raise ValueError(f"GranularityRule needs the column {self.containers_column!r}")
        policy = np.zeros(len(containers))
        for i, name in enumerate(self.policy_columns):
            values = column(X, name)
            if values is not None:
                policy += np.nan_to_num(values) * 2**i
        return containers, policy

    def fit(self, X: Any, y: Any) -> GranularityRule:
        X, target = _validated(self, X, y)
        containers, policy = self._keys(X)
        split = containers > 1
        self.default_ = float(np.median(target[split])) if split.any() else 1.0
        self.factors_ = {float(p): float(np.median(target[split & (policy == p)])) for p in np.unique(policy[split])}
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "factors_")
        X = _validated(self, X)[0]
        containers, policy = self._keys(X)
        factor = np.array([self.factors_.get(float(p), self.default_) for p in policy])
        return np.where(containers > 1, factor, 1.0)
