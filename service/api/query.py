"""Time series: samples of a metric over a range, downsampled in the store."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from service.api.deps import BAD_REQUEST, READ, StoreDep, v1_router
from service.api.errors import ApiError, ErrorBody
from service.api.latest import dumps
from service.api.params import selection_of, time_ns
from telemetry.stores.base import AGGREGATIONS, UnknownMetricError, check_metrics

__all__ = ["MAX_POINTS", "MAX_SERIES", "MAX_TOTAL_POINTS", "bucket_count", "bucket_step", "router"]

MAX_SERIES = 5000
MAX_POINTS = 11_000
MAX_TOTAL_POINTS = 1_000_000
"""Series × buckets of one answer (about 40 MB in the store's frame): a 3 M-point answer took 39 s
and 1.65 GB; 5,000 series × 11,000 points would have needed ~30 GB."""

router = v1_router("query")


class SeriesOut(BaseModel):
    metric: str
    labels: dict[str, str]
    points: list[tuple[float, float | None]] = Field(description="[unix seconds of the bucket start, value]")


class QueryOut(BaseModel):
    start_s: float
    end_s: float
    step_s: float = Field(description="Bucket width actually used (widened so no series exceeds max_points)")
    agg: str
    series: list[SeriesOut]


def bucket_count(start_ns: int, end_ns: int, step_ns: int) -> int:
    """Step-aligned buckets (the store's: ts - ts % step) that [start, end) touches."""
    return (end_ns - 1) // step_ns - start_ns // step_ns + 1


def bucket_step(start_ns: int, end_ns: int, max_points: int, asked_ns: int = 0) -> int:
    """The smallest step, at least `asked_ns` and 1 s, whose aligned buckets over [start, end) are
    at most `max_points`: ceil(span / max_points) alone can touch one bucket more when the range
    does not start on a bucket edge (max_points=5 used to give 6 points)."""
    step = max(asked_ns, math.ceil((end_ns - start_ns) / max_points), 1_000_000_000)
    while bucket_count(start_ns, end_ns, step) > max_points:
        step += max(1, step // 1000)
    return step


@router.get(
    "/query",
    response_model=QueryOut,
    dependencies=READ,
    responses={**BAD_REQUEST, 404: {"model": ErrorBody, "description": "No such metric in the store"}},
    summary="Samples of a metric over a range, downsampled on the server",
)
def query(
    store: StoreDep,
    metric: Annotated[str, Query(min_length=1, max_length=200, description="Metric name, e.g. node_load1")],
    label: Annotated[list[str], Query(description="key=value, repeatable (exact match)")] = [],  # noqa: B006
    start: Annotated[str, Query(description="now, -1h, ISO-8601 or unix seconds")] = "-1h",
    end: Annotated[str, Query(description="now, -5m, ISO-8601 or unix seconds")] = "now",
    step: Annotated[float | None, Query(gt=0, le=1e9, description="Bucket width in seconds")] = None,
    agg: Annotated[Literal["avg", "min", "max", "last", "sum"], Query()] = "avg",
    max_points: Annotated[int, Query(ge=1, le=MAX_POINTS, description="Most buckets per series")] = 2000,
) -> Response:
    start_ns = time_ns(start, "start", None) or 0
    end_ns = time_ns(end, "end", None) or 0
    if end_ns <= start_ns:
        raise ApiError(400, "bad_query", f"empty range: end ({end}) is not after start ({start})")
    step_ns = bucket_step(start_ns, end_ns, max_points, int((step or 0) * 1e9))
    try:
        check_metrics(store, [metric])
    except UnknownMetricError as exc:
        raise ApiError(404, exc.code, exc.message) from None
    selection = selection_of([metric], label, start, end)
    series_count = len(store.series(selection))
    if series_count > MAX_SERIES:
        raise ApiError(400, "too_many_series", f"{series_count} series match; narrow the query with label=key=value")
    buckets = bucket_count(start_ns, end_ns, step_ns)
    if series_count * buckets > MAX_TOTAL_POINTS:
        raise ApiError(
            400,
            "too_many_points",
            f"{series_count} series × {buckets} buckets = {series_count * buckets:,} points; at most"
            f" {MAX_TOTAL_POINTS:,} per query: narrow it with label=key=value, shorten the range or lower max_points",
        )
    assert agg in AGGREGATIONS
    frame = store.query(selection, step_ns=step_ns, agg=agg)
    head = {"start_s": start_ns / 1e9, "end_s": end_ns / 1e9, "step_s": step_ns / 1e9, "agg": agg}
    return StreamingResponse(_stream(head, frame), media_type="application/json")


def _stream(head: dict[str, Any], frame: pl.DataFrame) -> Iterator[bytes]:
    """The answer one series at a time: a large one is never a whole list of Python objects."""
    yield dumps(head)[:-1] + b',"series":['
    for i, ((metric_name, labels), part) in enumerate(frame.group_by(["metric", "labels"], maintain_order=True)):
        points = [
            [ts / 1e9, v if v is None or math.isfinite(v) else None]
            for ts, v in zip(part["ts_ns"].to_list(), part["value"].to_list(), strict=True)
        ]
        series = {"metric": metric_name, "labels": json.loads(str(labels)), "points": points}
        yield (b"," if i else b"") + dumps(series)
    yield b"]}"
