"""The extender's counters in /metrics, read at scrape time (no I/O, bounded labels)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from service.hooks.extender import Extender
from service.hooks.pod_worker import PodWorker

__all__ = ["ExtenderMetrics"]

FALLBACK_REASONS = ("stale", "bad_pod", "error")


class ExtenderMetrics(Collector):
    def __init__(self, extender: Extender, worker: PodWorker | None) -> None:
        self.extender = extender
        self.worker = worker

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
        yield from (requests, fallback, failed)
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
            yield pods
