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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from telemetry.jobs import conform_jobs
from twin.scoring import FirstPredictions
from twin.sim.model import Job
from twin.sim.predictors import Ave2, History, RuntimePrediction

__all__ = ["HypotheticalRuntimes", "LearnedRuntime", "RuntimeAccuracy", "RuntimeTracker", "requests_of"]


class HypotheticalRuntimes:
    """The learned model's runtime quantiles for jobs not yet submitted to one site, as of `now_s`.

    Each user's history features (and the site's state) are computed once, for every user the
    rows know plus a user with no history (models.features.context_at); a request adds only its
    own features (models.features.features_for), so asking costs a feature row and a predict."""

    def __init__(self, model: Any, rows: pl.DataFrame, site: str, now_s: int) -> None:
        from models.features import CONTEXT_FEATURES, context_at  # the features load only with a model

        self.model = model
        self.site = site
        self.now_s = now_s
        users = rows["user"].drop_nulls().unique().sort().to_list() if rows.height else []
        probes = pl.DataFrame(
            {"site": [site] * (len(users) + 1), "user": [*users, None], "submit_s": [now_s] * (len(users) + 1)},
            schema={"site": pl.String, "user": pl.String, "submit_s": pl.Int64},
        )
        self._contexts = context_at(rows, probes)
        self._matrix = self._contexts.select(CONTEXT_FEATURES).cast(pl.Float64).to_numpy()
        self._row_of = {user: i for i, user in enumerate(users)}
        self._new_user = len(users)
        self.memo: dict[tuple[Any, ...], tuple[float, float, float]] = {}
        """(p10, p50, p90) by request key (twin.advice.runtimes): the same request asked again
        of this site at this instant has the same features, so the same prediction."""

    def knows(self, user: str | None) -> bool:
        return user in self._row_of

    def _index(self, users: Sequence[str | None]) -> list[int]:
        return [self._row_of.get(u, self._new_user) if u is not None else self._new_user for u in users]

    def contexts(self, users: Sequence[str | None]) -> pl.DataFrame:
        """One context row per user (a user the rows do not know gets the no-history row)."""
        return self._contexts[self._index(users)]

    def context_matrix(self, users: Sequence[str | None]) -> np.ndarray:
        """`contexts(users)` as a float matrix in CONTEXT_FEATURES order (a gather, no frame)."""
        return self._matrix[self._index(users)]

    def predict(self, requests: pl.DataFrame) -> RuntimePrediction:
        """p10 / p50 / p90 seconds for job-history rows of jobs submitted now (user, request)."""
        from models.features import features_for

        stamped = requests.with_columns(pl.lit(self.site).alias("site"), pl.lit(self.now_s).alias("submit_s"))
        features = features_for(stamped, self.contexts(stamped["user"].to_list()))
        p10, p50, p90 = (np.asarray(a, dtype=np.float64) for a in self.model.predict_quantiles(features))
        return RuntimePrediction(p50=p50, p10=p10, p90=p90)


class LearnedRuntime:
    """Predictions of a learned model for the jobs of `rows` (JOB_SCHEMA), by job id; jobs the
    rows do not hold (what-if jobs) from `hypothetical()` when given, else AVE2."""

    def __init__(
        self,
        model: Any,
        rows: pl.DataFrame,
        name: str = "learned",
        hypothetical: Callable[[], HypotheticalRuntimes | None] | None = None,
    ) -> None:
        self.name = name
        self.hypothetical = hypothetical
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
        return float(self.predict_batch([job], history).p50[0])

    def observe(self, job: Job) -> None:
        """A forecast does not learn while it runs."""

    def predict_batch(self, jobs: Sequence[Job], history: History) -> RuntimePrediction:
        rows = [self._by_id.get(j.job_id) for j in jobs]
        unknown = [j for j, r in zip(jobs, rows, strict=True) if r is None]
        hypothetical = self.hypothetical() if unknown and self.hypothetical is not None else None
        guesses: list[tuple[float, float, float]]
        if hypothetical is not None:
            q = hypothetical.predict(requests_of(unknown))
            assert q.p10 is not None and q.p90 is not None
            guesses = list(zip(q.p10.tolist(), q.p50.tolist(), q.p90.tolist(), strict=True))
        else:
            guesses = [(f, f, f) for f in (self._fallback.predict(j, history) for j in unknown)]
        guessed = iter(guesses)
        full = [r if r is not None else next(guessed) for r in rows]
        arr = np.array(full, dtype=np.float64).reshape(len(jobs), 3)
        return RuntimePrediction(p50=arr[:, 1], p10=arr[:, 0], p90=arr[:, 2])

    def p50(self, job_id: str) -> float | None:
        known = self._by_id.get(job_id)
        return known[1] if known is not None else None


def requests_of(jobs: Sequence[Job]) -> pl.DataFrame:
    """Simulator jobs as the job-history rows a model reads (their user and request)."""
    return conform_jobs(
        pl.DataFrame(
            {
                "job_id": [j.job_id for j in jobs],
                "user": [j.user for j in jobs],
                "partition": [j.partition for j in jobs],
                "req_walltime_s": [j.req_s for j in jobs],
                "req_cores": [j.procs for j in jobs],
                "req_nodes": [j.nodes for j in jobs],
                "state": ["PENDING"] * len(jobs),
            },
            schema={
                "job_id": pl.String,
                "user": pl.String,
                "partition": pl.String,
                "req_walltime_s": pl.Int64,
                "req_cores": pl.Int64,
                "req_nodes": pl.Int64,
                "state": pl.String,
            },
        )
    ).collect()


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
