"""`/metrics`: the service's own health and the twin's latest values, for Prometheus.

Why this shape: the registry is injected (one per app, never prometheus_client's global), and
everything except request latency is produced at scrape time by a custom collector that reads the
twin's snapshot and the pipeline's counters: no I/O, no store query, no state to keep in sync.
Label sets are bounded: sites and hosts come from the configuration and the collectors; at most
`max_containers` containers per host are exposed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.compose import Service
from telemetry.catalog import catalog
from telemetry.catalog import mirror as mm
from telemetry.catalog import node as nm
from telemetry.catalog import selfmetrics as sm
from twin.view import STATES

__all__ = ["LimitMetrics", "RequestMetrics", "TwinMetrics", "build_registry"]

_NODE_GAUGES = (
    nm.CPU_BUSY_RATIO.name,
    nm.MEM_USED_RATIO.name,
    nm.LOAD1.name,
    nm.MEM_TOTAL.name,
    nm.MEM_AVAILABLE.name,
    nm.CPU_COUNT.name,
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TwinMetrics(Collector):
    """Scrape-time collector over the live twin and the running pipeline."""

    def __init__(self, service: Service, *, max_containers: int = 50) -> None:
        self.service = service
        self.twin = service.twin
        self.max_containers = max_containers

    def collect(self) -> Iterator[Any]:
        yield from self._service()
        yield from self._sites()
        yield from self._nodes()
        yield from self._containers()
        yield from self._links()
        yield from self._advice()

    def _service(self) -> Iterator[Any]:
        pipeline, sink = self.service.pipeline, self.service.sink
        site_of = self.twin.topology.collector_site()
        labels = ["collector", "site"]
        duration = GaugeMetricFamily(
            "ctwin_collector_duration_seconds", "Duration of the last collection.", labels=labels
        )
        errors = CounterMetricFamily("ctwin_collector_errors", "Failed or timed-out collections.", labels=labels)
        last = GaugeMetricFamily(
            "ctwin_collector_last_success_timestamp_seconds",
            "Unix time of the last successful collection.",
            labels=labels,
        )
        skipped = CounterMetricFamily(
            "ctwin_collector_skipped", "Collections skipped because the previous one still ran.", labels=labels
        )
        limits = CounterMetricFamily(
            "ctwin_scrape_limit_exceeded", sm.SCRAPE_LIMIT_EXCEEDED.help, labels=[*labels, "limit"]
        )
        for rc in pipeline.collectors:
            key = [rc.name, site_of.get(rc.name, "")]
            duration.add_metric(key, rc.stats.last_duration_s)
            errors.add_metric(key, rc.stats.errors)
            skipped.add_metric(key, rc.stats.skipped)
            if rc.stats.last_success_s is not None:
                last.add_metric(key, rc.stats.last_success_s)
            for limit, n in sorted(rc.stats.limits_exceeded.items()):
                limits.add_metric([*key, limit], n)
        yield from (duration, errors, last, skipped, limits)
        dropped = CounterMetricFamily("ctwin_pipeline_dropped_samples", sm.PIPELINE_DROPPED.help, labels=["reason"])
        dropped.add_metric(["buffer_full"], pipeline.dropped_full)
        dropped.add_metric(["store_failed"], pipeline.dropped_store)
        written = CounterMetricFamily("ctwin_pipeline_written_samples", "Samples the store acknowledged.")
        written.add_metric([], pipeline.written_samples)
        buffered = GaugeMetricFamily("ctwin_pipeline_buffered_samples", "Samples waiting for the sinks.")
        buffered.add_metric([], pipeline.buffered_samples)
        sink_errors = CounterMetricFamily("ctwin_pipeline_sink_errors", "Failed sink writes, retries included.")
        sink_errors.add_metric([], pipeline.sink_errors)
        yield from (dropped, written, buffered, sink_errors)
        store = GaugeMetricFamily("ctwin_store_write_seconds", "Duration of the last durable store append.")
        store.add_metric([], sink.last_write_s)
        yield store
        yield from self._store_health()
        yield from self._mirror()

    def _mirror(self) -> Iterator[Any]:
        for mirror, defs in (
            (self.service.mirror, (mm.INFLUX_CONNECTED, mm.INFLUX_SAMPLES, mm.INFLUX_SPOOLED, mm.INFLUX_REJECTED)),
            (
                self.service.remote_write,
                (mm.REMOTE_WRITE_CONNECTED, mm.REMOTE_WRITE_SAMPLES, mm.REMOTE_WRITE_SPOOLED, mm.REMOTE_WRITE_REJECTED),
            ),
        ):
            if mirror is not None:
                yield from _forwarded(mirror, *defs)

    def _store_health(self) -> Iterator[Any]:
        durable = self.service.pipeline.durable
        if durable is None:
            return
        healthy = GaugeMetricFamily(sm.STORE_HEALTHY.name, sm.STORE_HEALTHY.help)
        healthy.add_metric([], 1.0 if durable.healthy else 0.0)
        retry = GaugeMetricFamily(
            "ctwin_pipeline_retry_samples", "Samples the store refused, waiting in memory to be retried."
        )
        retry.add_metric([], durable.backlog_samples)
        since = GaugeMetricFamily(
            "ctwin_store_failing_since_timestamp_seconds", "Unix time of the first refused write of this failure."
        )
        episode = durable.episode  # read once: the pipeline's writer may end it meanwhile
        if episode is not None:
            since.add_metric([], episode.since_s)
        yield from (healthy, retry, since)

    def _sites(self) -> Iterator[Any]:
        labels = ["site", "kind"]
        up = GaugeMetricFamily(
            "ctwin_site_up",
            "1 when every collector of the site is fresh, else 0; absent for a site no collector feeds.",
            labels=labels,
        )
        state = GaugeMetricFamily(
            "ctwin_site_state",
            "1 for the site's state (ok, stale, down, starting, configured: known from config only), else 0.",
            labels=["site", "kind", "state"],
        )
        age = GaugeMetricFamily(
            "ctwin_site_data_age_seconds", "Seconds since the site's newest successful collection.", labels=labels
        )
        load = GaugeMetricFamily("ctwin_site_load_ratio", "CPU utilisation of the site, 0..1.", labels=labels)
        jobs = GaugeMetricFamily("ctwin_site_jobs", "Jobs of a batch site by state.", labels=["site", "kind", "state"])
        for site in self.twin.sites():
            key = [site.name, site.kind]
            if site.state != "configured":  # nothing measures it: an `up` of 0 would alert forever, 1 would lie
                up.add_metric(key, 1.0 if site.state == "ok" else 0.0)
            for name in STATES:
                state.add_metric([*key, name], 1.0 if site.state == name else 0.0)
            if site.data_age_s is not None:
                age.add_metric(key, site.data_age_s)
            if site.load is not None:
                load.add_metric(key, site.load)
            if site.jobs_running is not None:
                jobs.add_metric([*key, "running"], site.jobs_running)
            if site.jobs_pending is not None:
                jobs.add_metric([*key, "pending"], site.jobs_pending)
        yield from (up, state, age, load, jobs)
        yield from self._accuracy()

    def _accuracy(self) -> Iterator[Any]:
        """The closed loop: forecasts and runtime predictions scored against what happened."""
        labels = ["site"]
        f_scored = CounterMetricFamily("ctwin_forecast_scored", "Start-time forecasts scored.", labels=labels)
        f_10 = GaugeMetricFamily(
            "ctwin_forecast_within_10min_ratio", "Share of scored forecasts within 10 minutes.", labels=labels
        )
        f_med = GaugeMetricFamily(
            "ctwin_forecast_median_abs_error_seconds", "Median absolute start-time error.", labels=labels
        )
        r_scored = CounterMetricFamily(
            "ctwin_model_runtime_scored", "Learned runtime predictions scored.", labels=labels
        )
        r_acc = GaugeMetricFamily(
            "ctwin_model_runtime_mean_accuracy_ratio",
            "Mean of min(actual, predicted) / max(actual, predicted) of the learned runtime model.",
            labels=labels,
        )
        r_mae = GaugeMetricFamily(
            "ctwin_model_runtime_mae_seconds", "Mean absolute runtime error of the learned model.", labels=labels
        )
        for spec in self.twin.topology.sites:
            fa, ra = self.twin.queues.accuracy(spec.name)
            if fa.scored:
                f_scored.add_metric([spec.name], fa.scored)
                if fa.within_10min is not None:
                    f_10.add_metric([spec.name], fa.within_10min)
                if fa.median_abs_error_s is not None:
                    f_med.add_metric([spec.name], fa.median_abs_error_s)
            if ra.scored:
                r_scored.add_metric([spec.name], ra.scored)
                if ra.mean_accuracy is not None:
                    r_acc.add_metric([spec.name], ra.mean_accuracy)
                if ra.mae_s is not None:
                    r_mae.add_metric([spec.name], ra.mae_s)
        yield from (f_scored, f_10, f_med, r_scored, r_acc, r_mae)

    def _nodes(self) -> Iterator[Any]:
        families = {
            name: GaugeMetricFamily(name, catalog.get(name).help, labels=["site", "host"]) for name in _NODE_GAUGES
        }
        for (site, host), points in self.twin.state.latest_host_points().items():
            for name, family in families.items():
                point = points.get(name)
                if point is not None:
                    family.add_metric([site, host], point.value, timestamp=point.ts_ns / 1e9)
        yield from families.values()

    def _containers(self) -> Iterator[Any]:
        cpu = GaugeMetricFamily(
            "ctwin_container_cpu_cores",
            "CPU cores in use over the last interval.",
            labels=["site", "host", "container"],
        )
        mem = GaugeMetricFamily(
            "container_memory_usage_bytes",
            "Current memory usage, including page cache.",
            labels=["site", "host", "container"],
        )
        per_host: dict[tuple[str, str], int] = {}
        for view in self.twin.containers():
            n = per_host.get((view.site, view.host), 0)
            if n >= self.max_containers:
                continue
            per_host[view.site, view.host] = n + 1
            key = [view.site, view.host, view.container]
            if view.cpu_cores is not None:
                cpu.add_metric(key, view.cpu_cores)
            if view.mem_bytes is not None:
                mem.add_metric(key, view.mem_bytes)
        yield from (cpu, mem)

    def _links(self) -> Iterator[Any]:
        labels = ["a", "b", "direction"]
        rate = GaugeMetricFamily("ctwin_link_traffic_bits_per_second", "Measured traffic on a link.", labels=labels)
        capacity = GaugeMetricFamily(
            "ctwin_link_capacity_bits_per_second", "Configured capacity of a link.", labels=["a", "b"]
        )
        for link in self.twin.links():
            if link.bandwidth_bps is not None:
                capacity.add_metric([link.a, link.b], link.bandwidth_bps)
            if link.rx_bps is not None:
                rate.add_metric([link.a, link.b, "rx"], link.rx_bps)
            if link.tx_bps is not None:
                rate.add_metric([link.a, link.b, "tx"], link.tx_bps)
        yield from (rate, capacity)

    def _advice(self) -> Iterator[Any]:
        advisor = self.service.advisor
        stats = advisor.log.stats()
        advised = CounterMetricFamily(
            "ctwin_advice", "Placement answers handed out, by recommended site (none: no site could).", labels=["site"]
        )
        for site, n in sorted(stats.advised.items()):
            advised.add_metric([site], n)
        joined = CounterMetricFamily("ctwin_advice_outcomes", "Advised jobs whose realised outcome was joined.")
        joined.add_metric([], stats.joined)
        error = GaugeMetricFamily(
            "ctwin_advice_turnaround_abs_error_seconds",
            "Mean |realised - predicted| turnaround at the chosen site, over the joined outcomes.",
        )
        regret = GaugeMetricFamily(
            "ctwin_advice_regret_seconds", "Mean regret: realised turnaround minus the best other site's prediction."
        )
        if stats.turnaround_abs_error_s is not None:
            error.add_metric([], stats.turnaround_abs_error_s)
        if stats.regret_s is not None:
            regret.add_metric([], stats.regret_s)
        booked = GaugeMetricFamily("ctwin_advice_bookings", "Handed-out advice still counted as load (herding).")
        booked.add_metric([], len(advisor.ledger))
        lost = CounterMetricFamily(
            "ctwin_advice_log_dropped", "Answers never stored: the store refused writes while too many waited."
        )
        lost.add_metric([], advisor.log.dropped)
        yield from (advised, joined, error, regret, booked, lost)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Other request methods (any token is a valid HTTP method) are labelled `other`, so a client
cannot grow the label set."""


