"""Typed samples and batches: the one data shape every collector, sink and store agrees on.

A sample is (metric, value, labels, timestamp in ns). Batches are polars frames with a fixed
schema so stores can append them column-wise (Arrow) instead of row by row. Labels travel as a
canonical JSON string (sorted keys, no spaces): it hashes to a stable series id, and DuckDB and
analysts can read it without a custom decoder.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import polars as pl
from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

__all__ = [
    "BATCH_SCHEMA",
    "DURATION_JSON_SCHEMA",
    "MAX_DURATION_S",
    "Batch",
    "ByteSize",
    "Duration",
    "Sample",
    "StrictModel",
    "canonical_labels",
    "now_ns",
    "parse_duration",
    "parse_size",
]


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable once checked,
    and no float is NaN or infinite (YAML's `.nan`/`.inf`: a NaN interval busy-loops a collector,
    an infinite one kills its thread, a NaN retention deletes nothing), whatever the field."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


MAX_DURATION_S = 100 * 365 * 86400.0
"""Longer is a mistake, and beyond ~292 years `threading`'s waits overflow (threading.TIMEOUT_MAX)."""


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like "500ms", "5s", "2m", "1h", "30d": positive, finite
    and at most MAX_DURATION_S, so every wait, deadline and cut-off computed from it is a number."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '5s'")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := _DURATION.match(value)):
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]
        else:
            raise ValueError(f"invalid duration {value!r}: use seconds or a string like 500ms, 5s, 2m, 1h, 30d")
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"a duration must be at most 100 years, got {value!r}")
    return seconds


DURATION_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
        {"type": "string", "pattern": _DURATION.pattern, "description": "seconds, or with a unit: ms, s, m, h, d, w"},
    ],
    "examples": ["2h", "30m", 7200],
}
"""What a Duration accepts, as JSON Schema: without it the schema (the OpenAPI one too) would say
`number` only, and a client reading it would never send the "2h" every route takes."""

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_JSON_SCHEMA, mode="validation")]
"""Seconds; config files and API bodies may write "5s", "2m", "30d"."""


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(value: object) -> float:
    """Bytes from a number or a string like "20GB", "1.5 TB", "512MiB" (SI and binary units)."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '20GB'")
    if isinstance(value, int | float):
        size = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(number) :]
        if unit not in _SIZE_UNITS or not number:
            raise ValueError(f"invalid size {value!r}: use bytes or a string like 20GB, 1.5TB, 512MiB")
        try:
            size = float(number) * _SIZE_UNITS[unit]
        except ValueError:
            raise ValueError(f"invalid size {value!r}: use bytes or a string like 20GB, 1.5TB, 512MiB") from None
    else:
        raise ValueError(f"invalid size {value!r}: use bytes or a string like 20GB")
    if not (size >= 0 and size < 1e18):
        raise ValueError(f"size {value!r} is outside 0 .. 1 EB")
    return size


ByteSize = Annotated[int, BeforeValidator(lambda value: int(parse_size(value)))]
"""Bytes; config files may write "32MiB", "10MB" (SI and binary units, as parse_size)."""


def now_ns() -> int:
    return time.time_ns()


def canonical_labels(labels: Mapping[str, str]) -> str:
    """Stable text form of a label set; equal sets give equal strings (and series ids)."""
    if not labels:
        return "{}"
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Sample:
    metric: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    ts_ns: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "labels": dict(self.labels), "ts_ns": self.ts_ns}


BATCH_SCHEMA: dict[str, pl.DataType] = {
    "metric": pl.String(),
    "labels": pl.String(),
    "value": pl.Float64(),
    "ts_ns": pl.Int64(),
}


class Batch:
    """An immutable group of samples, stored as a polars frame with BATCH_SCHEMA."""

    __slots__ = ("frame",)

    def __init__(self, frame: pl.DataFrame) -> None:
        missing = set(BATCH_SCHEMA) - set(frame.columns)
        if missing:
            raise ValueError(f"batch frame lacks columns {sorted(missing)}")
        self.frame = frame.select([pl.col(name).cast(dtype, strict=True) for name, dtype in BATCH_SCHEMA.items()])

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> Batch:
        metrics: list[str] = []
        labels: list[str] = []
        values: list[float] = []
        stamps: list[int] = []
        for s in samples:
            metrics.append(s.metric)
            labels.append(canonical_labels(s.labels))
            values.append(float(s.value))
            stamps.append(s.ts_ns)
        return cls(
            pl.DataFrame(
                {"metric": metrics, "labels": labels, "value": values, "ts_ns": stamps},
                schema=BATCH_SCHEMA,
            )
        )

    @classmethod
    def empty(cls) -> Batch:
        return cls(pl.DataFrame(schema=BATCH_SCHEMA))

    @classmethod
    def concat(cls, batches: Iterable[Batch]) -> Batch:
        frames = [b.frame for b in batches if len(b)]
        return cls(pl.concat(frames)) if frames else cls.empty()

    def __len__(self) -> int:
        return self.frame.height

    def samples(self) -> Iterator[Sample]:
        for metric, labels, value, ts in self.frame.iter_rows():
            yield Sample(metric, value, json.loads(labels), ts)

    def with_labels(self, extra: Mapping[str, str]) -> Batch:
        """Add labels (site, host) to every sample; existing keys win, so a collector can override."""
        if not extra or not len(self):
            return self
        rows = [canonical_labels({**extra, **json.loads(text)}) for text in self.frame["labels"].unique().to_list()]
        mapping = dict(zip(self.frame["labels"].unique().to_list(), rows, strict=True))
        return Batch(self.frame.with_columns(pl.col("labels").replace_strict(mapping)))
