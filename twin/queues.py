"""Queue forecasts of batch sites, from one cached base state per site that what-ifs and placement
advice reuse.

A site's `QueueBase` holds everything a forecast rests on: its active queue as last collected, the
CPUs in service, its finished jobs of the last `history_window_s` (read from the store once), the
runtime predictor (the learned model when one is loaded, else AVE2) and the forecast of the queue
itself, with where every job holds CPUs in each simulated future (`Forecast.occupancy`). It is
rebuilt only when the site's collector hands in a new queue, the capacity changes or another model
is loaded: the API, every open Dash tab, the forecast loop, what-ifs and advice share it.

Every forecast without hypothetical jobs is remembered for scoring: each pending job's first
predicted start (ForecastTracker) and its first learned runtime (RuntimeTracker), scored when the
job starts / ends (`observe`, a job observer of the live state).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import polars as pl

from telemetry.stores.base import Store
from twin.errors import InvalidJobError, NoBatchQueueError, NoModelError
from twin.forecasting import (
    Forecast,
    ForecastAccuracy,
    ForecastTracker,
    PredictorName,
    forecast_queue,
    history_of,
    predictor_for,
    queue_now_s,
)
from twin.learned import HypotheticalRuntimes, LearnedRuntime, RuntimeAccuracy, RuntimeTracker
from twin.sim import Job
from twin.sim.predictors import History, Pinned, Predictor
from twin.state import LiveState
from twin.topology import Topology
from twin.view import QueueForecast

__all__ = ["ModelSource", "PredictorChoice", "QueueBase", "QueueForecaster", "Scoreboard"]

log = logging.getLogger(__name__)

PredictorChoice = PredictorName | Literal["auto", "learned"]


class ModelSource(Protocol):
    """The hash-checked model registry (models.artifacts.ModelRegistry), or anything like it."""

    def current(self, kind: str) -> Any | None: ...


@dataclass
class QueueBase:
    """A batch site's forecast inputs and its forecast, as of one collected queue."""

    site: str
    queue: pl.DataFrame
    processors: int
    predictor_choice: PredictorChoice
    model: Any | None
    """The LoadedModel (artefact + card) forecasting runtimes, or None (AVE2 / requested times)."""
    finished: pl.DataFrame | None
    history: History
    forecast: Forecast
    built_wall_s: float
    """Wall time the base was built."""
    queue_seen_wall_s: float | None
    """Wall time the queue was handed in by the site's collector."""
    _learned: LearnedRuntime | None = None
    _hypothetical: HypotheticalRuntimes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def now_s(self) -> int:
        """The site's clock when its queue was read (trace time for a replayed site)."""
        return self.forecast.now_s

    def hypothetical(self) -> HypotheticalRuntimes | None:
        """The learned model's predictor for jobs not yet submitted here; built on first use (one
        pass over the site's history for every user) and kept with the base."""
        if self.model is None:
            return None
        with self._lock:
            if self._hypothetical is None:
                rows = _rows(self.finished, self.queue)
                self._hypothetical = HypotheticalRuntimes(_estimator(self.model), rows, self.site, self.now_s)
            return self._hypothetical


@dataclass
class Scoreboard:
    """The forecasts' and the learned runtimes' past accuracy, per site: a job observer of the
    live state (jobs seen starting / ending score the predictions made for them)."""

    forecasts: ForecastTracker = field(default_factory=ForecastTracker)
    runtimes: RuntimeTracker = field(default_factory=RuntimeTracker)

    def observe(self, site: str, rows: pl.DataFrame) -> None:
        self.forecasts.observe(site, rows)
        self.runtimes.observe(site, rows)

    def accuracy(self, site: str) -> tuple[ForecastAccuracy, RuntimeAccuracy]:
        return self.forecasts.accuracy(site), self.runtimes.accuracy(site)


