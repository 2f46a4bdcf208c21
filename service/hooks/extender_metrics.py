"""The extender's counters, its node cache's and its pod watch's, in /metrics: read at scrape time
(no I/O, bounded labels)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service.hooks.extender import Extender
from service.hooks.informer import Informer
from service.hooks.node_cache import NodeCache
from service.hooks.pod_worker import PodWorker

__all__ = ["ExtenderMetrics"]

FALLBACK_REASONS = ("stale", "bad_pod", "error")


class ExtenderMetrics(Collector):
    def __init__(self, extender: Extender, worker: PodWorker | None, nodes: NodeCache | None = None) -> None:
        self.extender = extender
        self.worker = worker
        self.nodes = nodes

    def collect(self) -> Iterator[Any]:
        ext = self.extender
        requests = CounterMetricFamily(
            "ctwin_extender_requests", "Extender calls answered, by verb (filter, prioritize).", labels=["verb"]
        )
        for verb in ("filter", "prioritize"):
            requests.add_metric([verb], ext.requests[verb])
        fallback = CounterMetricFamily(
            "ctwin_extender_fallback",
            "Extender answers that were neutral (every node passes, the same score) because ctwin had no"
            " opinion it could trust: stale or missing data, a pod it cannot read, an internal error.",
            labels=["reason"],
        )
        for reason in FALLBACK_REASONS:
            fallback.add_metric([reason], ext.fallbacks[reason])
        failed = CounterMetricFamily(
            "ctwin_extender_failed_nodes", "Nodes the extender's filter removed: their site cannot run the pod."
        )
        failed.add_metric([], ext.failed_nodes)
        unknown = CounterMetricFamily(
            "ctwin_extender_unknown_nodes",
            "Nodes sent by name only (nodeCacheCapable: true) that nothing mapped: not in the config, the node"
            " cache or an earlier full body. They pass the filter with the neutral score.",
        )
        unknown.add_metric([], ext.sites.unknown_names)
        yield from (requests, fallback, failed, unknown)
        if self.nodes is not None:
            size = GaugeMetricFamily("ctwin_extender_node_cache_nodes", "Nodes in the node cache (listed, watched).")
            size.add_metric([], len(self.nodes))
            yield size
            age = self.nodes.age_s()
            if age is not None:
                seconds = GaugeMetricFamily(
                    "ctwin_extender_node_cache_age_seconds",
                    "Seconds since the API server last showed the node cache current (a list, an event, a"
                    " bookmark, the clean end of a watch); absent before the first list.",
                )
                seconds.add_metric([], age)
                yield seconds
            yield from _informer_metrics("ctwin_extender_node_cache", self.nodes.informer)
        if self.worker is not None:
            pods = CounterMetricFamily(
                "ctwin_extender_pods",
                "Advised pods handled off the request path: annotated with their advice id, reported"
                " where they were bound, dropped (queue full or the API refused).",
                labels=["action"],
            )
            pods.add_metric(["annotated"], self.worker.annotated)
            pods.add_metric(["reported"], self.worker.reported)
            pods.add_metric(["dropped"], self.worker.dropped)
            pods.add_metric(["abandoned"], self.worker.abandoned)
            yield pods
            watched = GaugeMetricFamily(
                "ctwin_extender_pods_awaiting_binding", "Annotated pods whose binding (or JobID) the pod watch awaits."
            )
            watched.add_metric([], self.worker.pending)
            yield watched
            yield from _informer_metrics("ctwin_extender_pod_watch", self.worker.informer)


def _informer_metrics(prefix: str, informer: Informer) -> Iterator[Any]:
    relists = CounterMetricFamily(f"{prefix}_relists", "Relists because the watch's resume point expired (410 Gone).")
    relists.add_metric([], informer.relists)
    errors = CounterMetricFamily(f"{prefix}_errors", "List or watch failures (each: a backoff, a relist).")
    errors.add_metric([], informer.errors)
    yield from (relists, errors)
