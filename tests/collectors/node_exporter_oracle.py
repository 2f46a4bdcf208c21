"""node_exporter's own end-to-end output as a test oracle.

tests/fixtures/node_exporter/ holds the /proc and /sys files node_exporter's e2e test reads and
the exposition it printed over them (see PROVENANCE.md there). A collector run on the same root
must reproduce every series the two have in common, under node_exporter's own names.
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
    return (sample.metric, frozenset(sample.labels.items()))


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
    return {labels for (n, labels) in e2e_series() if n == our_metric}
