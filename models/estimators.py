"""Runtime and queue-wait estimators with p10/p50/p90, and the baselines, behind one interface.

Every estimator follows the scikit-learn contract (parameters stored by `__init__`, validation in
`fit`, `fit` returns self, learned attributes end in `_`) and adds
`predict_quantiles(X) -> Quantiles(p10, p50, p90)` in seconds. X is a feature frame from
`models.features.build_features` (polars; the model picks the columns it was fitted on) or a plain
numeric matrix.

The learned models fit ONE gradient-boosted median model of the log target (runtimes and waits
span five orders of magnitude; a median of the log is also the median of the seconds, so it serves
MAE and the ratio-based mean accuracy at once). The runtime model learns a correction to AVE2
(`reference_column`): trees split features into at most 255 bins, so they cannot copy "same as
the last two runs" exactly, while a correction of zero can; that is what lifts mean accuracy.

The runtime p10/p90 band is split-conformal: the residuals of that model on the most recent
`calibration_fraction` of the training rows (held out of the fit, rows in submit order) give the
band's offsets. That costs one fit instead of three quantile fits, and calibrates the band on the
period closest to the future it will be used on; the top edge is calibrated as it is served,
capped at the request plus the overrun seen in training. The wait model (`interval="cqr"`) adds
two quantile boosters for the band edges and shifts them the same way (conformalized quantile
regression), because the spread of a wait depends on the load, and calibrates the shifts per
quartile of its predicted median (`calibration_bins=4`, Mondrian conformal): a busier future is
then covered as busy periods were, not with the calibration period's mix.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted, validate_data

from models._matrix import Encoding, column, fit_encoding

__all__ = [
    "LastTwoAverage",
    "Quantiles",
    "RuntimeQuantileRegressor",
    "UserEstimate",
    "WaitQuantileRegressor",
]

MIN_CALIBRATION_ROWS = 50
"""Below this many held-out rows the band is calibrated in-sample (optimistic, but defined)."""


class Quantiles(NamedTuple):
    """Predicted seconds per row: p10 <= p50 <= p90."""

    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray


class _LogQuantileRegressor(RegressorMixin, BaseEstimator):
    """Median of log(target) by gradient boosting, with a split-conformal band."""

    def __init__(
        self,
        *,
        loss: Literal["absolute_error", "quantile", "squared_error"] = "absolute_error",
        band: tuple[float, float] = (0.1, 0.9),
        calibration_fraction: float = 0.15,
        interval: Literal["residual", "cqr"] = "residual",
        calibration_bins: int = 1,
        max_iter: int = 100,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 300,
        l2_regularization: float = 0.0,
        early_stopping: bool | Literal["auto"] = "auto",
        request_column: str | int | None = "req_walltime_s",
        cap_at_request: bool = True,
        reference_column: str | int | None = "ave2_s",
        random_state: int | None = 0,
    ) -> None:
        self.loss = loss
        self.band = band
        self.calibration_fraction = calibration_fraction
        self.interval = interval
        self.calibration_bins = calibration_bins
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.early_stopping = early_stopping
        self.request_column = request_column
        self.cap_at_request = cap_at_request
        self.reference_column = reference_column
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True  # a log-median model scores poorly on synthetic linear data
        return tags

    # ------------------------------------------------------------------ fitting
    def _booster(self, quantile: float | None = None) -> HistGradientBoostingRegressor:
        loss = "quantile" if quantile is not None or self.loss == "quantile" else self.loss
        return HistGradientBoostingRegressor(
            loss=loss,
            quantile=(quantile or 0.5) if loss == "quantile" else None,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=self.early_stopping,
            categorical_features=self.encoding_.categorical_mask if self.encoding_.categories else None,
            random_state=self.random_state,
        )

    def fit(self, X: Any, y: Any) -> _LogQuantileRegressor:
        """Fit on rows in submit order; the last `calibration_fraction` of them calibrate the band."""
        lo, hi = self.band
        if not 0.0 < lo < 0.5 < hi < 1.0:
            raise ValueError(f"band must be two quantiles around the median, e.g. (0.1, 0.9); got {self.band}")
        if not 0.0 <= self.calibration_fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in [0, 1), got {self.calibration_fraction}")
        if not isinstance(self.calibration_bins, int | np.integer) or self.calibration_bins < 1:
            raise ValueError(f"calibration_bins must be a positive integer, got {self.calibration_bins!r}")
        X, target = _validated(self, X, y)
        self.encoding_: Encoding = fit_encoding(X)
        matrix = self.encoding_.transform(X)
        if matrix.shape[0] != target.shape[0]:
            raise ValueError(f"X has {matrix.shape[0]} rows but y has {target.shape[0]}")
        if matrix.shape[0] < 2:
            raise ValueError(f"need at least 2 training rows, got {matrix.shape[0]}")
        if not np.isfinite(target).all():
            raise ValueError("y contains NaN or infinite values; drop jobs whose outcome is unknown")
        if not self.encoding_.kept:
            raise ValueError("every feature column is missing (all null)")
        self.n_features_in_ = len(self.encoding_.names)
        if self.encoding_.named:
            self.feature_names_in_ = np.array(self.encoding_.names, dtype=object)
        logs = self._forward(target) - self._reference(X)
        n_cal = round(self.calibration_fraction * len(logs))
        in_sample = n_cal < MIN_CALIBRATION_ROWS or len(logs) - n_cal < MIN_CALIBRATION_ROWS
        n_fit = len(logs) if in_sample else len(logs) - n_cal
        fit_rows, cal = slice(0, n_fit), slice(0, n_fit) if in_sample else slice(n_fit, None)
        self.estimator_ = self._booster().fit(matrix[fit_rows], logs[fit_rows])
        mid = self.estimator_.predict(matrix[cal])
        if self.interval == "cqr":
            self.band_estimators_ = tuple(self._booster(q).fit(matrix[fit_rows], logs[fit_rows]) for q in (lo, hi))
            edges = [m.predict(matrix[cal]) for m in self.band_estimators_]
        else:
            self.band_estimators_ = ()
            edges = [mid, mid]
        request = self._request(X)
        self.overrun_s_ = _overrun_s(target, request, hi)
        # Per side: the offset that puts exactly `lo` (`hi`) of the held-out rows below the edge,
        # the upper edge as it will be served (capped at the request plus the usual overrun): a
        # job that ran past that cap cannot be covered by any offset, so it counts against it.
        low_scores, high_scores = logs[cal] - edges[0], logs[cal] - edges[1]
        if request is not None:
            uncoverable = target[cal] > request[cal] + self.overrun_s_
            high_scores = np.where(uncoverable, np.inf, high_scores)
        self.band_offsets_ = (float(np.quantile(low_scores, lo)), _upper_quantile(high_scores, hi))
        # Mondrian calibration: one pair of offsets per bin of the predicted median, so a future
        # with more long predictions (a busier machine) is covered as each bin was, not as the
        # calibration period's mix was.
        self.band_bins_: tuple[np.ndarray, np.ndarray] | None = None
        if self.calibration_bins > 1:
            cuts = np.quantile(mid, np.arange(1, self.calibration_bins) / self.calibration_bins)
            which = np.searchsorted(cuts, mid)
            offsets = np.array([self.band_offsets_] * self.calibration_bins)
            for b in range(self.calibration_bins):
                rows = which == b
                if rows.sum() >= MIN_CALIBRATION_ROWS:
                    offsets[b] = (np.quantile(low_scores[rows], lo), _upper_quantile(high_scores[rows], hi))
            self.band_bins_ = (cuts, offsets)
        self.calibrated_in_sample_ = in_sample
        return self

    @property
    def n_iter_(self) -> int:
        """Boosting iterations of the median model."""
        check_is_fitted(self, "estimator_")
        return int(self.estimator_.n_iter_)

    def _reference(self, X: Any) -> np.ndarray | float:
        """The transformed reference prediction the model corrects (0 without one)."""
        if self.reference_column is None:
            return 0.0
        reference = column(X, self.reference_column)
        if reference is None:
            raise ValueError(f"X lacks the reference column {self.reference_column!r}")
        return np.nan_to_num(self._forward(reference), nan=0.0)

    def _forward(self, seconds: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(seconds, 0.0))

    def _inverse(self, logs: np.ndarray) -> np.ndarray:
        return np.maximum(np.expm1(logs), 0.0)

    # ------------------------------------------------------------------ predicting
    def predict(self, X: Any) -> np.ndarray:
        """The p50, in seconds."""
        return self.predict_quantiles(X).p50

    def predict_quantiles(self, X: Any) -> Quantiles:
        check_is_fitted(self, "estimator_")
        X = _validated(self, X)[0]
        matrix = self.encoding_.transform(X)
        reference = self._reference(X)
        raw = self.estimator_.predict(matrix)
        mid = raw + reference
        lo_off, hi_off = self._offsets(raw)
        if self.band_estimators_:
            lo_edge = self.band_estimators_[0].predict(matrix) + reference
            hi_edge = self.band_estimators_[1].predict(matrix) + reference
        else:
            lo_edge = hi_edge = mid
        p10 = self._inverse(np.minimum(lo_edge + lo_off, mid))
        p50 = self._inverse(mid)
        p90 = self._inverse(np.maximum(hi_edge + hi_off, mid))
        request = self._request(X)
        if request is not None:
            limit = np.where(np.isnan(request), np.inf, request)
            p10, p50 = np.minimum(p10, limit), np.minimum(p50, limit)
            p90 = np.maximum(np.minimum(p90, limit + getattr(self, "overrun_s_", 0.0)), p50)
        return Quantiles(p10, p50, p90)

    def _offsets(self, mid: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | float]:
        """The band's (lower, upper) offsets for rows whose median model predicts `mid`."""
        bins = getattr(self, "band_bins_", None)
        if bins is None:
            return self.band_offsets_
        cuts, offsets = bins
        which = np.searchsorted(cuts, mid)
        return offsets[which, 0], offsets[which, 1]

    def _request(self, X: Any) -> np.ndarray | None:
        """The requested time per row (NaN where unknown) when predictions are capped by it."""
        if not self.cap_at_request or self.request_column is None:
            return None
        request = column(X, self.request_column)
        return None if request is None else np.asarray(request, dtype=np.float64)


