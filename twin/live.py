"""The live twin: the latest state of every site, folded from the pipeline's batches.

Why this shape (ARCHITECTURE.md, data flow 3-4):
- The twin is a pipeline sink. Each batch is folded into a new immutable `Snapshot` that replaces
  the old one in a single reference assignment, so readers (API, `/metrics`, Dash) never lock,
  never see half a batch, and never do I/O for current values.
- Only the families the views need are kept (`WATCHED`), with the previous value of each series,
  so counters become rates without a store query.
- Derived per-host and per-site indexes are computed once per snapshot version and cached; the
  views add only the clock (data age), so a thousand-node answer costs a dictionary walk.
- History (`*_history`) reads the store with server-side downsampling: at most `max_points`
  buckets per series, whatever the range.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import polars as pl

from telemetry.catalog import batch as bm
from telemetry.catalog import container as cm
from telemetry.catalog import network as netm
from telemetry.catalog import node as nm
from telemetry.jobs import empty_jobs
from telemetry.pipeline import CollectorStats
from telemetry.schema import Batch
from telemetry.stores.base import Selection, Store
from twin.forecasting import Forecast, ForecastTracker, PredictorName, forecast_queue
from twin.learned import LearnedRuntime, RuntimeTracker
from twin.sim import Job
from twin.sim.predictors import Predictor
from twin.topology import SiteSpec, Topology
from twin.view import Aging, CollectorHealth, ContainerView, LinkView, NodeView, QueueForecast, SiteView, State

__all__ = ["WATCHED", "LiveTwin", "Point", "Snapshot"]

HOST_METRICS = (
    nm.CPU_COUNT.name,
    nm.CPU_BUSY_RATIO.name,
    nm.LOAD1.name,
    nm.MEM_TOTAL.name,
    nm.MEM_AVAILABLE.name,
    nm.MEM_USED_RATIO.name,
)
CONTAINER_METRICS = (cm.CPU_USAGE.name, cm.MEM_USAGE.name, cm.MEM_LIMIT.name)
LINK_METRICS = (netm.NET_RX_BYTES.name, netm.NET_TX_BYTES.name)
BATCH_METRICS = (
    bm.NODES.name,
    bm.CPUS.name,
    bm.JOBS.name,
    bm.JOBS_CPUS.name,
    bm.MEMORY.name,
    bm.REPLAY_TIME.name,
)
WATCHED: frozenset[str] = frozenset((*HOST_METRICS, *CONTAINER_METRICS, *LINK_METRICS, *BATCH_METRICS))
"""The families the twin keeps current; everything else is only in the store."""

ACTIVE_STATES = ("PENDING", "RUNNING")
_HOST_HISTORY = {nm.CPU_BUSY_RATIO.name: "cpu_util", nm.MEM_USED_RATIO.name: "mem_used_frac"}
"""The per-host series the history views draw, and the column each becomes."""
HealthSource = Callable[[], Mapping[str, CollectorStats]]


@dataclass(frozen=True, slots=True)
class Point:
    value: float
    ts_ns: int
    prev_value: float | None = None
    prev_ts_ns: int | None = None

    def rate(self) -> float | None:
        """Per-second increase since the previous sample; None across a counter reset."""
        if self.prev_value is None or self.prev_ts_ns is None or self.ts_ns <= self.prev_ts_ns:
            return None
        delta = self.value - self.prev_value
        return None if delta < 0 else delta / ((self.ts_ns - self.prev_ts_ns) / 1e9)


@dataclass(frozen=True)
class Snapshot:
    """Immutable: replaced, never changed. `points` maps (metric, canonical labels) to the latest point."""

    version: int = 0
    points: Mapping[tuple[str, str], Point] = field(default_factory=dict)
    jobs: Mapping[str, pl.DataFrame] = field(default_factory=dict)


@dataclass
class _Index:
    """Per-snapshot derived lookups (built lazily, once per version)."""

    hosts: dict[tuple[str, str], dict[str, Point]]
    containers: dict[tuple[str, str, str], dict[str, Point]]
    batch: dict[str, list[tuple[str, Mapping[str, str], Point]]]
    interfaces: dict[str, dict[str, Point]]  # device -> metric -> point (summed over hosts is not meaningful)


class LiveTwin:
    """Implements twin.view.TwinReader; is a pipeline Sink (`write`, `write_jobs`)."""

    def __init__(
        self,
        topology: Topology,
        store: Store | None = None,
        health: HealthSource | None = None,
        *,
        clock: Callable[[], float] = time.time,
        stale_after_intervals: float = 3.0,
    ) -> None:
        self.topology = topology
        self.store = store
        self.health = health or dict
        self.clock = clock
        self.stale_after_intervals = stale_after_intervals
        self._snapshot = Snapshot()
        self._labels: dict[str, dict[str, str]] = {}
        self._write_lock = threading.Lock()
        self._index_cache: tuple[int, _Index] | None = None
        self._rows_cache: tuple[int, list[Aging[NodeView]], list[Aging[ContainerView]]] | None = None
        self._site_of = topology.collector_site()
        self.forecasts = ForecastTracker()
        self._forecast_cache: dict[str, tuple[tuple[object, ...], Forecast]] = {}
        self.runtimes = RuntimeTracker()
        self.runtime_model: Callable[[], Any | None] = lambda: None
        """The learned runtime model to forecast with (the service wires its model registry here)."""

    # ------------------------------------------------------------------ sink
    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def write(self, batch: Batch) -> None:
        frame = batch.frame.filter(pl.col("metric").is_in(list(WATCHED)))
        if frame.is_empty():
            return
        frame = frame.sort("ts_ns").unique(subset=["metric", "labels"], keep="last", maintain_order=True)
        with self._write_lock:
            old = self._snapshot
            points = dict(old.points)
            for metric, labels, value, ts_ns in frame.select("metric", "labels", "value", "ts_ns").iter_rows():
                key = (metric, labels)
                prev = points.get(key)
                if prev is not None and ts_ns <= prev.ts_ns:
                    continue  # late or repeated sample: the snapshot only moves forward
                if labels not in self._labels:
                    self._labels[labels] = json.loads(labels)
                points[key] = Point(value, ts_ns, prev.value if prev else None, prev.ts_ns if prev else None)
            self._snapshot = Snapshot(old.version + 1, points, old.jobs)

    def write_jobs(self, jobs: pl.DataFrame) -> None:
        """Keep each site's active queue (pending and running jobs) as its collector last saw it."""
        active = jobs.filter(pl.col("state").is_in(ACTIVE_STATES))
        with self._write_lock:
            old = self._snapshot
            updated = dict(old.jobs)
            sites = jobs["site"].drop_nulls().unique().to_list()
            for site in sites:
                updated[site] = active.filter(pl.col("site") == site)
            self._snapshot = Snapshot(old.version + 1, old.points, updated)
        for site in sites:  # jobs seen starting (ending) score the forecasts (runtimes) made for them
            rows = jobs.filter(pl.col("site") == site)
            self.forecasts.observe(site, rows)
            self.runtimes.observe(site, rows)

    def cpus_in_service(self, site: str) -> int | None:
        """A batch site's CPUs that can run jobs (allocated + idle; not down or drained); None for a
        site without a batch scheduler."""
        self.topology.site(site)
        cpus = [
            p.value
            for m, labels, p in self._index().batch.get(site, [])
            if m == bm.CPUS.name and labels.get("state") != "other"
        ]
        return round(sum(cpus)) if cpus else None

    def forecast(
        self,
        site: str,
        predictor: PredictorName | Literal["auto", "learned"] | Predictor = "auto",
        extra: list[Job] | None = None,
        history_window_s: int = 30 * 86400,
    ) -> Forecast:
        """Forecast the site's queue from its last collected state (see twin.forecasting). `auto`:
        the learned runtime model when one is loaded, else AVE2. A forecast without hypothetical
        jobs is remembered, and its runtime predictions too, to be scored when the jobs start / end.
        KeyError: unknown site; LookupError: no batch queue there (yet), or no learned model."""
        processors = self.cpus_in_service(site)
        if processors is None:
            raise LookupError(f"site {site!r} has no batch scheduler state (yet): nothing to forecast")
        loaded = self.runtime_model() if predictor in ("auto", "learned") else None
        if predictor == "learned" and loaded is None:
            raise LookupError("no learned runtime model is loaded: train one with `ctwin train` into the models dir")
        queue = self.queue(site)
        # The same queue, capacity and model give the same forecast: the API, every open Dash tab
        # and the forecast loop share one until the site's collector reports a new queue.
        inputs = (queue, loaded, processors, predictor)
        cached = self._forecast_cache.get(site) if not extra else None
        if cached is not None:
            (c_queue, c_loaded, c_processors, c_predictor), hit = cached
            if c_queue is queue and c_loaded is loaded and (c_processors, c_predictor) == (processors, predictor):
                return hit
        finished = None
        if self.store is not None and predictor != "requested":
            observed = queue["observed_s"].drop_nulls().to_list()
            now = int(max(observed)) if observed else int(self.clock())
            past = self.store.jobs(site=site, submitted_from_s=now - history_window_s, submitted_to_s=now)
            finished = past.filter(pl.col("end_s").is_not_null() & (pl.col("end_s") <= now))
        chosen: PredictorName | Predictor
        learned: LearnedRuntime | None = None
        if loaded is not None:
            rows = pl.concat([finished, queue], how="vertical_relaxed") if finished is not None else queue
            learned = LearnedRuntime(getattr(loaded, "model", loaded), rows)
            chosen = learned
        else:
            chosen = "ave2" if predictor == "auto" else predictor  # type: ignore[assignment]
        result = forecast_queue(queue, processors, site, predictor=chosen, finished=finished, extra=extra or ())
        if learned is not None:
            card = getattr(loaded, "card", None)
            result = replace(result, predictor=f"learned ({getattr(card, 'artefact', 'model')})")
        if not extra:
            self.forecasts.record(result)
            if learned is not None:
                ids = queue["job_id"].cast(pl.String).to_list()
                self.runtimes.record(site, {i: p for i in ids if (p := learned.p50(i)) is not None})
            self._forecast_cache[site] = (inputs, result)
        return result

    def queue_forecast(
        self, site: str, predictor: PredictorName | Literal["auto", "learned"] = "auto"
    ) -> QueueForecast:
        """`forecast` and the tracker's past accuracy as one plain value (twin.view), so the Dash
        page needs no simulator types. Recorded for scoring like any forecast without hypothetical
        jobs; a page left open does not skew the score, as only a job's first forecast is kept.
        KeyError: unknown site; LookupError: no batch queue there (yet)."""
        result = self.forecast(site, predictor)
        accuracy = self.forecasts.accuracy(site)
        runtimes = self.runtimes.accuracy(site)
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

    def queue(self, site: str) -> pl.DataFrame:
        """Pending and running jobs of a batch site as last collected (JOB_SCHEMA); KeyError if unknown."""
        self.topology.site(site)
        return self._snapshot.jobs.get(site, empty_jobs())

    # ------------------------------------------------------------------ index
    def _index(self) -> _Index:
        snap = self._snapshot
        cached = self._index_cache
        if cached is not None and cached[0] == snap.version:
            return cached[1]
        hosts: dict[tuple[str, str], dict[str, Point]] = defaultdict(dict)
        containers: dict[tuple[str, str, str], dict[str, Point]] = defaultdict(dict)
        batch: dict[str, list[tuple[str, Mapping[str, str], Point]]] = defaultdict(list)
        interfaces: dict[str, dict[str, Point]] = defaultdict(dict)
        host_set, container_set, batch_set, link_set = (
            set(HOST_METRICS),
            set(CONTAINER_METRICS),
            set(BATCH_METRICS),
            set(LINK_METRICS),
        )
        for (metric, raw), point in snap.points.items():
            labels = self._labels[raw]
            site = labels.get("site", "")
            if metric in host_set:
                hosts[site, labels.get("host", "")][metric] = point
            elif metric in container_set:
                containers[site, labels.get("host", ""), labels.get("container", "")][metric] = point
            elif metric in batch_set:
                batch[site].append((metric, labels, point))
            elif metric in link_set:
                interfaces[labels.get("device", "")][metric] = point
        index = _Index(dict(hosts), dict(containers), dict(batch), dict(interfaces))
        self._index_cache = (snap.version, index)
        return index

    def latest_host_points(self) -> Mapping[tuple[str, str], Mapping[str, Point]]:
        """Latest host-level points by (site, host), for exposition."""
        return self._index().hosts

    # ------------------------------------------------------------------ health
    def _collector_health(self, spec: SiteSpec, now: float) -> tuple[CollectorHealth, ...]:
        stats = self.health()
        out = []
        for c in spec.collectors:
            s = stats.get(c.name)
            if s is None:
                out.append(CollectorHealth(c.name, c.type, "starting", c.interval_s, None, None, 0, None))
                continue
            age = None if s.last_success_s is None else max(0.0, now - s.last_success_s)
            state: State
            if s.collections == 0:
                state = "starting"
            elif s.last_success_s is None:
                state = "down"
            elif (s.last_error_s or 0) > s.last_success_s or (age or 0) > self.stale_after_intervals * c.interval_s:
                state = "stale"
            else:
                state = "ok"
            out.append(
                CollectorHealth(c.name, c.type, state, c.interval_s, s.last_success_s, age, s.errors, s.last_error)
            )
        return tuple(out)

    @staticmethod
    def _site_state(collectors: tuple[CollectorHealth, ...]) -> State:
        states = {c.state for c in collectors}
        if not states or states == {"starting"}:
            return "starting"
        if states <= {"ok"}:
            return "ok"
        if states <= {"down", "starting"}:
            return "down"
        return "stale"

    def _fresh_interval(self, site: str) -> float:
        spec = self._spec(site)
        return min((c.interval_s for c in spec.collectors), default=15.0) if spec else 15.0

    def _spec(self, site: str) -> SiteSpec | None:
        try:
            return self.topology.site(site)
        except KeyError:
            return None

    # ------------------------------------------------------------------ views
    def sites(self) -> list[SiteView]:
        now = self.clock()
        index = self._index()
        return [self._site_view(spec, index, now) for spec in self.topology.sites]

    def site(self, name: str) -> SiteView:
        spec = self.topology.site(name)
        return self._site_view(spec, self._index(), self.clock())

    def _site_view(self, spec: SiteSpec, index: _Index, now: float) -> SiteView:
        collectors = self._collector_health(spec, now)
        successes = [c.last_success_s for c in collectors if c.last_success_s is not None]
        age = max(0.0, now - max(successes)) if successes else None
        host_points = [points for (site, _host), points in index.hosts.items() if site == spec.name]
        batch = index.batch.get(spec.name, [])

        def total(metric: str, state: str | None = None) -> float | None:
            values = [
                p.value for m, labels, p in batch if m == metric and (state is None or labels.get("state") == state)
            ]
            return sum(values) if values else None

        cpus_total, cpus_busy = total(bm.CPUS.name), total(bm.CPUS.name, "allocated")
        nodes_total, nodes_busy = total(bm.NODES.name), total(bm.NODES.name, "allocated")
        mem_total, mem_busy = total(bm.MEMORY.name), total(bm.MEMORY.name, "allocated")
        replay = [p for m, _labels, p in batch if m == bm.REPLAY_TIME.name]
        load: float | None = None
        mem_frac: float | None = None
        if cpus_total:
            load = (cpus_busy or 0.0) / cpus_total
            mem_frac = (mem_busy or 0.0) / mem_total if mem_total else None
        else:
            busy = [p[nm.CPU_BUSY_RATIO.name].value for p in host_points if nm.CPU_BUSY_RATIO.name in p]
            load = sum(busy) / len(busy) if busy else None
            mem_t = sum(
                p[nm.MEM_TOTAL.name].value for p in host_points if nm.MEM_TOTAL.name in p and nm.MEM_AVAILABLE.name in p
            )
            mem_a = sum(
                p[nm.MEM_AVAILABLE.name].value
                for p in host_points
                if nm.MEM_TOTAL.name in p and nm.MEM_AVAILABLE.name in p
            )
            mem_frac = (mem_t - mem_a) / mem_t if mem_t else None
            if host_points:
                cpus_total = sum(p[nm.CPU_COUNT.name].value for p in host_points if nm.CPU_COUNT.name in p) or None
                if cpus_total is not None and load is not None:
                    cpus_busy = load * cpus_total
        running, pending = total(bm.JOBS.name, "running"), total(bm.JOBS.name, "pending")
        return SiteView(
            name=spec.name,
            kind=spec.kind,
            description=spec.description,
            state=self._site_state(collectors),
            data_age_s=age,
            is_replay=bool(replay),
            trace_time_s=replay[0].value if replay else None,
            hosts=len(host_points),
            nodes_total=_int(nodes_total),
            nodes_busy=_int(nodes_busy),
            cpus_total=cpus_total,
            cpus_busy=cpus_busy,
            load=load,
            mem_used_frac=mem_frac,
            jobs_running=_int(running),
            jobs_pending=_int(pending),
            collectors=collectors,
        )

    def nodes(self, site: str | None = None) -> list[NodeView]:
        now = self.clock()
        return [row.at(now) for row in self.node_rows(site)]

    def containers(self, site: str | None = None) -> list[ContainerView]:
        now = self.clock()
        return [row.at(now) for row in self.container_rows(site)]

    def node_rows(self, site: str | None = None) -> list[Aging[NodeView]]:
        """`nodes()` before the clock is applied (built once per snapshot)."""
        if site is not None:
            self.topology.site(site)  # KeyError for an unknown site
        rows = self._rows()[0]
        return rows if site is None else [r for r in rows if r.view.site == site]

    def container_rows(self, site: str | None = None) -> list[Aging[ContainerView]]:
        """`containers()` before the clock is applied (built once per snapshot)."""
        if site is not None:
            self.topology.site(site)
        rows = self._rows()[1]
        return rows if site is None else [r for r in rows if r.view.site == site]

    def _rows(self) -> tuple[list[Aging[NodeView]], list[Aging[ContainerView]]]:
        version = self._snapshot.version
        cached = self._rows_cache
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        index = self._index()
        nodes: list[Aging[NodeView]] = []
        seen: set[tuple[str, str]] = set()
        for (s, host), points in sorted(index.hosts.items()):
            seen.add((s, host))
            total = _value(points, nm.MEM_TOTAL.name)
            avail = _value(points, nm.MEM_AVAILABLE.name)
            cpus = _value(points, nm.CPU_COUNT.name)
            view = NodeView(
                site=s,
                host=host,
                state="ok",
                data_age_s=None,
                cpus=int(cpus) if cpus is not None else None,
                cpu_util=_value(points, nm.CPU_BUSY_RATIO.name),
                load1=_value(points, nm.LOAD1.name),
                mem_total_bytes=total,
                mem_used_bytes=(total - avail) if total is not None and avail is not None else None,
            )
            newest = max(p.ts_ns for p in points.values()) / 1e9
            nodes.append(Aging(view, newest, self.stale_after_intervals * self._fresh_interval(s)))
        for spec in self.topology.sites:  # declared hosts that never reported
            for host in spec.nodes:
                if (spec.name, host) not in seen:
                    never = NodeView(spec.name, host, "down", None, None, None, None, None, None)
                    nodes.append(Aging(never, None, None))
        containers: list[Aging[ContainerView]] = []
        for (s, host, name), points in sorted(index.containers.items()):
            cpu = points.get(cm.CPU_USAGE.name)
            view_c = ContainerView(
                site=s,
                host=host,
                container=name,
                data_age_s=None,
                cpu_cores=cpu.rate() if cpu else None,
                mem_bytes=_value(points, cm.MEM_USAGE.name),
                mem_limit_bytes=_value(points, cm.MEM_LIMIT.name),
            )
            containers.append(Aging(view_c, max(p.ts_ns for p in points.values()) / 1e9, None))
        self._rows_cache = (version, nodes, containers)
        return nodes, containers

    def links(self) -> list[LinkView]:
        now = self.clock()
        index = self._index()
        out = []
        for link in self.topology.links:
            ends = [self._spec(link.a), self._spec(link.b)]
            end_states = [self._site_state(self._collector_health(s, now)) for s in ends if s is not None]
            measured = index.interfaces.get(link.interface or "") if link.interface else None
            rx = measured.get(netm.NET_RX_BYTES.name) if measured else None
            tx = measured.get(netm.NET_TX_BYTES.name) if measured else None
            rx_rate, tx_rate = (rx.rate() if rx else None), (tx.rate() if tx else None)
            newest = max((p.ts_ns for p in (rx, tx) if p is not None), default=None)
            state: State = "ok" if all(s == "ok" for s in end_states) else ("down" if "down" in end_states else "stale")
            out.append(
                LinkView(
                    a=link.a,
                    b=link.b,
                    description=link.description,
                    bandwidth_bps=link.bandwidth_bps,
                    latency_s=link.latency_s,
                    state=state,
                    data_age_s=None if newest is None else max(0.0, now - newest / 1e9),
                    rx_bps=rx_rate * 8 if rx_rate is not None else None,
                    tx_bps=tx_rate * 8 if tx_rate is not None else None,
                )
            )
        return out

    # ------------------------------------------------------------------ history
    def _window(
        self, metrics: tuple[str, ...], site: str, start_s: float, end_s: float, max_points: int
    ) -> tuple[Selection, int]:
        """A site's selection over [start, end) and the step that keeps it within `max_points`
        buckets per series (at least 1 s): how every history read is downsampled in the store."""
        self.topology.site(site)
        start_ns, end_ns = int(start_s * 1e9), int(end_s * 1e9)
        step_ns = max(1_000_000_000, math.ceil((end_ns - start_ns) / max(1, max_points)))
        return Selection(metrics=metrics, labels={"site": site}, start_ns=start_ns, end_ns=end_ns), step_ns

    def _query(
        self, metrics: tuple[str, ...], site: str, start_s: float, end_s: float, max_points: int
    ) -> pl.DataFrame:
        if self.store is None:
            return pl.DataFrame(
                schema={"metric": pl.String, "labels": pl.String, "ts_ns": pl.Int64, "value": pl.Float64}
            )
        selection, step_ns = self._window(metrics, site, start_s, end_s, max_points)
        return self.store.query(selection, step_ns=step_ns, agg="avg")

    def node_history(
        self, site: str, hosts: list[str] | None, start_s: float, end_s: float, max_points: int = 2000
    ) -> pl.DataFrame:
        schema = {"host": pl.String, "ts_s": pl.Float64, "cpu_util": pl.Float64, "mem_used_frac": pl.Float64}
        if self.store is None:
            return pl.DataFrame(schema=schema)
        selection, step_ns = self._window(tuple(_HOST_HISTORY), site, start_s, end_s, max_points)
        # Pivoted and downsampled in the store: a thousand hosts × a day is one pass there.
        wide = self.store.query_grouped(selection, step_ns=step_ns, by="host")
        if hosts:
            wide = wide.filter(pl.col("host").is_in(hosts))
        return wide.select(
            pl.col("host"),
            (pl.col("ts_ns") / 1e9).alias("ts_s"),
            *(pl.col(metric).alias(column) for metric, column in _HOST_HISTORY.items()),
        ).cast(schema)  # type: ignore[arg-type]

    def node_history_band(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        cols = _HOST_HISTORY
        schema = {
            "ts_s": pl.Float64,
            **{f"{c}{sfx}": pl.Float64 for c in cols.values() for sfx in ("", "_min", "_max")},
        }
        if self.store is None:
            return pl.DataFrame(schema=schema)
        selection, step_ns = self._window(tuple(cols), site, start_s, end_s, max_points)
        frames = []
        for agg, suffix in (("avg", ""), ("min", "_min"), ("max", "_max")):
            part = self.store.query_grouped(selection, step_ns=step_ns, by="site", agg=agg)  # type: ignore[arg-type]
            frames.append(part.drop("site").rename({m: f"{c}{suffix}" for m, c in cols.items()}))
        if frames[0].is_empty():
            return pl.DataFrame(schema=schema)
        band = frames[0].join(frames[1], on="ts_ns").join(frames[2], on="ts_ns").sort("ts_ns")
        return band.with_columns((pl.col("ts_ns") / 1e9).alias("ts_s")).select(list(schema)).cast(schema)  # type: ignore[arg-type]

    def site_history(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        schema = {"ts_s": pl.Float64, "load": pl.Float64, "jobs_running": pl.Float64, "jobs_pending": pl.Float64}
        frame = self._query((bm.CPUS.name, bm.JOBS.name, nm.CPU_BUSY_RATIO.name), site, start_s, end_s, max_points)
        if frame.is_empty():
            return pl.DataFrame(schema=schema)
        frame = frame.with_columns(
            pl.col("labels").str.json_path_match("$.state").alias("state"), (pl.col("ts_ns") / 1e9).alias("ts_s")
        )
        per_ts = frame.group_by("ts_s").agg(
            (pl.col("value").filter((pl.col("metric") == bm.CPUS.name) & (pl.col("state") == "allocated")).sum()).alias(
                "busy"
            ),
            pl.col("value").filter(pl.col("metric") == bm.CPUS.name).sum().alias("cpus"),
            pl.col("value").filter(pl.col("metric") == nm.CPU_BUSY_RATIO.name).mean().alias("host_load"),
            pl.col("value")
            .filter((pl.col("metric") == bm.JOBS.name) & (pl.col("state") == "running"))
            .sum()
            .alias("jobs_running"),
            pl.col("value")
            .filter((pl.col("metric") == bm.JOBS.name) & (pl.col("state") == "pending"))
            .sum()
            .alias("jobs_pending"),
            (pl.col("metric") == bm.JOBS.name).any().alias("has_jobs"),
        )
        return (
            per_ts.select(
                "ts_s",
                pl.when(pl.col("cpus") > 0)
                .then(pl.col("busy") / pl.col("cpus"))
                .otherwise(pl.col("host_load"))
                .alias("load"),
                pl.when(pl.col("has_jobs")).then(pl.col("jobs_running")).alias("jobs_running"),
                pl.when(pl.col("has_jobs")).then(pl.col("jobs_pending")).alias("jobs_pending"),
            )
            .cast(schema)  # type: ignore[arg-type]
            .sort("ts_s")
        )


def _value(points: Mapping[str, Point], metric: str) -> float | None:
    p = points.get(metric)
    return p.value if p is not None else None


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)