class LimitMetrics(Collector):
    """What the request limits refused (service/limits.py), at scrape time."""

    def __init__(self, limits: Any) -> None:
        self.limits = limits

    def collect(self) -> Iterator[Any]:
        shed = CounterMetricFamily(
            "ctwin_http_shed_requests", "Expensive requests answered 503 because enough were already running."
        )
        shed.add_metric([], self.limits.shed)
        refused = CounterMetricFamily(
            "ctwin_http_refused_bodies", "Request bodies refused as too large (413) or nested too deep (400)."
        )
        refused.add_metric([], self.limits.refused_bodies)
        running = GaugeMetricFamily("ctwin_http_expensive_in_flight", "Expensive requests running now.")
        running.add_metric([], self.limits.running_expensive)
        yield from (shed, refused, running)


class RequestMetrics:
    """Pure-ASGI middleware: a request-latency histogram by method, route template and status.
    Labels stay bounded: the route template (not the raw path), `ui` for the mounted Dash app,
    `unmatched` for anything else."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram
        self._children: dict[tuple[str, str, int], Any] = {}
        """Labelled histograms by (method, template, status): `labels()` validates and locks on
        every call, ~7 % of a hot request's server time; the label set is bounded, so keep them."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                template = "ui" if scope.get("root_path") or status < 404 else "unmatched"
            method = scope.get("method", "")
            key = (method if method in _METHODS else "other", template, status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.histogram.labels(key[0], template, str(status))
            child.observe(time.perf_counter() - started)


def build_registry() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry(auto_describe=True)
    histogram = Histogram(
        "ctwin_http_request_duration_seconds",
        "Time to answer an HTTP request.",
        ["method", "route", "status"],
        registry=registry,
        buckets=_LATENCY_BUCKETS,
    )
    return registry, histogram


def _forwarded(mirror: Any, connected_def: Any, samples_def: Any, spooled_def: Any, rejected_def: Any) -> Iterator[Any]:
    """A spooled mirror's families: connected, samples by outcome, spooled now, rejected bodies."""
    forwarder, spool = mirror.forwarder, mirror.forwarder.spool
    target = forwarder.target
    connected = GaugeMetricFamily(connected_def.name, connected_def.help)
    connected.add_metric([], 1.0 if forwarder.connected else 0.0)
    samples = CounterMetricFamily(samples_def.name.removesuffix("_total"), samples_def.help, labels=["outcome"])
    samples.add_metric(["sent"], forwarder.sent_samples)
    samples.add_metric(["replayed"], spool.replayed_samples)
    samples.add_metric(["spooled"], spool.spooled_samples)
    samples.add_metric(["dropped_spool_full"], spool.dropped_samples)
    if hasattr(target, "skipped_samples"):
        samples.add_metric(["skipped_nonfinite"], target.skipped_samples)
    waiting = GaugeMetricFamily(spooled_def.name, spooled_def.help)
    waiting.add_metric([], spool.pending_samples)
    rejected = CounterMetricFamily(rejected_def.name.removesuffix("_total"), rejected_def.help)
    rejected.add_metric([], getattr(target, "rejected_bodies", 0))
    yield from (connected, samples, waiting, rejected)