class QueueForecaster:
    def __init__(
        self,
        topology: Topology,
        state: LiveState,
        store: Store | None,
        models: ModelSource | None = None,
        *,
        scores: Scoreboard | None = None,
        clock: Callable[[], float] = time.time,
        history_window_s: int = 30 * 86400,
        background_refresh: bool = False,
    ) -> None:
        """`scores` must be a job observer of `state` for the accuracy to move (build_twin wires it).
        `background_refresh`: when a site's queue changes, keep answering from its previous base
        while a thread builds the new one (the service: a request never waits for a rebuild,
        the forecast of thousands of jobs and the model's history pass); off, the first caller
        after a change builds it (tests, benchmarks: every answer reflects the latest queue)."""
        self.topology = topology
        self.state = state
        self.store = store
        self.models = models
        self.scores = scores or Scoreboard()
        self.forecasts = self.scores.forecasts
        self.runtimes = self.scores.runtimes
        self.clock = clock
        self.history_window_s = history_window_s
        self._bases: dict[tuple[str, PredictorChoice], QueueBase] = {}
        self._lock = threading.Lock()
        self.background_refresh = background_refresh
        self._rebuilding: set[tuple[str, PredictorChoice]] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False

    # ------------------------------------------------------------------ the base
    def runtime_model(self) -> Any | None:
        return self.models.current("runtime") if self.models is not None else None

    def base(self, site: str, predictor: PredictorChoice = "auto") -> QueueBase:
        """The site's cached base state (rebuilt when its queue, capacity or model changed).
        UnknownSiteError; NoBatchQueueError: no batch queue state there (yet); NoModelError."""
        processors = self.state.cpus_in_service(site)
        unknown = self.state.capacity_unknown(site) if processors is None else []
        if unknown:
            raise NoBatchQueueError(
                f"site {site!r}: capacity unknown: interLink virtual node(s) {', '.join(unknown)} report no cpu or"
                " memory (ctwin_kube_virtual_node_capacity_missing); nothing is forecast until they do"
            )
        if processors is None:
            raise NoBatchQueueError(f"site {site!r} has no batch scheduler state (yet): nothing to forecast")
        if processors < 1:
            raise NoBatchQueueError(f"site {site!r} has no CPUs in service: nothing can be forecast")
        loaded = self.runtime_model() if predictor in ("auto", "learned") else None
        if predictor == "learned" and loaded is None:
            raise NoModelError("no learned runtime model is loaded: train one with `ctwin train` into the models dir")
        queue = self.state.queue(site)
        key = (site, predictor)
        cached = self._bases.get(key)
        if cached is not None and cached.queue is queue and cached.model is loaded and cached.processors == processors:
            return cached
        if cached is not None and self.background_refresh and cached.model is loaded:
            with self._lock:
                start = key not in self._rebuilding and not self._closed
                if start:
                    self._rebuilding.add(key)
                    thread = threading.Thread(target=self._refresh, args=(key,), name=f"base-{site}", daemon=True)
                    self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                    thread.start()
            return cached  # the previous queue's base until the new one is ready: its ages say how old
        base = self._build(site, predictor, queue, processors, loaded)
        with self._lock:
            self._bases[key] = base
        return base

    def close(self, timeout_s: float = 30.0) -> None:
        """Start no more background rebuilds and wait for the running ones (before the store
        they read closes)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _refresh(self, key: tuple[str, PredictorChoice]) -> None:
        """Build the site's base from its latest state off the request path (and the learned
        model's hypothetical-job contexts with it); a failure drops the old base, so the next
        caller builds inline and sees the error."""
        site, predictor = key
        try:
            processors = self.state.cpus_in_service(site)
            loaded = self.runtime_model() if predictor in ("auto", "learned") else None
            if processors is None or processors < 1:
                raise NoBatchQueueError(f"site {site!r} has no CPUs in service")
            base = self._build(site, predictor, self.state.queue(site), processors, loaded)
            base.hypothetical()
            with self._lock:
                self._bases[key] = base
        except Exception:
            log.exception("rebuilding the queue base of %s failed; the next request builds it", site)
            with self._lock:
                self._bases.pop(key, None)
        finally:
            with self._lock:
                self._rebuilding.discard(key)

    def _build(
        self, site: str, predictor: PredictorChoice, queue: pl.DataFrame, processors: int, loaded: Any | None
    ) -> QueueBase:
        now = queue_now_s(queue, self.clock())
        finished = None
        if self.store is not None and predictor != "requested":
            past = self.store.jobs(site=site, submitted_from_s=now - self.history_window_s, submitted_to_s=now)
            finished = past.filter(pl.col("end_s").is_not_null() & (pl.col("end_s") <= now))
        base = QueueBase(
            site=site,
            queue=queue,
            processors=processors,
            predictor_choice=predictor,
            model=loaded,
            finished=finished,
            history=history_of(finished, now) if finished is not None else History(),
            forecast=None,  # type: ignore[arg-type]  # set below, once the predictor exists
            built_wall_s=self.clock(),
            queue_seen_wall_s=self.state.queue_seen_s(site),
        )
        if loaded is not None:
            base._learned = LearnedRuntime(_estimator(loaded), _rows(finished, queue), hypothetical=base.hypothetical)
        result = self._run(site, base, _predictor(base), ())
        if base._learned is not None:
            ids = queue["job_id"].cast(pl.String).to_list()
            learned = base._learned
            self.runtimes.record(site, {i: p for i in ids if (p := learned.p50(i)) is not None})
        self.forecasts.record(result)
        base.forecast = result
        return base

    def _run(self, site: str, base: QueueBase, chosen: PredictorName | Predictor, extra: Sequence[Job]) -> Forecast:
        try:
            result = forecast_queue(
                base.queue, base.processors, site, predictor=chosen, finished=base.finished, extra=extra
            )
        except ValueError as exc:
            raise InvalidJobError(str(exc)) from None
        if base.model is not None:
            card = getattr(base.model, "card", None)
            result = replace(result, predictor=f"learned ({getattr(card, 'artefact', 'model')})")
        return result

    # ------------------------------------------------------------------ forecasts
    def forecast(
        self, site: str, predictor: PredictorChoice | Predictor = "auto", extra: list[Job] | None = None
    ) -> Forecast:
        """Forecast the site's queue from its last collected state (see twin.forecasting). `auto`:
        the learned runtime model when one is loaded, else AVE2. Hypothetical `extra` jobs are
        simulated on the cached base (its history and predictions), and not recorded for scoring."""
        if not isinstance(predictor, str):  # a caller's own predictor: no cache, no scoring
            base = self.base(site, "ave2")
            return self._run(site, base, predictor, extra or ())
        base = self.base(site, predictor)
        if not extra:
            return base.forecast
        return self._run(site, base, _predictor(base), extra)

    def rerun(
        self, base: QueueBase, queue: pl.DataFrame, processors: int, pinned: Mapping[str, int] | None = None
    ) -> QueueBase:
        """A copy of `base` with another queue and capacity, forecast by the same simulator and
        predictor as the base: what-ifs (twin.whatif). `pinned`: jobs whose run time is given,
        not predicted. Neither cached nor recorded for scoring, so live forecasts and their
        accuracy never see a hypothetical queue."""
        copy = replace(base, queue=queue, processors=processors, _lock=threading.Lock())
        chosen = _predictor(base)
        if pinned:
            chosen = Pinned(predictor_for(chosen) if isinstance(chosen, str) else chosen, pinned)
        copy.forecast = self._run(base.site, copy, chosen, ())
        return copy

    def accuracy(self, site: str) -> tuple[ForecastAccuracy, RuntimeAccuracy]:
        return self.scores.accuracy(site)

    def queue_forecast(self, site: str, predictor: PredictorChoice = "auto") -> QueueForecast:
        """`forecast` and the trackers' past accuracy as one plain value (twin.view), so the Dash
        page needs no simulator types."""
        result = self.forecast(site, predictor)
        accuracy, runtimes = self.accuracy(site)
        return QueueForecast(
            site=result.site,
            now_s=result.now_s,
            processors=result.processors,
            predictor=result.predictor,
            jobs=result.jobs.filter(~pl.col("hypothetical")),
            corrections=dict(result.corrections),
            seconds=result.seconds,
            scored=accuracy.scored,
            within_1min=accuracy.within_1min,
            within_10min=accuracy.within_10min,
            within_1h=accuracy.within_1h,
            median_abs_error_s=accuracy.median_abs_error_s,
            recent_errors_s=accuracy.errors_s,
            runtime_scored=runtimes.scored,
            runtime_mean_accuracy=runtimes.mean_accuracy,
            runtime_mae_s=runtimes.mae_s,
        )


def _predictor(base: QueueBase) -> PredictorName | Predictor:
    """What forecasts the base's queue: its learned model when it has one, else the chosen rule
    (AVE2 for "auto")."""
    if base._learned is not None:
        return base._learned
    return "ave2" if base.predictor_choice in ("auto", "learned") else base.predictor_choice  # type: ignore[return-value]


def _estimator(loaded: Any) -> Any:
    return getattr(loaded, "model", loaded)


def _rows(finished: pl.DataFrame | None, queue: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([finished, queue], how="vertical_relaxed") if finished is not None else queue
