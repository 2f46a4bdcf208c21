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

Credentials: `basic_auth` (username, and the password from `password_file` or `password_env`) or a
bearer token (`bearer_token_file` / `bearer_token_env`), named as in Prometheus' scrape config and
read on every scrape (rotation needs no restart). A password written into the URL still works but
belongs in a file; error messages name the URL with its credentials masked (telemetry.redact).

Limits: an exporter is outside input, and one once sent 480k series in 40 s, 64 KB label values,
NUL bytes and 500 labels on one sample. So each scrape is bounded as Prometheus bounds it, with
its names and its rule that exceeding a limit fails the whole scrape: `sample_limit` (samples kept
after include/exclude), `label_limit` (labels on one sample), `label_name_length_limit` and
`label_value_length_limit` (UTF-8 bytes), `body_size_limit` (bytes after decompression; the body
is read in chunks and the read stops at the limit, so a 1 GB answer is never downloaded). Unlike
Prometheus, whose limits default to none, each has a default that a real exporter stays far below;
0 means no limit. A refusal is the collector's error, naming the limit and the numbers, and is
counted by limit (`ctwin_scrape_limit_exceeded_total{collector,limit}`). Invalid UTF-8 and NUL
bytes anywhere in the body are refused with the line they are on.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from re import Pattern
from typing import ClassVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Timestamp
from pydantic import Field, field_validator, model_validator

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.registry import register
from collectors.secret import ENV_NAME, read_secret
from telemetry.catalog import COMMON_LABELS, Metric, MetricType
from telemetry.redact import redact
from telemetry.schema import ByteSize, Duration, StrictModel

__all__ = ["BasicAuth", "PrometheusScrapeCollector", "PrometheusScrapeConfig", "ScrapeLimitError"]

# Ask for the classic text format, which is what the parser below reads.
_ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
_PREFIX = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class ScrapeLimitError(CollectorError):
    """A scrape refused because the exporter exceeded one of the config's limits; `limit` names
    it (the pipeline counts refusals by this name)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class BasicAuth(StrictModel):
    """HTTP basic authentication; the password comes from a file or a variable, never the config."""

    username: str = Field(min_length=1)
    password_file: Path | None = None
    password_env: str | None = Field(None, pattern=ENV_NAME)

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("basic_auth needs exactly one of password_file and password_env")
        return self


class PrometheusScrapeConfig(CollectorConfig):
    url: str
    """Scrape URL. A bare `http://host:port` (or with path "/") means `http://host:port/metrics`."""
    basic_auth: BasicAuth | None = None
    bearer_token_file: Path | None = None
    """Sent as `Authorization: Bearer <token>`; re-read on every scrape."""
    bearer_token_env: str | None = Field(None, pattern=ENV_NAME)
    timeout_s: Duration = 5.0
    metric_prefix: str = ""
    """Prepended to every sample name, e.g. "gpu_"; filters still see the exporter's names."""
    include: tuple[Pattern[str], ...] = ()
    """Keep only samples whose (exporter's) name matches one of these (re.search, unanchored)."""
    exclude: tuple[Pattern[str], ...] = ()
    honor_labels: bool = False
    headers: dict[str, str] | None = None
    """Extra request headers, e.g. Authorization; never logged or put in error messages."""
    sample_limit: int = Field(100_000, ge=0)
    """Most samples one scrape may keep (after include/exclude); more fails the scrape. 0: no limit."""
    label_limit: int = Field(64, ge=0)
    """Most labels on one sample (its name not counted). 0: no limit."""
    label_name_length_limit: int = Field(256, ge=0)
    """Longest label name, in UTF-8 bytes. 0: no limit."""
    label_value_length_limit: int = Field(4096, ge=0)
    """Longest label value, in UTF-8 bytes. 0: no limit."""
    body_size_limit: ByteSize = Field(32 * 2**20, ge=0)
    """Largest body, after decompression, e.g. "32MiB"; reading stops there. 0: no limit."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"invalid URL {redact(value)!r}: {redact(exc)}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"url must be http(s)://host[:port][/path], got {redact(value)!r}")
        if url.port is not None and not 0 < url.port < 65536:  # httpx.URL takes any digits
            raise ValueError(f"url port must be 1-65535, got {url.port}")
        if url.path in ("", "/"):
            url = url.copy_with(path="/metrics")
        return str(url)

    @field_validator("metric_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if value and not _PREFIX.match(value):
            raise ValueError(f"metric_prefix {value!r} is not a valid start of a Prometheus name")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> PrometheusScrapeConfig:
        given = [
            name
            for name, present in (
                ("basic_auth", self.basic_auth is not None),
                ("bearer_token_file", self.bearer_token_file is not None),
                ("bearer_token_env", self.bearer_token_env is not None),
                ("a user in the url", bool(httpx.URL(self.url).userinfo)),
                ("an Authorization header", any(k.lower() == "authorization" for k in self.headers or {})),
            )
            if present
        ]
        if len(given) > 1:
            raise ValueError(f"give one way to authenticate, not {' and '.join(given)}")
        return self


def _declared_counters(text: str) -> set[str]:
    """Names given in `# TYPE <name> counter` lines, to tell `foo` from `foo_total` counters."""
    out: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") and line.endswith("counter"):
            parts = line.split()
            if len(parts) == 4 and parts[3] == "counter":
                out.add(parts[2])
    return out


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _read_prefix(resp: httpx.Response, n: int) -> bytes:
    """At most about n bytes of the body (for an error message: never the whole of it)."""
    out = b""
    for chunk in resp.iter_bytes():
        out += chunk
        if len(out) >= n:
            break
    return out[:n]


def _text(body: bytes, shown: str) -> str:
    """The body as text. Invalid UTF-8 and NUL bytes are refused with the line they are on: the
    exposition format is UTF-8, and a NUL in a label value reaches every later reader of the store."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise CollectorError(
            f"{shown}: response is not UTF-8 text: byte 0x{body[exc.start]:02x} at line {line} is invalid"
            f" ({exc.reason}): {_line_start(body, exc.start)!r}"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise CollectorError(
            f"{shown}: a NUL byte at line {line}: {_line_start(text.encode(), len(text[:nul].encode()))!r}"
        )
    return text


