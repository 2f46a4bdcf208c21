"""The live twin: its parts, and the one read interface (twin.view.TwinReader) over them.

    LiveState      the pipeline sink: the latest snapshot and every site's queue (twin.state)
    Health         how fresh each collector and site is (twin.health)
    CurrentViews   sites, nodes, containers, links from the snapshot, no I/O (twin.current)
    StoreHistory   hosts and sites over time, downsampled in the store (twin.history)
    QueueForecaster batch queues simulated forward from a cached base per site (twin.queues)

`build_twin` is the one place they are wired, each given what it needs at construction; the
service composes it (service/compose.py), tests and benchmarks call it directly. `Twin` only
delegates, so a reader that needs one part (the API's latest-value cache) can take that part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from telemetry.stores.base import Store
from twin.current import CurrentViews
from twin.forecasting import Forecast
from twin.health import Health, HealthSource
from twin.history import StoreHistory
from twin.queues import ModelSource, PredictorChoice, QueueForecaster, Scoreboard
from twin.sim import Job
from twin.sim.predictors import Predictor
from twin.state import WATCHED, JobObserver, LiveState, Point, Snapshot
from twin.topology import Topology
from twin.view import ContainerView, LinkView, NodeView, QueueForecast, SiteView

__all__ = ["WATCHED", "Point", "Snapshot", "Twin", "build_twin"]


@dataclass(frozen=True)
class Twin:
    """Implements twin.view.TwinReader; `state` is the pipeline sink."""

    topology: Topology
    state: LiveState
    health: Health
    current: CurrentViews
    history: StoreHistory
    queues: QueueForecaster
    clock: Callable[[], float]

    # -------------------------------------------------------------- current values
    def sites(self) -> list[SiteView]:
        return self.current.sites()

    def site(self, name: str) -> SiteView:
        return self.current.site(name)

    def nodes(self, site: str | None = None) -> list[NodeView]:
        return self.current.nodes(site)

    def containers(self, site: str | None = None) -> list[ContainerView]:
        return self.current.containers(site)

    def links(self) -> list[LinkView]:
        return self.current.links()

    def queue(self, site: str) -> pl.DataFrame:
        return self.state.queue(site)

    # -------------------------------------------------------------- history
    def node_history(
        self, site: str, hosts: list[str] | None, start_s: float, end_s: float, max_points: int = 2000
    ) -> pl.DataFrame:
        return self.history.node_history(site, hosts, start_s, end_s, max_points)

    def host_series(
        self, site: str, host: str, metrics: tuple[str, ...], start_s: float, end_s: float, max_points: int = 500
    ) -> pl.DataFrame:
        return self.history.host_series(site, host, metrics, start_s, end_s, max_points)

    def node_history_band(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        return self.history.node_history_band(site, start_s, end_s, max_points)

    def site_history(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        return self.history.site_history(site, start_s, end_s, max_points)

    # -------------------------------------------------------------- forecasts
    def forecast(
        self, site: str, predictor: PredictorChoice | Predictor = "auto", extra: list[Job] | None = None
    ) -> Forecast:
        return self.queues.forecast(site, predictor, extra)

    def queue_forecast(self, site: str, predictor: PredictorChoice = "auto") -> QueueForecast:
        return self.queues.queue_forecast(site, predictor)


def build_twin(
    topology: Topology,
    store: Store | None = None,
    health: HealthSource | None = None,
    models: ModelSource | None = None,
    *,
    job_observers: Sequence[JobObserver] = (),
    clock: Callable[[], float] = time.time,
    stale_after_intervals: float = 3.0,
    background_refresh: bool = False,
) -> Twin:
    """The twin's parts, wired: `store` for history and the users' finished jobs (None: no
    history), `health` the collectors' stats (None: every collected site `starting`), `models` the learned
    model registry (None: AVE2); `job_observers` see every hand-over of job rows after the twin's
    own scoreboard (the advice log joins outcomes there)."""
    scores = Scoreboard()
    state = LiveState(topology, job_observers=(scores.observe, *job_observers), clock=clock)
    queues = QueueForecaster(
        topology, state, store, models, scores=scores, clock=clock, background_refresh=background_refresh
    )
    checked = Health(topology, health, stale_after_intervals=stale_after_intervals)
    return Twin(
        topology=topology,
        state=state,
        health=checked,
        current=CurrentViews(topology, state, checked, clock),
        history=StoreHistory(topology, store),
        queues=queues,
        clock=clock,
    )
