"""The collector contract: a collector implements `gather(emit)` and nothing else.

Interval, timeout, site/host labels, error handling and self-metrics belong to the pipeline's
running-collector wrapper, so a collector stays a thin adapter from one source to catalog
metrics. Every OS dependency has a seam (a root path, an injected fetcher) so tests run on real
captured files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import polars as pl

from telemetry.catalog import Metric
from telemetry.schema import Sample, StrictModel, now_ns

__all__ = [
    "Collector",
    "CollectorConfig",
    "CollectorError",
    "Emit",
    "Recorder",
    "Unavailable",
]


class CollectorError(Exception):
    """A collector could not read its source; the message names the source (file, URL, command)."""


class Unavailable(CollectorError):
    """The collector cannot run on this machine at all (e.g. no InfiniBand devices)."""


class Emit(Protocol):
    def __call__(
        self, metric: Metric, value: float, labels: Mapping[str, str] | None = None, ts_ns: int | None = None
    ) -> None: ...


class CollectorConfig(StrictModel):
    """Base of every collector's config. Pipeline keys (interval, timeout) live in the wrapper's config."""


class Collector(ABC):
    name: ClassVar[str]
    config_model: ClassVar[type[CollectorConfig]] = CollectorConfig

    def __init__(self, config: CollectorConfig | None = None) -> None:
        self.config = config if config is not None else self.config_model()

    @abstractmethod
    def gather(self, emit: Emit) -> None:
        """Read the source once and emit one value per series. Raise CollectorError on failure."""

    def availability(self) -> str | None:
        """None when the collector can run here; otherwise the reason it cannot (shown by `ctwin plugins`)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets or handles; called once on shutdown."""

    def job_updates(self) -> pl.DataFrame | None:
        """Job-history rows (telemetry.jobs.JOB_SCHEMA) learnt by the last gather, for batch-site
        collectors; the pipeline upserts them into the store keyed by (site, job_id). None: no jobs."""
        return None


@dataclass
class Recorder:
    """An `Emit` that keeps samples and checks them against the catalog: the test double and the
    building block of the pipeline's batching."""

    strict: bool = True
    default_ts_ns: int | None = None

    def __post_init__(self) -> None:
        self.samples: list[Sample] = []

    def __call__(
        self, metric: Metric, value: float, labels: Mapping[str, str] | None = None, ts_ns: int | None = None
    ) -> None:
        labels = dict(labels) if labels else {}
        if self.strict and not metric.external:
            extra = set(labels) - metric.allowed_labels
            if extra:
                raise ValueError(f"{metric.name}: labels {sorted(extra)} are not allowed by the catalog")
        ts = ts_ns if ts_ns is not None else (self.default_ts_ns if self.default_ts_ns is not None else now_ns())
        self.samples.append(Sample(metric.name, float(value), labels, ts))

    def get(self, metric: str | Metric, **labels: str) -> float:
        """The value of the single sample matching metric and (a subset of) labels."""
        name = metric if isinstance(metric, str) else metric.name
        found = [s for s in self.samples if s.metric == name and all(s.labels.get(k) == v for k, v in labels.items())]
        if len(found) != 1:
            raise KeyError(f"{len(found)} samples match {name} {labels}")
        return found[0].value

    def names(self) -> set[str]:
        return {s.metric for s in self.samples}