def _line_start(body: bytes, at: int) -> str:
    """The line holding byte `at`, up to 80 characters of it, for an error message."""
    start = body.rfind(b"\n", 0, at) + 1
    end = body.find(b"\n", at)
    line = body[start : end if end >= 0 else len(body)]
    return line[:80].decode("utf-8", "replace")


def _sample_lines(text: str) -> int:
    """Samples in an exposition, as its parser counts them: lines neither blank nor comments."""
    return sum(1 for line in text.split("\n") if (stripped := line.strip()) and stripped[0] != "#")


def _utf8_len(text: str, limit: int) -> int:
    """UTF-8 length of `text`, encoded only when its characters alone could exceed `limit`."""
    return len(text) if len(text) * 4 <= limit else len(text.encode())


def _short(text: str, n: int = 60) -> str:
    """A name as an error message shows it: at most n characters, so a 64 KB label stays a line."""
    return text if len(text) <= n else text[:n] + "…"


def _timestamp_ns(ts: float | Timestamp | None) -> int | None:
    """Nanoseconds of an exposed timestamp. ValueError for one that is not a time: NaN, ±Inf, or
    past the ±292 years a 64-bit nanosecond count holds (the store's and the batch's column)."""
    if ts is None:
        return None
    if isinstance(ts, Timestamp):
        ns = ts.sec * 1_000_000_000 + ts.nsec
    elif not math.isfinite(ts):
        raise ValueError(f"timestamp {ts} is not a time")
    elif abs(ts) > _INT64_MAX / 1e9:  # before multiplying: 1e308 s times 1000 is inf
        raise ValueError(f"timestamp {ts:.6g} s is out of range")
    else:  # The text format carries integer milliseconds; the parser divided them by 1000.
        ns = round(ts * 1000) * 1_000_000
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise ValueError(f"timestamp {ts} is out of range")
    return ns


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

    @property
    def shown_url(self) -> str:
        """The URL as error messages name it: credentials masked."""
        return redact(self.cfg.url)

    def _credentials(self) -> tuple[httpx.BasicAuth | None, dict[str, str]]:
        cfg = self.cfg
        if cfg.basic_auth is not None:
            b = cfg.basic_auth
            what = "basic_auth.password_file" if b.password_file is not None else "basic_auth.password_env"
            return httpx.BasicAuth(b.username, read_secret(file=b.password_file, env=b.password_env, what=what)), {}
        if cfg.bearer_token_file is not None or cfg.bearer_token_env is not None:
            what = "bearer_token_file" if cfg.bearer_token_file is not None else "bearer_token_env"
            token = read_secret(file=cfg.bearer_token_file, env=cfg.bearer_token_env, what=what)
            return None, {"Authorization": f"Bearer {token}"}
        return None, {}

    def _fetch(self) -> str:
        url, shown = self.cfg.url, self.shown_url
        if self._client is None:
            self._client = httpx.Client()
        auth, auth_headers = self._credentials()
        headers = {"Accept": _ACCEPT, **(self.cfg.headers or {}), **auth_headers}
        try:
            with self._client.stream("GET", url, headers=headers, timeout=self.cfg.timeout_s, auth=auth) as resp:
                if resp.status_code != 200:
                    start = redact(repr(_read_prefix(resp, 200).decode("utf-8", "replace")))
                    raise CollectorError(f"{shown}: HTTP {resp.status_code} {resp.reason_phrase}: {start}")
                body = self._read_body(resp)
        except httpx.HTTPError as exc:
            # `from None`: httpx's exceptions carry the request, and so the URL with its password
            raise CollectorError(f"{shown}: {type(exc).__name__}: {redact(exc)}") from None
        return _text(body, shown)

    def _read_body(self, resp: httpx.Response) -> bytes:
        """The body, read in chunks up to body_size_limit: a larger one fails the scrape as soon as
        it shows, without reading the rest (or anything, when its Content-Length says so)."""
        limit = self.cfg.body_size_limit
        declared = resp.headers.get("content-length", "")
        plain = resp.headers.get("content-encoding", "identity").lower() == "identity"
        if limit and plain and declared.isdigit() and int(declared) > limit:
            raise ScrapeLimitError(
                "body_size_limit",
                f"{self.shown_url}: body_size_limit exceeded: the body is {int(declared)} bytes, the limit {limit}",
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():  # decompressed: the limit is on what the parser would read
            size += len(chunk)
            if limit and size > limit:
                raise ScrapeLimitError(
                    "body_size_limit",
                    f"{self.shown_url}: body_size_limit exceeded: more than {limit} bytes (stopped reading at {size})",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def gather(self, emit: Emit) -> None:
        text = self._fetch()
        cfg = self.cfg
        if cfg.sample_limit and not (cfg.include or cfg.exclude):  # every sample line is kept: count
            lines = _sample_lines(text)  # them before parsing (480k samples take 5 s to parse)
            if lines > cfg.sample_limit:
                raise ScrapeLimitError(
                    "sample_limit",
                    f"{self.shown_url}: sample_limit exceeded: {lines} samples, the limit {cfg.sample_limit}",
                )
        try:
            # Parse everything before emitting anything: a half-parsed scrape is not a scrape.
            families = list(text_string_to_metric_families(text))
        except (ValueError, IndexError) as exc:
            reason = str(exc) or type(exc).__name__
            raise CollectorError(f"{self.shown_url}: unparsable exposition text: {reason}") from exc
        counters = _declared_counters(text)
        wanted: dict[str, bool] = {}
        metrics: dict[str, Metric] = {}
        out: list[tuple[Metric, float, dict[str, str], int | None]] = []
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
                try:
                    ts_ns = _timestamp_ns(sample.timestamp)
                except ValueError as exc:
                    raise CollectorError(f"{self.shown_url}: sample {sample.name}: {exc}") from None
                self._check_labels(sample.name, sample.labels)
                out.append((metric, sample.value, self._labels(sample.labels), ts_ns))
        if cfg.sample_limit and len(out) > cfg.sample_limit:
            raise ScrapeLimitError(
                "sample_limit",
                f"{self.shown_url}: sample_limit exceeded: {len(out)} samples, the limit {cfg.sample_limit}",
            )
        for metric, value, labels, ts_ns in out:  # all or nothing, as for unparsable text
            emit(metric, value, labels, ts_ns)

    def _check_labels(self, sample: str, labels: dict[str, str]) -> None:
        """Prometheus' per-sample label limits; any breach fails the whole scrape."""
        cfg = self.cfg
        if cfg.label_limit and len(labels) > cfg.label_limit:
            raise ScrapeLimitError(
                "label_limit",
                f"{self.shown_url}: label_limit exceeded: sample {_short(sample)} has {len(labels)} labels,"
                f" the limit {cfg.label_limit}",
            )
        names, values = cfg.label_name_length_limit, cfg.label_value_length_limit
        for key, value in labels.items():
            if names and _utf8_len(key, names) > names:
                raise ScrapeLimitError(
                    "label_name_length_limit",
                    f"{self.shown_url}: label_name_length_limit exceeded: sample {_short(sample)} has a label name"
                    f" of {len(key.encode())} bytes ({_short(key)}), the limit {cfg.label_name_length_limit}",
                )
            if values and _utf8_len(value, values) > values:
                raise ScrapeLimitError(
                    "label_value_length_limit",
                    f"{self.shown_url}: label_value_length_limit exceeded: sample {_short(sample)} label {_short(key)}"
                    f" has a value of {len(value.encode())} bytes, the limit {cfg.label_value_length_limit}",
                )

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
            raise CollectorError(f"{self.shown_url}: {exc}") from exc

    def _labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.cfg.honor_labels or not COMMON_LABELS.intersection(labels):
            return labels
        return {(f"exported_{k}" if k in COMMON_LABELS else k): v for k, v in labels.items()}

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