class RuntimeQuantileRegressor(_LogQuantileRegressor):
    """Job run time (s): median of log run time, band by conformal residuals, capped at the request.

    Capping is right for planning: the scheduler kills a job at its requested time, so a longer
    prediction only delays backfilling. Run times below one second count as one second."""

    def _forward(self, seconds: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(seconds, 1.0))

    def _inverse(self, logs: np.ndarray) -> np.ndarray:
        return np.maximum(np.exp(logs), 1.0)


class WaitQuantileRegressor(_LogQuantileRegressor):
    """Queue wait (s): median of log(1 + wait), never capped; the band by conformalized quantile
    regression (two more boosted models for p10 and p90, shifted on the held-out rows).

    Most waits are zero or seconds and a few are days: log1p keeps both in one scale. The spread
    of a wait depends on the load (an idle machine starts everything at once), so a constant
    residual band covers badly; quantile models of the band follow the load."""

    def __init__(
        self,
        *,
        loss: Literal["absolute_error", "quantile", "squared_error"] = "absolute_error",
        band: tuple[float, float] = (0.1, 0.9),
        calibration_fraction: float = 0.15,
        interval: Literal["residual", "cqr"] = "cqr",
        calibration_bins: int = 4,
        max_iter: int = 100,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 300,
        l2_regularization: float = 0.0,
        early_stopping: bool | Literal["auto"] = "auto",
        request_column: str | int | None = None,
        cap_at_request: bool = False,
        reference_column: str | int | None = None,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(
            loss=loss,
            band=band,
            calibration_fraction=calibration_fraction,
            interval=interval,
            calibration_bins=calibration_bins,
            max_iter=max_iter,
            learning_rate=learning_rate,
            max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=min_samples_leaf,
            l2_regularization=l2_regularization,
            early_stopping=early_stopping,
            request_column=request_column,
            cap_at_request=cap_at_request,
            reference_column=reference_column,
            random_state=random_state,
        )

    def _forward(self, seconds: np.ndarray) -> np.ndarray:
        return np.log1p(np.maximum(seconds, 0.0))

    def _inverse(self, logs: np.ndarray) -> np.ndarray:
        return np.maximum(np.expm1(logs), 0.0)


def _overrun_s(target: np.ndarray, request: np.ndarray | None, level: float) -> float:
    """How far past its request a job may run (s): the `level` quantile of the overruns seen in
    training (a few percent of jobs on the shared logs, by tens of seconds to minutes: the kill
    is not instantaneous); 0 when none overran or there is no request."""
    if request is None:
        return 0.0
    over = target - request
    over = over[np.isfinite(over) & (over > 0)]
    return float(np.quantile(over, level)) if len(over) else 0.0


def _upper_quantile(scores: np.ndarray, level: float) -> float:
    """np.quantile where +inf marks a row no offset can cover; when the quantile falls on such a
    row, the largest finite score (cover every row that can be covered)."""
    finite = np.isfinite(scores)
    if finite.all():
        return float(np.quantile(scores, level))
    if not finite.any():
        return 0.0
    top = float(np.max(scores[finite]))
    return min(float(np.quantile(np.where(finite, scores, np.inf), level, method="higher")), top)


def _validated(estimator: Any, X: Any, y: Any = "predict", *, y_required: bool = True) -> tuple[Any, Any]:
    """Polars frames pass as they are (they carry names and strings, checked by the encoding);
    anything else goes through scikit-learn's own validation, with its usual messages."""
    fitting = not (isinstance(y, str) and y == "predict")
    if fitting and y is None and y_required:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    if isinstance(X, pl.LazyFrame):
        X = X.collect()
    if isinstance(X, pl.DataFrame):
        if not fitting:
            return X, None
        if X.height == 0:
            raise ValueError("Found array with 0 sample(s) (shape=(0, ...)) while a minimum of 1 is required.")
        if y is None:
            estimator.n_features_in_ = X.width
            return X, None
        target = np.asarray(y, dtype=np.float64)
        if target.ndim != 1 or len(target) != X.height:
            raise ValueError(f"y must be one value per row of X: {X.height} rows, y of shape {target.shape}")
        estimator.n_features_in_ = X.width
        return X, target
    kwargs: dict[str, Any] = {"ensure_all_finite": "allow-nan", "dtype": np.float64}
    if not fitting:
        return validate_data(estimator, X, reset=False, **kwargs), None
    if y is None:
        return validate_data(estimator, X, **kwargs), None
    return validate_data(estimator, X, y, y_numeric=True, ensure_min_samples=2, **kwargs)


# ---------------------------------------------------------------------------------- baselines
class _Baseline(RegressorMixin, BaseEstimator):
    """A rule, not a model: fit only records the input shape; quantiles collapse to one value."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True
        return tags

    def fit(self, X: Any, y: Any = None) -> _Baseline:
        X = _validated(self, X, y, y_required=False)[0]
        self._check_columns(X)
        self.fitted_ = True
        return self

    def _check_columns(self, X: Any) -> None:
        for key in self._columns():
            if column(X, key) is None:
                raise ValueError(f"{type(self).__name__} needs the feature column {key!r}")

    def _columns(self) -> tuple[str | int, ...]:
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "fitted_")
        X = _validated(self, X)[0]
        self._check_columns(X)
        return self._rule(X)

    def predict_quantiles(self, X: Any) -> Quantiles:
        p = self.predict(X)
        return Quantiles(p, p, p)

    def _rule(self, X: Any) -> np.ndarray:
        raise NotImplementedError


class UserEstimate(_Baseline):
    """The requested time: what plain EASY plans with."""

    def __init__(self, request_column: str | int = "req_walltime_s") -> None:
        self.request_column = request_column

    def _columns(self) -> tuple[str | int, ...]:
        return (self.request_column,)

    def _rule(self, X: Any) -> np.ndarray:
        request = column(X, self.request_column)
        assert request is not None
        return request


class LastTwoAverage(_Baseline):
    """AVE2 (Tsafrir, Etsion and Feitelson 2007), as predictsim computes it.

    The integer floor of the mean of the user's last two run times (of jobs that ended before
    submit), capped at the requested time; the requested time while the user has fewer than two."""

    def __init__(
        self,
        request_column: str | int = "req_walltime_s",
        last1_column: str | int = "user_last1_s",
        last2_column: str | int = "user_last2_s",
    ) -> None:
        self.request_column = request_column
        self.last1_column = last1_column
        self.last2_column = last2_column

    def _columns(self) -> tuple[str | int, ...]:
        return (self.request_column, self.last1_column, self.last2_column)

    def _rule(self, X: Any) -> np.ndarray:
        request, last1, last2 = (column(X, key) for key in self._columns())
        assert request is not None and last1 is not None and last2 is not None
        known = ~(np.isnan(last1) | np.isnan(last2))
        mean = np.floor((np.where(known, last1, 0.0) + np.where(known, last2, 0.0)) / 2.0)
        return np.where(known, np.minimum(request, mean), request)
