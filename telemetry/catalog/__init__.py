"""The one metric catalog: every metric's name, type, unit, help text and allowed labels, spelled once.

Collectors emit `Metric` objects from here, never strings. Each domain keeps its entries in its
own module (node, container, network, self); importing this package registers them all, and a
duplicate name fails at import time. Naming follows Prometheus: base units, `_total` on counters,
`_seconds` / `_bytes` suffixes, no unbounded labels (job ids and pids stay in the store).
The implicit labels `site` and `host` are added by the pipeline and allowed on every metric.
"""

from __future__ import annotations

from telemetry.catalog import (  # noqa: F401  (registers entries)
    batch,
    container,
    gpu,
    kubernetes,
    links,
    mirror,
    network,
    node,
    selfmetrics,
)
from telemetry.catalog._core import (
    COMMON_LABELS,
    Catalog,
    Metric,
    MetricType,
    catalog,
)

__all__ = ["COMMON_LABELS", "Catalog", "Metric", "MetricType", "catalog"]
