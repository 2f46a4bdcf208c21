"""Honest evaluation: train on the past, score on the future, per site.

Two protocols over a feature frame (models.features.build_features):

- `evaluate_split`: per site, the first `train_fraction` of jobs by submit time train, the rest
  test. A training job counts only if it ENDED before the split instant: at that instant its
  outcome was known; later outcomes were not.
- `evaluate_rolling`: the test period is cut into windows of `every_s` seconds; before each window
  every model is refitted on the jobs that ended before the window opened, then predicts it.

Baselines go through the same code (they ignore the training rows), so every row of a result
table was scored on exactly the same jobs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import clone

from models.estimators import Quantiles
from models.features import FEATURES

__all__ = [
    "Target",
    "evaluate_rolling",
    "evaluate_split",
    "metrics_table",
    "runtime_metrics",
    "wait_metrics",
]

Target = str
"""Outcome column of the feature frame: "runtime_s" or "wait_s"."""
Progress = Callable[[float], None]
Models = Mapping[str, object]
"""Name → unfitted estimator (cloned before every fit) with `predict_quantiles`."""

RUNTIME_METRICS = ("n", "mae_s", "median_ae_s", "mean_accuracy", "under_share", "p90_coverage", "band_coverage")
WAIT_METRICS = ("n", "mae_s", "median_ae_s", "within_10min", "within_1h", "p90_coverage", "band_coverage")


def runtime_metrics(actual: np.ndarray, q: Quantiles) -> dict[str, float]:
    """MAE, median AE, mean accuracy min(r,p)/max(r,p), under-prediction share, coverages."""
    actual = np.asarray(actual, dtype=np.float64)
    err = np.abs(q.p50 - actual)
    safe = np.maximum(q.p50, 1e-9)
    accuracy = np.minimum(actual, safe) / np.maximum(actual, safe)
    return {
        "n": float(len(actual)),
        "mae_s": float(err.mean()) if len(err) else float("nan"),
        "median_ae_s": float(np.median(err)) if len(err) else float("nan"),
        "mean_accuracy": float(accuracy.mean()) if len(err) else float("nan"),
        "under_share": float((q.p50 < actual).mean()) if len(err) else float("nan"),
        **_coverage(actual, q),
    }


def wait_metrics(actual: np.ndarray, q: Quantiles) -> dict[str, float]:
    """MAE, median AE, share within ±10 min and ±1 h, coverages."""
    actual = np.asarray(actual, dtype=np.float64)
    err = np.abs(q.p50 - actual)
    empty = len(err) == 0
    return {
        "n": float(len(actual)),
        "mae_s": float("nan") if empty else float(err.mean()),
        "median_ae_s": float("nan") if empty else float(np.median(err)),
        "within_10min": float("nan") if empty else float((err <= 600).mean()),
        "within_1h": float("nan") if empty else float((err <= 3600).mean()),
        **_coverage(actual, q),
    }


def _coverage(actual: np.ndarray, q: Quantiles) -> dict[str, float]:
    if len(actual) == 0:
        return {"p90_coverage": float("nan"), "band_coverage": float("nan")}
    return {
        "p90_coverage": float((actual <= q.p90).mean()),
        "band_coverage": float(((actual >= q.p10) & (actual <= q.p90)).mean()),
    }


def _metric_fn(target: Target) -> Callable[[np.ndarray, Quantiles], dict[str, float]]:
    return runtime_metrics if target == "runtime_s" else wait_metrics


@dataclass(frozen=True)
class Evaluation:
    """Per-site metrics (one row per site × model) and the predictions behind them."""

    metrics: pl.DataFrame
    predictions: pl.DataFrame
    """site, job_id, submit_s, model, actual, p10, p50, p90: for plots and further cuts."""


def _sites(frame: pl.DataFrame, target: Target) -> Iterator[tuple[str, pl.DataFrame]]:
    known = frame.filter(pl.col(target).is_not_null() & pl.col("submit_s").is_not_null())
    for (site,), part in known.sort("submit_s", maintain_order=True).group_by("site", maintain_order=True):
        yield str(site), part


def _windows_split(part: pl.DataFrame, train_fraction: float) -> list[tuple[int, int, int]]:
    """(cut instant, first test row, end row) for the single chronological split."""
    first_test = int(train_fraction * part.height)
    if first_test <= 0 or first_test >= part.height:
        raise ValueError(f"train_fraction {train_fraction} leaves no training or no test jobs ({part.height} jobs)")
    return [(int(part["submit_s"][first_test]), first_test, part.height)]


def _windows_rolling(part: pl.DataFrame, start_fraction: float, every_s: int) -> list[tuple[int, int, int]]:
    submit = part["submit_s"].to_numpy()
    first = int(start_fraction * part.height)
    if first <= 0 or first >= part.height:
        raise ValueError(f"start_fraction {start_fraction} leaves no training or no test jobs ({part.height} jobs)")
    edges = np.arange(submit[first], submit[-1] + every_s, every_s)
    out = []
    for lo, hi in itertools.pairwise(edges):
        a, b = int(np.searchsorted(submit, lo, "left")), int(np.searchsorted(submit, hi, "left"))
        a = max(a, first)
        if b > a:
            out.append((int(lo), a, b))
    return out


def _run(
    frame: pl.DataFrame | pl.LazyFrame,
    models: Models,
    target: Target,
    windows: Callable[[pl.DataFrame], list[tuple[int, int, int]]],
    features: tuple[str, ...],
    progress: Progress | None,
) -> Evaluation:
    data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    parts = list(_sites(data, target))
    plan = [(site, part, windows(part)) for site, part in parts]
    total = sum(len(w) for _, _, w in plan) * max(len(models), 1)
    done = 0
    metric = _metric_fn(target)
    rows: list[dict[str, object]] = []
    preds: list[pl.DataFrame] = []
    for site, part, cuts in plan:
        chunks: dict[str, list[Quantiles]] = {name: [] for name in models}
        tested: list[pl.DataFrame] = []
        for cut_s, a, b in cuts:
            train = part[:a].filter(pl.col("end_s") < cut_s)
            test = part[a:b]
            tested.append(test)
            for name, template in models.items():
                if len(train) < 2:
                    raise ValueError(f"site {site}: fewer than 2 jobs had ended before {cut_s} to train on")
                model: Any = clone(template)
                model.fit(train.select(features), train[target].to_numpy())
                chunks[name].append(model.predict_quantiles(test.select(features)))
                done += 1
                if progress:
                    progress(done / total)
        test_all = pl.concat(tested)
        actual = test_all[target].to_numpy()
        for name, qs in chunks.items():
            q = Quantiles(*(np.concatenate([getattr(c, k) for c in qs]) for k in ("p10", "p50", "p90")))
            rows.append({"site": site, "model": name, **metric(actual, q)})
            preds.append(
                test_all.select("site", "job_id", "submit_s").with_columns(
                    pl.lit(name).alias("model"),
                    pl.Series("actual", actual),
                    pl.Series("p10", q.p10),
                    pl.Series("p50", q.p50),
                    pl.Series("p90", q.p90),
                )
            )
    empty = pl.DataFrame(schema={"site": pl.String, "model": pl.String})
    return Evaluation(pl.DataFrame(rows) if rows else empty, pl.concat(preds) if preds else empty)


def evaluate_split(
    frame: pl.DataFrame | pl.LazyFrame,
    models: Models,
    target: Target = "runtime_s",
    train_fraction: float = 0.7,
    features: tuple[str, ...] = FEATURES,
    progress: Progress | None = None,
) -> Evaluation:
    """Train on each site's first `train_fraction` of jobs (those that ended by then), test on the rest."""
    return _run(frame, models, target, lambda p: _windows_split(p, train_fraction), features, progress)


def evaluate_rolling(
    frame: pl.DataFrame | pl.LazyFrame,
    models: Models,
    target: Target = "runtime_s",
    start_fraction: float = 0.3,
    every_s: int = 30 * 86_400,
    features: tuple[str, ...] = FEATURES,
    progress: Progress | None = None,
) -> Evaluation:
    """Refit every `every_s` seconds on everything that ended before, predict the next window.

    The test period starts after each site's first `start_fraction` of jobs."""
    if every_s <= 0:
        raise ValueError(f"every_s must be positive, got {every_s}")
    return _run(frame, models, target, lambda p: _windows_rolling(p, start_fraction, every_s), features, progress)


def metrics_table(evaluation: Evaluation, target: Target = "runtime_s") -> pl.DataFrame:
    """The metrics in a fixed column order, sites in input order, models in the order given."""
    cols = RUNTIME_METRICS if target == "runtime_s" else WAIT_METRICS
    have = [c for c in cols if c in evaluation.metrics.columns]
    return evaluation.metrics.select("site", "model", *have)
