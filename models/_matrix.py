"""Feature frame → float matrix: the one place where polars stops and numpy starts.

Categorical (string) columns become integer codes learned at fit time, most frequent first, at
most `MAX_CATEGORIES` of them (HistGradientBoosting's limit); an unseen or null category becomes
NaN, which the trees route like a missing value. Columns that are entirely missing at fit time are
dropped, because scikit-learn's binning cannot handle them, and stay dropped at predict time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

__all__ = ["MAX_CATEGORIES", "Encoding", "column", "fit_encoding"]

MAX_CATEGORIES = 254


@dataclass(frozen=True)
class Encoding:
    """What `fit_encoding` learned: the kept columns, in order, and the categories of each."""

    names: tuple[str, ...]
    """Every input column, as seen at fit time."""
    kept: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    named: bool = True
    """False for a bare matrix: the names are made up (x0, x1, ...) and never checked."""

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([name in self.categories for name in self.kept], dtype=bool)

    def transform(self, X: Any) -> np.ndarray:
        """The kept columns of X as float64, categories as codes."""
        if isinstance(X, pl.LazyFrame):
            X = X.collect()
        if isinstance(X, pl.DataFrame):
            missing = [name for name in self.kept if name not in X.columns]
            if missing:
                raise ValueError(f"X lacks the feature column(s) {missing} the model was fitted with")
            exprs = []
            for name in self.kept:
                cats = self.categories.get(name)
                if cats is None:
                    exprs.append(pl.col(name).cast(pl.Float64))
                else:
                    codes = {c: float(i) for i, c in enumerate(cats)}
                    expr = pl.col(name).cast(pl.String).replace_strict(codes, default=None, return_dtype=pl.Float64)
                    exprs.append(expr)
            return X.select(exprs).to_numpy().astype(np.float64, copy=False)
        array = _as_array(X)
        if array.shape[1] != len(self.names):
            raise ValueError(f"X has {array.shape[1]} features, but the model was fitted with {len(self.names)}")
        index = {name: i for i, name in enumerate(self.names)}
        return np.ascontiguousarray(array[:, [index[name] for name in self.kept]])


def fit_encoding(X: Any) -> Encoding:
    """Learn the column order, the categories and the columns worth keeping."""
    if isinstance(X, pl.LazyFrame):
        X = X.collect()
    if isinstance(X, pl.DataFrame):
        names = tuple(X.columns)
        categories: dict[str, tuple[str, ...]] = {}
        kept: list[str] = []
        for name, dtype in X.schema.items():
            series = X[name]
            if series.null_count() == len(series) or (dtype.is_float() and series.is_nan().all()):
                continue
            kept.append(name)
            if dtype in (pl.String, pl.Categorical, pl.Enum):
                counts = series.cast(pl.String).drop_nulls().value_counts(sort=True)
                categories[name] = tuple(counts[name].head(MAX_CATEGORIES).to_list())
        return Encoding(names, tuple(kept), categories)
    array = _as_array(X)
    names = tuple(f"x{i}" for i in range(array.shape[1]))
    usable = tuple(n for i, n in enumerate(names) if not np.isnan(array[:, i]).all())
    return Encoding(names, usable, {}, named=False)


def column(X: Any, key: str | int) -> np.ndarray | None:
    """One column of X as float64, or None when X has no such column."""
    if isinstance(X, pl.LazyFrame):
        X = X.collect()
    if isinstance(X, pl.DataFrame):
        if isinstance(key, int):
            return X.to_series(key).cast(pl.Float64).to_numpy() if key < X.width else None
        return X[key].cast(pl.Float64).to_numpy() if key in X.columns else None
    if hasattr(X, "columns") and isinstance(key, str):  # pandas
        return np.asarray(X[key], dtype=np.float64) if key in X.columns else None
    if isinstance(key, str):
        return None
    array = _as_array(X)
    return array[:, key] if key < array.shape[1] else None


def _as_array(X: Any) -> np.ndarray:
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-d feature matrix, got an array of shape {array.shape}")
    return array
