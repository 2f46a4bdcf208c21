"""The learned runtime model inside the twin: a `twin.sim` predictor, and the loop that checks it.

- `LearnedRuntime` scores every job of a forecast in one batch (models.serving.predict_history)
  from the site's job-history rows: its finished jobs and the active queue, so each job's features
  see only what came before its own submit. A job the rows do not hold (a what-if job) falls back
  to AVE2.
- `RuntimeTracker` closes the loop: the first runtime prediction made for each job is kept, and
  scored once the job's real runtime is known (its final job-history row); the running accuracy
  per site is what `/metrics` and the Dash twin show, so drift is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from twin.scoring import FirstPredictions
from twin.sim.model import Job
from twin.sim.predictors import Ave2, History, RuntimePrediction

__all__ = ["LearnedRuntime", "RuntimeAccuracy", "RuntimeTracker"]


class LearnedRuntime:
    """Predictions of a learned model for the jobs of `rows` (JOB_SCHEMA), by job id."""

    def __init__(self, model: Any, rows: pl.DataFrame, name: str = "learned") -> None:
        self.name = name
        self._fallback = Ave2()
        self._by_id: dict[str, tuple[float, float, float]] = {}
        if rows.height:
            from models.serving import predict_history  # scikit-learn loads only when a model is used

            q = predict_history(model, rows)
            ids = rows["job_id"].cast(pl.String).to_list()
            self._by_id = {
                i: (float(a), float(b), float(c)) for i, a, b, c in zip(ids, q.p10, q.p50, q.p90, strict=True)
            }

    def predict(self, job: Job, history: History) -> float:
        known = self._by_id.get(job.job_id)
        return known[1] if known is not None else self._fallback.predict(job, history)

    def observe(self, job: Job) -> None:
        """A forecast does not learn while it runs."""

    def predict_batch(self, jobs: Sequence[Job], history: History) -> RuntimePrediction:
        rows = [self._by_id.get(j.job_id) for j in jobs]
        fallback = [self._fallback.predict(j, history) for j, r in zip(jobs, rows, strict=True) if r is None]
        it = iter(fallback)
        full = [r if r is not None else (f := next(it), f, f) for r in rows]
        arr = np.array(full, dtype=np.float64).reshape(len(jobs), 3)
        return RuntimePrediction(p50=arr[:, 1], p10=arr[:, 0], p90=arr[:, 2])

    def p50(self, job_id: str) -> float | None:
        known = self._by_id.get(job_id)
        return known[1] if known is not None else None


@dataclass(frozen=True)
class RuntimeAccuracy:
    site: str
    scored: int
    mean_accuracy: float | None
    """mean of min(actual, predicted) / max(actual, predicted): 1 is perfect."""
    mae_s: float | None
    under_share: float | None
    """Share of jobs that ran longer than predicted."""


class RuntimeTracker:
    """First runtime prediction per job, scored when the job ends (see twin.scoring)."""

    def __init__(self, max_open: int = 100_000, max_scored: int = 5_000) -> None:
        self._log = FirstPredictions(max_open, max_scored)

    def record(self, site: str, predictions: dict[str, float]) -> None:
        self._log.record(site, predictions.items())

    def observe(self, site: str, jobs: pl.DataFrame) -> int:
        """Score the open predictions of jobs that have ended; returns how many."""
        done = jobs.filter(
            pl.col("start_s").is_not_null() & pl.col("end_s").is_not_null() & (pl.col("end_s") >= pl.col("start_s"))
        ).select(pl.col("job_id").cast(pl.String), (pl.col("end_s") - pl.col("start_s")).cast(pl.Float64))
        return self._log.score(site, done.iter_rows())

    def accuracy(self, site: str) -> RuntimeAccuracy:
        pairs = self._log.pairs(site)
        if not pairs:
            return RuntimeAccuracy(site, 0, None, None, None)
        p = np.array([a for a, _ in pairs])
        r = np.array([b for _, b in pairs])
        hi = np.maximum(p, r)
        acc = np.where(hi > 0, np.minimum(p, r) / np.where(hi > 0, hi, 1), 1.0)
        return RuntimeAccuracy(site, len(pairs), float(acc.mean()), float(np.abs(p - r).mean()), float((r > p).mean()))
