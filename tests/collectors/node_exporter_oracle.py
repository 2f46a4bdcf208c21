"""node_exporter's own end-to-end output as a test oracle.

tests/fixtures/node_exporter/ holds the /proc and /sys files node_exporter's e2e test reads and
the exposition it printed over them (see PROVENANCE.md there). A collector run on the same root
must reproduce every series the two have in common.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from prometheus_client.parser import text_string_to_metric_families

from telemetry.schema import Sample
from tests.conftest import FIXTURES

ROOT = FIXTURES / "node_exporter"
E2E = ROOT / "e2e-output.txt.gz"

# Where our name differs from node_exporter's: meminfo keys become names there, and our catalog
# words the IB transmit-discards counter differently.
OURS_TO_THEIRS = {
    "node_memory_total_bytes": "node_memory_MemTotal_bytes",
    "node_memory_free_bytes": "node_memory_MemFree_bytes",
    "node_memory_available_bytes": "node_memory_MemAvailable_bytes",
    "node_memory_buffers_bytes": "node_memory_Buffers_bytes",
    "node_memory_cached_bytes": "node_memory_Cached_bytes",
    "node_memory_shmem_bytes": "node_memory_Shmem_bytes",
    "node_memory_swap_total_bytes": "node_memory_SwapTotal_bytes",
    "node_memory_swap_free_bytes": "node_memory_SwapFree_bytes",
}

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


@cache
def e2e_series() -> dict[SeriesKey, float]:
    """(name, labels) → value for every sample node_exporter printed."""
    with gzip.open(E2E, "rt", encoding="utf-8") as f:
        text = f.read()
    out: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def theirs(sample: Sample) -> SeriesKey:
    return (OURS_TO_THEIRS.get(sample.metric, sample.metric), frozenset(sample.labels.items()))


@dataclass
class Comparison:
    exact: int = 0
    close: int = 0  # equal to rel 1e-12: node_exporter computes e.g. ms * 0.001, we ms / 1000
    mismatches: list[str] = field(default_factory=list)
    unmatched: set[str] = field(default_factory=set)  # our metric names without a counterpart

    @property
    def compared(self) -> int:
        return self.exact + self.close


def compare(samples: Iterable[Sample]) -> Comparison:
    oracle = e2e_series()
    result = Comparison()
    for s in samples:
        expected = oracle.get(theirs(s))
        if expected is None:
            result.unmatched.add(s.metric)
        elif s.value == expected:
            result.exact += 1
        elif math.isclose(s.value, expected, rel_tol=1e-12):
            result.close += 1
        else:
            result.mismatches.append(f"{s.metric}{dict(s.labels)}: {s.value!r} != {expected!r}")
    return result


def their_series(our_metric: str) -> set[frozenset[tuple[str, str]]]:
    """Label sets node_exporter printed for the counterpart of one of our metrics."""
    name = OURS_TO_THEIRS.get(our_metric, our_metric)
    return {labels for (n, labels) in e2e_series() if n == name}
