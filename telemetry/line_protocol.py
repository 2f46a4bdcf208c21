"""Batches as InfluxDB line protocol, built column-wise with polars.

Shape: one line per sample, `metric,tag=value,... value=<float> <timestamp>`: the metric name is
the measurement, the labels are the tags (sorted by key, as InfluxDB recommends), the one field
is `value`. That is Telegraf's Prometheus convention (`metric_version = 1`), and VictoriaMetrics
run with `-influxSkipSingleField` stores it under the metric name itself, so what we write reads
back under our catalog's names.

Why column-wise: a batch holds many samples of few series. The escaped `measurement,tags` prefix
is built once per series (and cached across batches, bounded, as an Arrow column), the values and
timestamps are formatted by polars, and a body's lines are joined by one Arrow kernel
(`binary_join_element_wise`), so no Python code runs per sample. A batch whose samples share one
instant (a scrape) formats that timestamp once.

Escaping follows the line-protocol spec: in a measurement, comma and space; in tag keys and
values, comma, equals sign and space; a backslash is doubled (a parser reads `\\\\` as one
backslash). Newlines and carriage returns cannot be carried at all, so they are written as the
two characters `\\n` / `\\r` (Telegraf does the same). An empty label value is no tag (InfluxDB
refuses empty tag values; an empty Prometheus label is an absent one). Line protocol has no NaN or
infinity: such samples are left out and counted (`skipped_samples`), as are samples with no value
or no timestamp at all.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from telemetry.schema import Batch

__all__ = ["PRECISION_DIVISOR", "LineEncoder", "Precision", "escape_measurement", "escape_tag"]

Precision = Literal["ns", "us", "ms", "s"]
PRECISION_DIVISOR: dict[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_TAG = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"})


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT)


def escape_tag(text: str) -> str:
    """A tag key or value (field keys escape the same way)."""
    return text.translate(_TAG)


def series_prefix(metric: str, labels_json: str) -> str:
    """`measurement,k=v,...` for one series, tags sorted by key, empty values left out."""
    labels: dict[str, str] = json.loads(labels_json) if labels_json != "{}" else {}
    parts = [escape_measurement(metric)]
    parts.extend(f"{escape_tag(k)}={escape_tag(str(v))}" for k, v in sorted(labels.items()) if v != "")
    return ",".join(parts)


_SEED = 0x5EED
_EMPTY, _SPACE, _NEWLINE = (pa.scalar(text, pa.large_string()) for text in ("", " ", "\n"))


def _large(column: pl.Series) -> pa.LargeStringArray:
    """A polars string column as one Arrow large_string array (offsets a body can slice by)."""
    array = column.rechunk().to_arrow()
    return array if array.type == pa.large_string() else array.cast(pa.large_string())


def _data(lines: pa.LargeStringArray) -> bytes:
    """The lines' bytes, back to back: a slice of the array's data buffer, copied once."""
    _, offsets_buffer, data = lines.buffers()
    offsets = memoryview(offsets_buffer).cast("q")[lines.offset : lines.offset + len(lines) + 1]
    return data[offsets[0] : offsets[-1]].to_pybytes()


class LineEncoder:
    """Encodes batches to line protocol bodies of at most `lines_per_body` lines each.

    Two caches keep per-series work out of the steady state. A batch with exactly the series, in
    the same order, of a recent batch (a collector's next cycle) reuses that batch's prefix column
    outright (up to `templates` of them and `cache_series` rows; checked column-equal, not trusted
    by a key). Any other batch joins its series against the cache of up to `cache_series`
    prefixes on a 64-bit hash of (metric, labels), checked against the cached names; only series
    never seen are escaped in Python. Beyond the bound the cache starts over (a long-running agent
    sees series come and go)."""

    def __init__(
        self, precision: Precision = "ns", lines_per_body: int = 5_000, cache_series: int = 500_000, templates: int = 32
    ) -> None:
        if precision not in PRECISION_DIVISOR:
            raise ValueError(f"precision must be one of {sorted(PRECISION_DIVISOR)}, got {precision!r}")
        if lines_per_body < 1:
            raise ValueError("lines_per_body must be at least 1")
        self.precision = precision
        self.lines_per_body = lines_per_body
        self.cache_series = cache_series
        self.max_templates = templates
        self.skipped_samples = 0
        """Samples left out because their value is NaN or infinite (line protocol has neither)."""
        self._cache = pl.DataFrame(
            schema={"key": pl.UInt64, "metric": pl.String, "labels": pl.String, "prefix": pl.String}
        )
        self._templates: OrderedDict[tuple[object, ...], tuple[pl.Series, pl.Series, pa.LargeStringArray]] = (
            OrderedDict()
        )
        self._template_rows = 0
        """Rows held by the templates, bounded by `cache_series` like the cache."""

    @property
    def cached_series(self) -> int:
        return self._cache.height

    def bodies(self, batch: Batch) -> Iterator[bytes]:
        """The batch's lines, `lines_per_body` at a time, as UTF-8 request bodies (each line ends in
        a newline), joined one body at a time."""
        frame = batch.frame
        value, stamp = frame["value"], frame["ts_ns"]
        if value.null_count() or stamp.null_count() or not value.is_finite().all():  # counts: O(1)
            # a null would void its whole line in the join below
            writable = frame.filter(pl.col("value").is_finite() & pl.col("ts_ns").is_not_null())
            self.skipped_samples += frame.height - writable.height
            frame = writable
        if not frame.height:
            return
        prefixes = self._prefixes(frame)
        divisor = PRECISION_DIVISOR[self.precision]
        stamps = frame["ts_ns"] if divisor == 1 else frame["ts_ns"] // divisor
        values = _large(frame["value"].cast(pl.String))
        if stamps.min() == stamps.max():  # a scrape's samples share their instant
            tail: list[pa.Scalar | pa.Array] = [pa.scalar(f" {stamps[0]}\n", pa.large_string())]
        else:
            tail = [_SPACE, _large(stamps.cast(pl.String)), _NEWLINE]
        for start in range(0, frame.height, self.lines_per_body):
            n = min(self.lines_per_body, frame.height - start)
            parts = [part.slice(start, n) if isinstance(part, pa.Array) else part for part in tail]
            lines = pc.binary_join_element_wise(prefixes.slice(start, n), values.slice(start, n), *parts, _EMPTY)
            yield _data(lines)

    def _prefixes(self, frame: pl.DataFrame) -> pa.LargeStringArray:
        """`measurement,tags value=` for every row of `frame`, in its order."""
        metric, labels = frame["metric"], frame["labels"]
        key = (frame.height, metric[0], labels[0], metric[-1], labels[-1])
        template = self._templates.get(key)
        if template is not None and template[1].equals(labels) and template[0].equals(metric):
            self._templates.move_to_end(key)
            return template[2]
        prefixes = _large(self._joined(frame.select("metric", "labels")))
        if template is not None:
            self._template_rows -= template[0].len()
        self._templates[key] = (metric, labels, prefixes)
        self._template_rows += metric.len()
        while self._templates and (
            len(self._templates) > self.max_templates or self._template_rows > self.cache_series
        ):
            self._template_rows -= self._templates.popitem(last=False)[1][0].len()
        return prefixes

    def _joined(self, names: pl.DataFrame) -> pl.Series:
        keyed = names.with_columns(key=pl.struct("metric", "labels").hash(_SEED))
        joined = keyed.join(self._cache, on="key", how="left", maintain_order="left", suffix="_cached")
        cached = joined["metric_cached"].is_not_null()
        same = (joined["metric"] == joined["metric_cached"]) & (joined["labels"] == joined["labels_cached"])
        hit = same.fill_null(False)
        if hit.all():
            return joined["prefix"]
        collided = int((cached & ~hit).sum())  # same key, other names: 1 in ~10^7 at a million series
        fresh = joined.filter(~hit).select("key", "metric", "labels").unique("key", keep="first", maintain_order=True)
        fresh = fresh.with_columns(
            prefix=pl.Series(
                [series_prefix(m, lab) + " value=" for m, lab in zip(fresh["metric"], fresh["labels"], strict=True)],
                dtype=pl.String,
            )
        )
        if collided or self._cache.height + fresh.height > self.cache_series:
            self._cache = self._cache.clear()
        if collided:
            return pl.Series(
                [series_prefix(m, lab) + " value=" for m, lab in zip(names["metric"], names["labels"], strict=True)],
                dtype=pl.String,
            )
        self._cache = pl.concat([self._cache, fresh], rechunk=True)
        return keyed.join(self._cache.select("key", "prefix"), on="key", how="left", maintain_order="left")["prefix"]
