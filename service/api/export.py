"""Dataset export: samples, the pseudonymised job history and the advice log as Parquet or CSV downloads, each with
its manifest (query, rows, schema, time, sha256) in the X-Ctwin-Manifest header."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from service.api.deps import BAD_REQUEST, EXPORT, NOT_FOUND, Responses, ServiceDep, SiteName, known_site, v1_router
from service.api.errors import ApiError, ErrorBody
from service.api.params import selection_of, time_ns
from telemetry.export import (
    ExportManifest,
    ReplayClockUnknownError,
    export_advice,
    export_jobs,
    export_samples,
    replay_clocks,
    unmapped_replays,
)
from telemetry.jobs import JOB_SCHEMA, JOB_STATES
from telemetry.stores.base import QueryError, UnknownMetricError, check_metrics

__all__ = ["FILE", "download", "router"]

router = v1_router("export")

FILE: Responses = {
    200: {"content": {"application/vnd.apache.parquet": {}, "text/csv": {}}, "description": "The dataset"}
}


def download(path: Path, manifest_json: str, fmt: str, tmp: tempfile.TemporaryDirectory[str]) -> FileResponse:
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


def exported(kind: str, fmt: str, write: Callable[[Path], ExportManifest]) -> FileResponse:
    """`write` the dataset into a fresh temporary directory and answer it as a download; the
    directory goes with the response, or at once if writing fails."""
    tmp = tempfile.TemporaryDirectory(prefix="ctwin-export-")
    path = Path(tmp.name) / f"{kind}-{int(time.time())}.{fmt}"
    try:
        manifest = write(path)
    except BaseException:
        tmp.cleanup()
        raise
    return download(path, manifest.to_json(), fmt, tmp)


@router.get(
    "/export/samples",
    dependencies=EXPORT,
    response_class=FileResponse,
    responses={**BAD_REQUEST, 404: {"model": ErrorBody, "description": "No such metric in the store"}, **FILE},
    summary="Download samples as Parquet or CSV (one column per label); the manifest is in X-Ctwin-Manifest",
)
def export_samples_route(
    service: ServiceDep,
    metric: Annotated[list[str], Query(description="Metric names, repeatable; none = all")] = [],  # noqa: B006
    label: Annotated[list[str], Query(description="key=value, repeatable")] = [],  # noqa: B006
    start: str | None = None,
    end: str | None = None,
    format: Literal["parquet", "csv"] = "parquet",
) -> FileResponse:
    selection = selection_of(metric, label, start, end)
    try:
        check_metrics(service.store, metric)  # the check `ctwin export samples` makes too
    except UnknownMetricError as exc:
        raise ApiError(404, exc.code, exc.message) from None
    clocks = replay_clocks(service.twin.sites())
    try:
        return exported(
            "samples", format, lambda path: export_samples(service.store, selection, path, format, clocks=clocks)
        )
    except QueryError as exc:
        raise ApiError(400, "bad_query", str(exc)) from None


@router.get(
    "/export/jobs",
    dependencies=EXPORT,
    response_class=FileResponse,
    responses={
        **BAD_REQUEST,
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "A replayed site whose trace clock is not known yet, with a range"},
        **FILE,
    },
    summary="Download the job history with users and groups pseudonymised (salted hash)",
)
def export_jobs_route(
    service: ServiceDep,
    site: SiteName | None = None,
    state: Annotated[list[Literal[JOB_STATES]], Query()] = [],  # type: ignore[valid-type]  # noqa: B006
    start: Annotated[str | None, Query(description="Submitted at or after (wall clock, mapped to a replay's)")] = None,
    end: Annotated[str | None, Query(description="Submitted before (wall clock)")] = None,
    format: Literal["parquet", "csv"] = "parquet",
) -> FileResponse:
    known_site(service.twin, site)
    from_ns, to_ns = time_ns(start, "start", None), time_ns(end, "end", None)
    sites = service.twin.sites()
    clocks = replay_clocks(sites)
    replayed = [s.name for s in sites if s.is_replay]
    if site is not None and (from_ns is not None or to_ns is not None) and site in unmapped_replays(clocks, replayed):
        raise ApiError(409, "replay_clock_unknown", str(ReplayClockUnknownError(site)))
    return exported(
        "jobs",
        format,
        lambda path: export_jobs(
            service.store,
            path,
            format,
            service.salt,
            site=site,
            states=list(state),
            wall_from_s=None if from_ns is None else from_ns / 1_000_000_000,
            wall_to_s=None if to_ns is None else to_ns / 1_000_000_000,
            clocks=clocks,
            replayed=replayed,
        ),
    )


@router.get(
    "/export/advice",
    dependencies=EXPORT,
    response_class=FileResponse,
    responses={**BAD_REQUEST, **FILE},
    summary="Download the advice log joined with outcomes (users pseudonymised as in the job export)",
)
def export_advice_route(
    service: ServiceDep,
    start: Annotated[str | None, Query(description="Created at or after")] = None,
    end: Annotated[str | None, Query(description="Created before")] = None,
    format: Literal["parquet", "csv"] = "parquet",
) -> FileResponse:
    from_ns, to_ns = time_ns(start, "start", None), time_ns(end, "end", None)
    clocks = replay_clocks(service.twin.sites())
    return exported(
        "advice",
        format,
        lambda path: export_advice(
            service.store,
            path,
            format,
            service.salt,
            created_from_s=None if from_ns is None else from_ns / 1_000_000_000,
            created_to_s=None if to_ns is None else to_ns / 1_000_000_000,
            clocks=clocks,
        ),
    )


assert set(JOB_SCHEMA) >= {"user", "group"}
