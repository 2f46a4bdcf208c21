"""One job, joined: its row, its nodes and their series over its run, and for a pod on an
interLink virtual node the remote job it became with that job's nodes and series
(telemetry.job_graph). `job_id` may hold '/' (a pod is `namespace/name`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.api.deps import BAD_REQUEST, READ, ServiceDep, known_site, v1_router
from service.api.errors import ApiError, ErrorBody
from service.api.latest import dumps
from telemetry.job_graph import GraphLimits, job_graph

__all__ = ["router"]

router = v1_router("jobs")


class JobSide(BaseModel):
    site: str
    job_id: str | None
    job: dict[str, Any] | None = Field(description="The job-history row (users and groups left out)")
    nodes: list[str]
    window: dict[str, float] | None = Field(None, description="start_s, end_s, step_s of the series")
    series: list[dict[str, Any]] = Field(description="host, metric, labels, points [[unix s, value], ...]")


class RemoteSide(JobSide):
    reason: str | None = Field(None, description="Why the remote job is missing, when it is")


class JobOut(JobSide):
    remote: RemoteSide | None = Field(None, description="The remote job a pod on an interLink virtual node became")


@router.get(
    "/jobs/{site}/{job_id:path}",
    response_model=JobOut,
    dependencies=READ,
    responses={**BAD_REQUEST, 404: {"model": ErrorBody, "description": "No such site or job"}},
    summary="One job with its nodes' series and, for an interLink pod, its remote job",
)
def job(
    service: ServiceDep,
    site: str,
    job_id: str,
    metric: Annotated[list[str], Query(description="Only these families, repeatable; none = all")] = [],  # noqa: B006
    pad: Annotated[
        int, Query(ge=0, le=86_400, description="Seconds of series before the start and after the end")
    ] = 300,
    max_points: Annotated[int, Query(ge=1, le=2000, description="Most buckets per series")] = 120,
) -> Response:
    twin = service.twin
    known_site(twin, site)
    limits = GraphLimits(pad_s=pad, max_points=max_points, metrics=tuple(metric))
    sites = [s.name for s in twin.topology.sites]
    try:
        graph = job_graph(service.store, site, job_id, now_s=twin.clock(), known_sites=sites, limits=limits)
    except ValueError as exc:
        raise ApiError(400, "too_many_series", str(exc)) from None
    if graph is None:
        raise ApiError(404, "unknown_job", f"no job {job_id!r} at site {site!r} in the job history")
    return Response(dumps(graph), media_type="application/json")
