"""Predictions for job-history rows, for callers that hold rows rather than features (the queue
simulator, the recommendation path): features are built from the rows given, so each job is
predicted from the history up to its own submit instant, and nothing else."""

from __future__ import annotations

from typing import Any

import polars as pl

from models.estimators import Quantiles
from models.features import FEATURES, collect_features

__all__ = ["predict_history"]


def predict_history(model: Any, history: pl.LazyFrame | pl.DataFrame) -> Quantiles:
    """(p10, p50, p90) seconds for every row of `history` (JOB_SCHEMA), in row order.

    Pass the jobs to predict together with the history before them: rows of running and
    finished jobs give the user's history and the site's queue and load at each submit."""
    features = collect_features(history).select(FEATURES)
    return model.predict_quantiles(features)
