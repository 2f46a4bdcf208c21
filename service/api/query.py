"""Time series: samples of a metric over a range, downsampled in the store."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.api.deps import BAD_REQUEST, READ, StoreDep, v1_router
from service.api.errors import ApiError
from service.api.latest import dumps
from service.api.params import selection_of, time_ns
from service.api.sites import json_response
from telemetry.stores.base import AGGREGATIONS

__all__ = ["MAX_POINTS", "MAX_SERIES", "router"]

MAX_SERIES = 5000
MAX_POINTS = 11_000

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


@router.get(
    "/query",
    response_model=QueryOut,
    dependencies=READ,
    responses=BAD_REQUEST,
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
    span = end_ns - start_ns
    step_ns = max(int((step or 0) * 1e9), math.ceil(span / max_points), 1_000_000_000)
    selection = selection_of([metric], label, start, end)
    series_count = len(store.series(selection))
    if series_count > MAX_SERIES:
        raise ApiError(400, "too_many_series", f"{series_count} series match; narrow the query with label=key=value")
    assert agg in AGGREGATIONS
    frame = store.query(selection, step_ns=step_ns, agg=agg)
    out: list[dict[str, Any]] = []
    for (metric_name, labels), part in frame.group_by(["metric", "labels"], maintain_order=True):
        points = [
            [ts / 1e9, v if v is None or math.isfinite(v) else None]
            for ts, v in zip(part["ts_ns"].to_list(), part["value"].to_list(), strict=True)
        ]
        out.append({"metric": metric_name, "labels": json.loads(str(labels)), "points": points})
    body = {"start_s": start_ns / 1e9, "end_s": end_ns / 1e9, "step_s": step_ns / 1e9, "agg": agg, "series": out}
    return json_response(dumps(body))
