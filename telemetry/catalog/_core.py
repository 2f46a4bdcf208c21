"""Metric definitions and the registry that refuses duplicates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge"]

COMMON_LABELS: frozenset[str] = frozenset({"site", "host"})
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_UNIT_SUFFIX = {"seconds": "_seconds", "bytes": "_bytes", "ratio": "_ratio", "celsius": "_celsius"}


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family. `external` marks families learned at run time (scraped exporters)."""

    name: str
    type: MetricType
    unit: str
    help: str
    labels: tuple[str, ...] = ()
    external: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} is not a valid Prometheus name")
        if self.external:
            return
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        if self.type == "gauge" and self.name.endswith("_total"):
            raise ValueError(f"gauge {self.name!r} must not end in _total")
        suffix = _UNIT_SUFFIX.get(self.unit)
        if suffix and suffix not in self.name:
            raise ValueError(f"metric {self.name!r} in {self.unit} must carry {suffix!r} in its name")
        clash = COMMON_LABELS.intersection(self.labels)
        if clash:
            raise ValueError(f"metric {self.name!r} must not declare the common labels {sorted(clash)}")

    @property
    def allowed_labels(self) -> frozenset[str]:
        return COMMON_LABELS.union(self.labels)

    @classmethod
    def external_family(cls, name: str, type_: MetricType = "gauge", help_: str = "") -> Metric:
        """A family we did not define (e.g. from a scraped exporter): any labels, no naming checks."""
        return cls(name=name, type=type_, unit="", help=help_ or name, external=True)


class Catalog:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def define(
        self, name: str, type_: MetricType, unit: str, help_: str, labels: tuple[str, ...] = ()
    ) -> Metric:
        if name in self._metrics:
            raise ValueError(f"metric {name!r} is defined twice in the catalog")
        metric = Metric(name=name, type=type_, unit=unit, help=help_, labels=labels)
        self._metrics[name] = metric
        return metric

    def get(self, name: str) -> Metric:
        try:
            return self._metrics[name]
        except KeyError:
            raise KeyError(f"metric {name!r} is not in the catalog") from None

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __iter__(self) -> Iterator[Metric]:
        return iter(sorted(self._metrics.values(), key=lambda m: m.name))

    def __len__(self) -> int:
        return len(self._metrics)


catalog = Catalog()
