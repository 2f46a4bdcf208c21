"""Fuzzing the Prometheus text scraper: any body gives samples or a CollectorError, never both.

"A clear error" here: CollectorError whose message starts with the scrape URL, and then nothing
emitted (a half-parsed scrape is not a scrape). Every emitted sample must be one the pipeline can
batch: a finite 64-bit nanosecond timestamp or none. Inputs: node_exporter's and CoreDNS's real
expositions (tests/fixtures/prometheus) with lines' tokens replaced by odd ones, truncated,
byte-flipped and spliced; arbitrary text and bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from collectors.base import CollectorError, Recorder
from collectors.prometheus_scrape import PrometheusScrapeCollector, PrometheusScrapeConfig
from telemetry.pipeline import RunningCollector
from telemetry.schema import Batch
from tests.conftest import FIXTURES
from tests.fuzzing import FUZZ, byte_mutations

_E2E = gzip.decompress((FIXTURES / "prometheus" / "e2e-output.txt.gz").read_bytes())
BODIES = [_E2E[: _E2E.find(b"\n", 8000) + 1], (FIXTURES / "prometheus" / "coredns-1.1.0-excerpt.txt").read_bytes()]
ODD_TOKENS = [
    b"NaN", b"+Inf", b"-Inf", b"Inf", b"1e308", b"-1e308", b"9" * 30, b"9" * 5000, b"0x1", b"1_0", b"",
    b"#", b"{", b'{a="b"}', b'{a="\\x"}', b"counter", b"histogram", b"summary", b"bogus", b"\x00", b"\xc3(",
]  # fmt: skip
URL = "http://exporter.example:9100/metrics"


@st.composite
def token_mutations(draw: Callable[..., Any]) -> bytes:
    """A real exposition with a few tokens replaced: values, timestamps, TYPE words, names."""
    lines = draw(st.sampled_from(BODIES)).split(b"\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        tokens = lines[i].split(b" ")
        j = draw(st.integers(0, len(tokens)))
        odd = draw(st.sampled_from(ODD_TOKENS))
        if j == len(tokens):
            tokens.append(odd)  # e.g. a timestamp after the value
        else:
            tokens[j] = odd
        lines[i] = b" ".join(tokens)
    return b"\n".join(lines)


def scrapes_or_says_why(body: bytes) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)))
    recorder = Recorder(strict=False, default_ts_ns=1)
    try:
        PrometheusScrapeCollector(PrometheusScrapeConfig(url=URL), client=client).gather(recorder)
    except CollectorError as exc:
        assert str(exc).startswith(URL), str(exc)
        assert recorder.samples == []
        return
    Batch.from_samples(recorder.samples)  # what the pipeline does next: must not fail


@FUZZ
@given(token_mutations() | byte_mutations(BODIES) | st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
# found by this test (each escaped the scraper, or broke the batch after it, before its fix):
@example(b"up 1 Inf\n")  # OverflowError: int(inf) converting the timestamp
@example(b"up 1 NaN\n")  # ValueError: int(nan)
@example(b"up 1 99999999999999999999999999\n")  # accepted; then polars overflow building the batch
@example(b'up{a="b"} 1 ' + b"9" * 5000 + b"\n")  # the parser's float() gives inf: OverflowError
def test_mutated_expositions(body: bytes) -> None:
    scrapes_or_says_why(body)


class _Emits:
    """A collector whose sample no batch can hold (as the scraper emitted before its fix)."""

    def gather(self, emit: Any) -> None:
        from telemetry.catalog import Metric

        emit(Metric.external_family("up", "gauge", ""), 1.0, None, 10**30)


def test_a_sample_no_batch_can_hold_is_an_error_of_that_collector_not_of_its_thread() -> None:
    """Found with the huge timestamp above: the batch was built after the plugin boundary, so its
    error escaped `collect()` ("never raises") and ended the collector's loop thread for good."""
    rc = RunningCollector("x", _Emits(), interval_s=1, timeout_s=1, labels={"site": "s"})
    batch = rc.collect()
    rc.close()
    assert rc.stats.errors == 1 and rc.stats.last_success_s is None
    assert rc.stats.last_error is not None and "ts_ns" in rc.stats.last_error
    assert {s.metric for s in batch.samples()} == {
        "ctwin_collector_duration_seconds",
        "ctwin_collector_errors_total",
        "ctwin_collector_samples_total",
    }
