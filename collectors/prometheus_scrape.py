"""Scrape a Prometheus exporter's /metrics and pass its samples through under their own names.

For sources we don't reimplement (DCGM, IPMI, a Slurm exporter, node_exporter itself): keeping
the exporter's sample names and labels keeps its dashboards and PromQL working on our store.
Families become `Metric.external_family` entries, which the catalog does not police.

Fidelity details:
- Sample names are the exporter's. prometheus_client's text parser renames the samples of a
  counter declared without `_total` (`# TYPE foo counter` / `foo 1` becomes `foo_total`); we undo
  that using the `# TYPE` lines. Histogram and summary samples keep `_bucket`/`_sum`/`_count` and
  their `le`/`quantile` labels; those and counters are stored as counters, the rest as gauges.
- A timestamp written by the exporter is kept; otherwise the pipeline's collection time applies.
- `honor_labels` follows Prometheus: when false, an exposed `site` or `host` label (the labels the
  pipeline adds) is renamed `exported_site` / `exported_host` instead of overwriting ours.
"""

from __future__ import annotations

import re
from re import Pattern
from typing import ClassVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Timestamp
from pydantic import field_validator

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.registry import register
from telemetry.catalog import COMMON_LABELS, Metric, MetricType
from telemetry.schema import Duration

__all__ = ["PrometheusScrapeCollector", "PrometheusScrapeConfig"]

# Ask for the classic text format, which is what the parser below reads.
_ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
_PREFIX = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class PrometheusScrapeConfig(CollectorConfig):
    url: str
    """Scrape URL. A bare `http://host:port` (or with path "/") means `http://host:port/metrics`."""
    timeout_s: Duration = 5.0
    metric_prefix: str = ""
    """Prepended to every sample name, e.g. "gpu_"; filters still see the exporter's names."""
    include: tuple[Pattern[str], ...] = ()
    """Keep only samples whose (exporter's) name matches one of these (re.search, unanchored)."""
    exclude: tuple[Pattern[str], ...] = ()
    honor_labels: bool = False
    headers: dict[str, str] | None = None
    """Extra request headers, e.g. Authorization; never logged or put in error messages."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"invalid URL {value!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"url must be http(s)://host[:port][/path], got {value!r}")
        if url.path in ("", "/"):
            url = url.copy_with(path="/metrics")
        return str(url)

    @field_validator("metric_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if value and not _PREFIX.match(value):
            raise ValueError(f"metric_prefix {value!r} is not a valid start of a Prometheus name")
        return value


def _declared_counters(text: str) -> set[str]:
    """Names given in `# TYPE <name> counter` lines, to tell `foo` from `foo_total` counters."""
    out: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") and line.endswith("counter"):
            parts = line.split()
            if len(parts) == 4 and parts[3] == "counter":
                out.add(parts[2])
    return out


def _timestamp_ns(ts: float | Timestamp | None) -> int | None:
    if ts is None:
        return None
    if isinstance(ts, Timestamp):
        return ts.sec * 1_000_000_000 + ts.nsec
    # The text format carries integer milliseconds; the parser divided them by 1000.
    return round(ts * 1000) * 1_000_000


@register
class PrometheusScrapeCollector(Collector):
    """One exporter endpoint. Inject `client` (e.g. with an httpx.MockTransport) in tests."""

    name: ClassVar[str] = "prometheus"
    config_model: ClassVar[type[CollectorConfig]] = PrometheusScrapeConfig

    def __init__(self, config: CollectorConfig | None = None, *, client: httpx.Client | None = None) -> None:
        super().__init__(config)
        self._client = client
        self._owns_client = client is None

    @property
    def cfg(self) -> PrometheusScrapeConfig:
        assert isinstance(self.config, PrometheusScrapeConfig)
        return self.config

    def _fetch(self) -> str:
        url = self.cfg.url
        if self._client is None:
            self._client = httpx.Client()
        headers = {"Accept": _ACCEPT, **(self.cfg.headers or {})}
        try:
            resp = self._client.get(url, headers=headers, timeout=self.cfg.timeout_s)
        except httpx.HTTPError as exc:
            raise CollectorError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise CollectorError(f"{url}: HTTP {resp.status_code} {resp.reason_phrase}: {resp.text[:200]!r}")
        try:
            return resp.content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CollectorError(f"{url}: response is not UTF-8 text: {exc}") from exc

    def gather(self, emit: Emit) -> None:
        cfg = self.cfg
        text = self._fetch()
        try:
            # Parse everything before emitting anything: a half-parsed scrape is not a scrape.
            families = list(text_string_to_metric_families(text))
        except (ValueError, IndexError) as exc:
            reason = str(exc) or type(exc).__name__
            raise CollectorError(f"{cfg.url}: unparsable exposition text: {reason}") from exc
        counters = _declared_counters(text)
        wanted: dict[str, bool] = {}
        metrics: dict[str, Metric] = {}
        for family in families:
            # Undo the parser's `_total` suffix when the exporter declared the counter without it.
            strip_total = (
                family.type == "counter" and family.name in counters and (family.name + "_total" not in counters)
            )
            for sample in family.samples:
                name = sample.name[:-6] if strip_total and sample.name.endswith("_total") else sample.name
                keep = wanted.get(name)
                if keep is None:
                    keep = wanted[name] = self._wanted(name)
                if not keep:
                    continue
                metric = metrics.get(name)
                if metric is None:
                    metric = self._family(name, family.type, family.name, family.documentation)
                    metrics[name] = metric
                emit(metric, sample.value, self._labels(sample.labels), _timestamp_ns(sample.timestamp))

    def _wanted(self, name: str) -> bool:
        cfg = self.cfg
        if cfg.include and not any(p.search(name) for p in cfg.include):
            return False
        return not any(p.search(name) for p in cfg.exclude)

    def _family(self, name: str, family_type: str, family_name: str, help_: str) -> Metric:
        type_: MetricType = "gauge"
        if family_type == "counter" or (family_type in ("histogram", "summary") and name != family_name):
            type_ = "counter"  # counters, _bucket, _sum, _count
        full = self.cfg.metric_prefix + name
        try:
            return Metric.external_family(full, type_, help_)
        except ValueError as exc:
            raise CollectorError(f"{self.cfg.url}: {exc}") from exc

    def _labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.cfg.honor_labels or not COMMON_LABELS.intersection(labels):
            return labels
        return {(f"exported_{k}" if k in COMMON_LABELS else k): v for k, v in labels.items()}

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
