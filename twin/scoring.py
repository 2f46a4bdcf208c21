"""Closing the loop on predictions: keep the first prediction made for each job until what it
predicted is known, then keep the (prediction, outcome) pair. Forecast start times and learned
runtimes are both scored this way (twin.forecasting.ForecastTracker, twin.learned.RuntimeTracker).

Only the first prediction counts, so a page refreshing every few seconds does not weigh a job
more than once. Bounded per site: at most `max_open` waiting predictions (the oldest dropped
first) and the `max_scored` most recent pairs."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

__all__ = ["FirstPredictions"]


class FirstPredictions:
    def __init__(self, max_open: int, max_scored: int) -> None:
        self.max_open = max_open
        self.max_scored = max_scored
        self._open: dict[str, dict[str, float]] = {}
        self._scored: dict[str, deque[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def record(self, site: str, predictions: Iterable[tuple[str, float]]) -> None:
        """Keep each job's prediction unless one is already waiting for it."""
        with self._lock:
            open_ = self._open.setdefault(site, {})
            for job_id, predicted in predictions:
                open_.setdefault(job_id, predicted)
            while len(open_) > self.max_open:
                open_.pop(next(iter(open_)))

    def score(self, site: str, outcomes: Iterable[tuple[str, float]]) -> int:
        """Pair the waiting predictions of these jobs with their outcomes; returns how many."""
        n = 0
        with self._lock:
            open_ = self._open.get(site)
            if not open_:
                return 0
            scored = self._scored.setdefault(site, deque(maxlen=self.max_scored))
            for job_id, outcome in outcomes:
                predicted = open_.pop(job_id, None)
                if predicted is not None:
                    scored.append((predicted, outcome))
                    n += 1
        return n

    def pairs(self, site: str) -> list[tuple[float, float]]:
        """(prediction, outcome) of the most recently scored jobs, oldest first."""
        with self._lock:
            return list(self._scored.get(site, ()))
