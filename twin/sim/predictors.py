"""Runtime predictors: what the scheduler plans with (its backfilling decisions and reservations),
while jobs really run for their actual time (killed at the requested time).

One small interface, so that the learned models of `models/` plug in later:

- `Predictor.predict(job, history) -> seconds` is called once per job, when it is submitted (in a
  replay: at its submit instant, after the completions of that instant were recorded), and its
  answer is the job's initial prediction. The engine rounds it up to whole seconds and bounds it to
  [1, requested time]: planning past the kill time is pointless.
- `Predictor.observe(job)` is the completion hook (job.run_s is the completed run time), so an
  online predictor learns as the replay goes. The engine records the same completion in the
  `History` it passes to `predict` first.
- A predictor may also offer `predict_batch(jobs, history) -> RuntimePrediction` (a learned model
  scoring a feature matrix at once, optionally with p10/p90); `predict_all` uses it when present.
  Forecasts ask once for every running and pending job; a replay asks once per submit instant.

Built-ins: `RequestedTime` (the user estimate: plain EASY), `Clairvoyant` (the actual run time:
the perfect-prediction bound) and `Ave2` (Tsafrir, Etsion and Feitelson 2007: the average of the
user's last two completed run times, exactly as predictsim's `predictor_tsafrir`: integer floor of
the mean, capped at the requested time, the requested time while the user has fewer than two
completed jobs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from twin.sim.errors import SimInputError
from twin.sim.model import Job

__all__ = [
    "Ave2",
    "BatchPredictor",
    "Clairvoyant",
    "History",
    "Pinned",
    "Predictor",
    "RequestedTime",
    "RuntimePrediction",
    "predict_all",
]


class History:
    """Completed run times per user, newest last (the last `depth` of each user), plus counts.

    The engine owns one per simulation and records every completion before calling the
    predictor's hook; a forecast takes one built from the site's recent job history."""

    __slots__ = ("_completed", "_recent", "depth")

    def __init__(self, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"history depth must be >= 1, got {depth}")
        self.depth = depth
        self._recent: dict[str | None, deque[int]] = {}
        self._completed: dict[str | None, int] = {}

    def record(self, user: str | None, run_s: int) -> None:
        recent = self._recent.get(user)
        if recent is None:
            recent = self._recent[user] = deque(maxlen=self.depth)
        recent.append(run_s)
        self._completed[user] = self._completed.get(user, 0) + 1

    def recent(self, user: str | None) -> tuple[int, ...]:
        """The user's last completed run times, oldest first (at most `depth`)."""
        recent = self._recent.get(user)
        return tuple(recent) if recent is not None else ()

    def completed(self, user: str | None) -> int:
        return self._completed.get(user, 0)

    @classmethod
    def from_jobs(cls, completed: Sequence[Job], depth: int = 2) -> History:
        """From finished jobs given in completion order (run_s known)."""
        history = cls(depth)
        for job in completed:
            if job.run_s is not None:
                history.record(job.user, job.run_s)
        return history


@dataclass(frozen=True)
class RuntimePrediction:
    """Predicted run times in seconds, one per job asked about; optionally a p10-p90 band."""

    p50: np.ndarray
    p10: np.ndarray | None = None
    p90: np.ndarray | None = None


class Predictor(Protocol):
    def predict(self, job: Job, history: History) -> float:
        """Predicted run time of `job` in seconds (called once, when it is submitted)."""
        ...

    def observe(self, job: Job) -> None:
        """`job` completed after job.run_s seconds: an online predictor learns here."""
        ...


@runtime_checkable
class BatchPredictor(Protocol):
    def predict(self, job: Job, history: History) -> float: ...

    def observe(self, job: Job) -> None: ...

    def predict_batch(self, jobs: Sequence[Job], history: History) -> RuntimePrediction:
        """Predictions for many jobs at once, in the order given."""
        ...


def predict_all(predictor: Predictor, jobs: Sequence[Job], history: History) -> RuntimePrediction:
    """One call for many jobs: the predictor's batch method when it has one, else a loop."""
    if isinstance(predictor, BatchPredictor):
        out = predictor.predict_batch(jobs, history)
        if len(out.p50) != len(jobs):
            raise SimInputError(f"predictor answered {len(out.p50)} predictions for {len(jobs)} jobs")
        return out
    return RuntimePrediction(np.array([predictor.predict(job, history) for job in jobs], dtype=np.float64))


class Pinned:
    """`inner`'s run times, except that the jobs in `pinned` run exactly as long as it says: a
    what-if's placeholder (a drain holding cores for good) must not get a model's guess."""

    def __init__(self, inner: Predictor, pinned: Mapping[str, int]) -> None:
        self.inner = inner
        self.pinned = dict(pinned)
        self.name = getattr(inner, "name", type(inner).__name__)

    def predict(self, job: Job, history: History) -> float:
        if job.job_id in self.pinned:
            return float(self.pinned[job.job_id])
        return self.inner.predict(job, history)

    def observe(self, job: Job) -> None:
        self.inner.observe(job)

    def predict_batch(self, jobs: Sequence[Job], history: History) -> RuntimePrediction:
        out = predict_all(self.inner, jobs, history)
        at = [(i, float(self.pinned[j.job_id])) for i, j in enumerate(jobs) if j.job_id in self.pinned]
        if not at:
            return out
        arrays = [None if a is None else np.array(a, dtype=np.float64) for a in (out.p50, out.p10, out.p90)]
        for i, seconds in at:
            for a in arrays:
                if a is not None:
                    a[i] = seconds
        p50, p10, p90 = arrays
        assert p50 is not None
        return RuntimePrediction(p50, p10, p90)


def _requested(job: Job) -> int:
    if job.req_s is None:
        raise SimInputError(f"job {job.job_id}: no requested time to predict with")
    return job.req_s


class RequestedTime:
    """The user's estimate: what plain EASY plans with (and what Slurm's own estimate assumes)."""

    name = "reqtime"

    def predict(self, job: Job, history: History) -> float:
        return _requested(job)

    def observe(self, job: Job) -> None:
        pass


class Clairvoyant:
    """The actual run time: the bound a perfect predictor reaches (replays only)."""

    name = "clairvoyant"

    def predict(self, job: Job, history: History) -> float:
        if job.run_s is None:
            raise SimInputError(f"job {job.job_id}: clairvoyant prediction needs its actual run time")
        return job.run_s

    def observe(self, job: Job) -> None:
        pass


class Ave2:
    """Mean of the user's last two completed run times (Tsafrir, Etsion, Feitelson 2007).

    Integer floor of the mean, capped at the requested time; the requested time itself while
    the user has fewer than two completed jobs (as predictsim does; the paper falls back to the
    user estimate when there is no history)."""

    name = "ave2"

    def predict(self, job: Job, history: History) -> float:
        recent = history.recent(job.user)
        req = _requested(job)
        if len(recent) < 2:
            return req
        return min(req, (recent[-1] + recent[-2]) // 2)

    def observe(self, job: Job) -> None:
        pass
