"""Batches as InfluxDB line protocol, built column-wise with polars.

Shape: one line per sample, `metric,tag=value,... value=<float> <timestamp>`: the metric name is
the measurement, the labels are the tags (sorted by key, as InfluxDB recommends), the one field
is `value`. That is Telegraf's Prometheus convention (`metric_version = 1`), and VictoriaMetrics
run with `-influxSkipSingleField` stores it under the metric name itself, so what we write reads
back under our catalog's names.

Why column-wise: a batch holds many samples of few series. The escaped `measurement,tags` prefix
is built once per series (and cached across batches, bounded), the values and timestamps are
formatted by polars, and a chunk of lines is joined in one call, so no Python code runs per sample.

Escaping follows the line-protocol spec: in a measurement, comma and space; in tag keys and
values, comma, equals sign and space; a backslash is doubled (a parser reads `\\\\` as one
backslash). Newlines and carriage returns cannot be carried at all, so they are written as the
two characters `\\n` / `\\r` (Telegraf does the same). An empty label value is no tag (InfluxDB
refuses empty tag values; an empty Prometheus label is an absent one). Line protocol has no NaN or
infinity: such samples are left out and counted (`skipped_samples`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

import polars as pl

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


class LineEncoder:
    """Encodes batches to line protocol bodies of at most `lines_per_body` lines each.

    Keeps the escaped prefix of up to `cache_series` series; beyond that the cache starts over
    (a long-running agent sees series come and go; the bound keeps its memory flat)."""

    def __init__(self, precision: Precision = "ns", lines_per_body: int = 5_000, cache_series: int = 500_000) -> None:
        if precision not in PRECISION_DIVISOR:
            raise ValueError(f"precision must be one of {sorted(PRECISION_DIVISOR)}, got {precision!r}")
        if lines_per_body < 1:
            raise ValueError("lines_per_body must be at least 1")
        self.precision = precision
        self.lines_per_body = lines_per_body
        self.cache_series = cache_series
        self.skipped_samples = 0
        """Samples left out because their value is NaN or infinite (line protocol has neither)."""
        self._prefixes: dict[tuple[str, str], str] = {}

    def bodies(self, batch: Batch) -> Iterator[bytes]:
        """The batch's lines, `lines_per_body` at a time, as UTF-8 request bodies."""
        frame = batch.frame
        finite = frame.filter(pl.col("value").is_finite())
        self.skipped_samples += frame.height - finite.height
        if not finite.height:
            return
        with_prefix = finite.join(self._prefixes_of(finite), on=["metric", "labels"], how="left", maintain_order="left")
        divisor = PRECISION_DIVISOR[self.precision]
        stamp = pl.col("ts_ns") if divisor == 1 else pl.col("ts_ns") // divisor
        lines = with_prefix.select(
            pl.concat_str(
                [
                    pl.col("prefix"),
                    pl.lit(" value="),
                    pl.col("value").cast(pl.String),
                    pl.lit(" "),
                    stamp.cast(pl.String),
                ]
            )
        ).to_series()
        for start in range(0, lines.len(), self.lines_per_body):
            yield lines.slice(start, self.lines_per_body).str.join("\n").item().encode()

    def _prefixes_of(self, frame: pl.DataFrame) -> pl.DataFrame:
        """(metric, labels, prefix) for every series in `frame`, from the cache where it can."""
        series = frame.select("metric", "labels").unique(maintain_order=True)
        cache = self._prefixes
        if len(cache) + series.height > self.cache_series:
            cache.clear()
        keys = list(zip(series["metric"].to_list(), series["labels"].to_list(), strict=True))
        prefixes = []
        for key in keys:
            prefix = cache.get(key)
            if prefix is None:
                prefix = cache[key] = series_prefix(*key)
            prefixes.append(prefix)
        return series.with_columns(prefix=pl.Series(prefixes, dtype=pl.String))
