"""The `/v1` API: sites, nodes, containers, links (latest values with data age), queues, a
downsampled time-series query, and dataset export. Every route needs a token with a scope.

Current values come from the live twin's snapshot (no store I/O); list answers are serialised
once per snapshot version and second (service/api/latest.py), so a thousand-node answer costs a
lookup.
Handlers contain no logic beyond translating HTTP to twin/store calls and errors to 4xx.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from service.api.errors import ApiError, ErrorBody
from service.api.latest import dumps, json_cache
from service.auth import AUTH_RESPONSES, require_scope
from service.timeparse import parse_time_ns
from telemetry.export import export_jobs, export_samples
from telemetry.jobs import JOB_SCHEMA, JOB_STATES
from telemetry.stores.base import AGGREGATIONS, QueryError, Selection
from twin.live import LiveTwin
from twin.view import ContainerView, LinkView, NodeView, SiteView

__all__ = ["router"]

SiteName = Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)]
Responses = dict[int | str, dict[str, Any]]
_BAD_REQUEST: Responses = {400: {"model": ErrorBody, "description": "A parameter that cannot be used as given"}}
_NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such site"}}
_MAX_SERIES = 5000
_MAX_POINTS = 11_000

router = APIRouter(prefix="/v1", responses={**AUTH_RESPONSES, 422: {"model": ErrorBody}})
read = [Depends(require_scope("read"))]
export = [Depends(require_scope("export"))]


# ------------------------------------------------------------------------------ response models
class SitesOut(BaseModel):
    generated_at_s: float = Field(description="Server time of the answer; data_age_s is relative to it")
    items: list[SiteView]


class NodesOut(BaseModel):
    generated_at_s: float
    items: list[NodeView]


class ContainersOut(BaseModel):
    generated_at_s: float
    items: list[ContainerView]


class LinksOut(BaseModel):
    generated_at_s: float
    items: list[LinkView]


class QueueOut(BaseModel):
    site: str
    generated_at_s: float
    jobs: list[dict[str, Any]] = Field(description="Pending and running jobs (job-history schema)")


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


# ------------------------------------------------------------------------------ helpers
def _twin(request: Request) -> LiveTwin:
    twin: LiveTwin = request.app.state.twin
    return twin


def _latest(request: Request, path: str, site: str | None = None) -> Response:
    twin = _twin(request)
    _known_site(twin, site)
    return _json(json_cache(request.app).latest(twin, path, site))


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _known_site(twin: LiveTwin, site: str | None) -> None:
    if site is None:
        return
    try:
        twin.topology.site(site)
    except KeyError:
        names = [s.name for s in twin.topology.sites]
        raise ApiError(404, "not_found", f"no site named {site!r}; sites: {names}") from None


def _time_ns(text: str | None, name: str, default: int | None) -> int | None:
    if text is None:
        return default
    try:
        return parse_time_ns(text)
    except ValueError as exc:
        raise ApiError(400, "bad_time", f"{name}: {exc}") from None


def _labels(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(400, "bad_label", f"label {item!r} is not key=value")
        labels[key] = value
    return labels


def _selection(metrics: Sequence[str], labels: Sequence[str], start: str | None, end: str | None) -> Selection:
    try:
        return Selection(
            metrics=tuple(metrics),
            labels=_labels(labels),
            start_ns=_time_ns(start, "start", None),
            end_ns=_time_ns(end, "end", None),
        )
    except QueryError as exc:
        raise ApiError(400, "bad_query", str(exc)) from None


# ------------------------------------------------------------------------------ topology and state
@router.get("/sites", response_model=SitesOut, dependencies=read, summary="Every site with its state and load")
def sites(request: Request) -> Response:
    return _latest(request, "/v1/sites")


@router.get("/sites/{site}", response_model=SiteView, dependencies=read, responses=_NOT_FOUND, summary="One site")
def site(request: Request, site: str) -> Response:
    twin = _twin(request)
    _known_site(twin, site)
    return _json(dumps(twin.site(site)))


@router.get(
    "/sites/{site}/jobs",
    response_model=QueueOut,
    dependencies=read,
    responses=_NOT_FOUND,
    summary="A batch site's pending and running jobs, as its collector last saw them",
)
def site_jobs(request: Request, site: str) -> Response:
    twin = _twin(request)
    _known_site(twin, site)
    queue = twin.queue(site).drop("user", "group")  # people are not named by the read scope
    body = {"site": site, "generated_at_s": twin.clock(), "jobs": queue.to_dicts()}
    return _json(dumps(body))


@router.get("/nodes", response_model=NodesOut, dependencies=read, responses=_NOT_FOUND, summary="Latest node values")
def nodes(request: Request, site: SiteName | None = None) -> Response:
    return _latest(request, "/v1/nodes", site)


@router.get(
    "/containers",
    response_model=ContainersOut,
    dependencies=read,
    responses=_NOT_FOUND,
    summary="Latest container values",
)
def containers(request: Request, site: SiteName | None = None) -> Response:
    return _latest(request, "/v1/containers", site)


@router.get("/links", response_model=LinksOut, dependencies=read, summary="Links between sites")
def links(request: Request) -> Response:
    return _latest(request, "/v1/links")


# ------------------------------------------------------------------------------ time series
@router.get(
    "/query",
    response_model=QueryOut,
    dependencies=read,
    responses=_BAD_REQUEST,
    summary="Samples of a metric over a range, downsampled on the server",
)
def query(
    request: Request,
    metric: Annotated[str, Query(min_length=1, max_length=200, description="Metric name, e.g. node_load1")],
    label: Annotated[list[str], Query(description="key=value, repeatable (exact match)")] = [],  # noqa: B006
    start: Annotated[str, Query(description="now, -1h, ISO-8601 or unix seconds")] = "-1h",
    end: Annotated[str, Query(description="now, -5m, ISO-8601 or unix seconds")] = "now",
    step: Annotated[float | None, Query(gt=0, le=1e9, description="Bucket width in seconds")] = None,
    agg: Annotated[Literal["avg", "min", "max", "last", "sum"], Query()] = "avg",
    max_points: Annotated[int, Query(ge=1, le=_MAX_POINTS, description="Most buckets per series")] = 2000,
) -> Response:
    store = request.app.state.store
    start_ns = _time_ns(start, "start", None) or 0
    end_ns = _time_ns(end, "end", None) or 0
    if end_ns <= start_ns:
        raise ApiError(400, "bad_query", f"empty range: end ({end}) is not after start ({start})")
    span = end_ns - start_ns
    step_ns = max(int((step or 0) * 1e9), math.ceil(span / max_points), 1_000_000_000)
    selection = _selection([metric], label, start, end)
    series_count = len(store.series(selection))
    if series_count > _MAX_SERIES:
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
    return _json(dumps(body))


# ------------------------------------------------------------------------------ export
def _download(path: Path, manifest_json: str, fmt: str, tmp: tempfile.TemporaryDirectory[str]) -> FileResponse:
    manifest = json.loads(manifest_json)
    return FileResponse(
        path,
        media_type="application/vnd.apache.parquet" if fmt == "parquet" else "text/csv",
        filename=path.name,
        headers={
            "X-Ctwin-Rows": str(manifest["rows"]),
            "X-Ctwin-Sha256": manifest["sha256"],
            "X-Ctwin-Manifest": json.dumps(manifest, separators=(",", ":"), ensure_ascii=True),
        },
        background=BackgroundTask(tmp.cleanup),
    )


_FILE: Responses = {
    200: {"content": {"application/vnd.apache.parquet": {}, "text/csv": {}}, "description": "The dataset"}
}


@router.get(
    "/export/samples",
    dependencies=export,
    response_class=FileResponse,
    responses={**_BAD_REQUEST, **_FILE},
    summary="Download samples as Parquet or CSV (one column per label); the manifest is in X-Ctwin-Manifest",
)
def export_samples_route(
    request: Request,
    metric: Annotated[list[str], Query(description="Metric names, repeatable; none = all")] = [],  # noqa: B006
    label: Annotated[list[str], Query(description="key=value, repeatable")] = [],  # noqa: B006
    start: str | None = None,
    end: str | None = None,
    format: Literal["parquet", "csv"] = "parquet",
) -> FileResponse:
    selection = _selection(metric, label, start, end)
    tmp = tempfile.TemporaryDirectory(prefix="ctwin-export-")
    path = Path(tmp.name) / f"samples-{int(time.time())}.{format}"
    try:
        manifest = export_samples(request.app.state.store, selection, path, format)
    except QueryError as exc:
        tmp.cleanup()
        raise ApiError(400, "bad_query", str(exc)) from None
    except BaseException:
        tmp.cleanup()
        raise
    return _download(path, manifest.to_json(), format, tmp)


@router.get(
    "/export/jobs",
    dependencies=export,
    response_class=FileResponse,
    responses={**_BAD_REQUEST, **_NOT_FOUND, **_FILE},
    summary="Download the job history with users and groups pseudonymised (salted hash)",
)
def export_jobs_route(
    request: Request,
    site: SiteName | None = None,
    state: Annotated[list[Literal[JOB_STATES]], Query()] = [],  # type: ignore[valid-type]  # noqa: B006
    start: Annotated[str | None, Query(description="Submitted at or after")] = None,
    end: Annotated[str | None, Query(description="Submitted before")] = None,
    format: Literal["parquet", "csv"] = "parquet",
) -> FileResponse:
    twin = _twin(request)
    _known_site(twin, site)
    from_ns, to_ns = _time_ns(start, "start", None), _time_ns(end, "end", None)
    tmp = tempfile.TemporaryDirectory(prefix="ctwin-export-")
    path = Path(tmp.name) / f"jobs-{int(time.time())}.{format}"
    try:
        manifest = export_jobs(
            request.app.state.store,
            path,
            format,
            request.app.state.salt,
            site=site,
            states=list(state),
            submitted_from_s=None if from_ns is None else from_ns // 1_000_000_000,
            submitted_to_s=None if to_ns is None else to_ns // 1_000_000_000,
        )
    except BaseException:
        tmp.cleanup()
        raise
    return _download(path, manifest.to_json(), format, tmp)


assert set(JOB_SCHEMA) >= {"user", "group"}


# ------------------------------------------------------------------------------ forecasts
class ForecastJobOut(BaseModel):
    job_id: str
    hypothetical: bool
    submit_s: int | None
    procs: int | None
    req_s: int | None
    predicted_start_s: int | None = Field(description="Null for a job the site cannot run (wider than it)")
    predicted_end_s: int | None
    predicted_wait_s: int | None = Field(description="From the site's clock now_s")
    scheduler_start_s: int | None = Field(None, description="The scheduler's own estimate (Slurm), when it gave one")
    start_early_s: int | None = None
    start_late_s: int | None = None


class RuntimeAccuracyOut(BaseModel):
    scored: int = Field(description="Runtime predictions scored against the runtime that followed")
    mean_accuracy: float | None = Field(description="mean of min(actual, predicted) / max(actual, predicted)")
    mae_s: float | None
    under_share: float | None = Field(description="Share of jobs that ran longer than predicted")


class AccuracyOut(BaseModel):
    scored: int = Field(description="Past forecasts scored against the start that followed")
    within_1min: float | None
    within_10min: float | None
    within_1h: float | None
    median_abs_error_s: float | None
    runtime: RuntimeAccuracyOut = Field(description="The learned runtime model's predictions, scored")


class ForecastOut(BaseModel):
    site: str
    now_s: int = Field(description="The site's clock: trace time for a replayed site")
    processors: int
    predictor: str
    seconds: float = Field(description="Time the forecast took")
    corrections: dict[str, int] = Field(description="Jobs changed or left out, by reason")
    jobs: list[ForecastJobOut]
    accuracy: AccuracyOut


class WhatIfIn(BaseModel):
    model_config = {"extra": "forbid"}

    cores: int = Field(ge=1, le=10_000_000, description="CPUs the job needs")
    walltime_s: int = Field(ge=1, le=366 * 86400, description="Requested time (its kill limit)")
    user: str | None = Field(None, max_length=128, description="For the user's history (ave2)")
    predictor: Literal["auto", "learned", "ave2", "requested"] = "auto"


class WhatIfOut(BaseModel):
    site: str
    now_s: int
    predictor: str
    queue_pending: int
    predicted_start_s: int | None
    predicted_wait_s: int | None
    start_early_s: int | None = None
    start_late_s: int | None = None


_NO_QUEUE: Responses = {409: {"model": ErrorBody, "description": "The site has no batch scheduler state (yet)"}}


def _forecast(request: Request, site: str, predictor: str, extra: list[Any] | None = None) -> Any:
    twin = _twin(request)
    _known_site(twin, site)
    try:
        return twin.forecast(site, predictor, extra)  # type: ignore[arg-type]
    except LookupError as exc:
        raise ApiError(409, "no_batch_queue", str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, "bad_job", str(exc)) from None


def _accuracy(twin: LiveTwin, site: str) -> dict[str, Any]:
    acc = twin.forecasts.accuracy(site)
    return {
        "scored": acc.scored,
        "within_1min": acc.within_1min,
        "within_10min": acc.within_10min,
        "within_1h": acc.within_1h,
        "median_abs_error_s": acc.median_abs_error_s,
        "runtime": {k: v for k, v in vars(twin.runtimes.accuracy(site)).items() if k != "site"},
    }


@router.get(
    "/sites/{site}/forecast",
    response_model=ForecastOut,
    dependencies=read,
    responses={**_NOT_FOUND, **_NO_QUEUE},
    summary="Predicted start of every pending job of a batch site, by simulating its queue forward",
)
def site_forecast(
    request: Request,
    site: str,
    predictor: Annotated[
        Literal["auto", "learned", "ave2", "requested"],
        Query(description="auto: the learned runtime model when one is loaded, else ave2"),
    ] = "auto",
    limit: Annotated[int, Query(ge=1, le=100_000, description="At most this many jobs, in queue order")] = 5000,
) -> Response:
    result = _forecast(request, site, predictor)
    body = {
        "site": result.site,
        "now_s": result.now_s,
        "processors": result.processors,
        "predictor": result.predictor,
        "seconds": result.seconds,
        "corrections": result.corrections,
        "jobs": result.jobs.head(limit).to_dicts(),
        "accuracy": _accuracy(_twin(request), site),
    }
    return _json(dumps(body))


@router.post(
    "/sites/{site}/whatif",
    response_model=WhatIfOut,
    dependencies=[Depends(require_scope("advise"))],
    responses={**_NOT_FOUND, **_NO_QUEUE, **_BAD_REQUEST},
    summary="When would a job like this start at this site, behind the current queue?",
)
def site_whatif(request: Request, site: str, job: WhatIfIn) -> Response:
    from twin.sim import Job

    hypothetical = Job("whatif", 0, None, job.walltime_s, job.cores, user=job.user)  # submitted at the site's now
    result = _forecast(request, site, job.predictor, [hypothetical])
    row = result.jobs.filter(pl.col("hypothetical")).row(0, named=True)
    body = {
        "site": site,
        "now_s": result.now_s,
        "predictor": result.predictor,
        "queue_pending": result.jobs.height - 1,
        "predicted_start_s": row["predicted_start_s"],
        "predicted_wait_s": row["predicted_wait_s"],
        "start_early_s": row.get("start_early_s"),
        "start_late_s": row.get("start_late_s"),
    }
    return _json(dumps(body))
