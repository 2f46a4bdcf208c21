"""Sites: every site with its state and load, one site, a batch site's queue as last collected."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.api.deps import NOT_FOUND, READ, TwinDep, known_site, v1_router
from service.api.latest import dumps, json_cache
from twin.view import SiteView

__all__ = ["SitesOut", "router"]

router = v1_router("sites")


class SitesOut(BaseModel):
    generated_at_s: float = Field(description="Server time of the answer; data_age_s is relative to it")
    items: list[SiteView]


class QueueOut(BaseModel):
    site: str
    generated_at_s: float
    jobs: list[dict[str, Any]] = Field(description="Pending and running jobs (job-history schema)")


def json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get("/sites", response_model=SitesOut, dependencies=READ, summary="Every site with its state and load")
def sites(request: Request, twin: TwinDep) -> Response:
    return json_response(json_cache(request.app).latest(twin, "/v1/sites"))


@router.get("/sites/{site}", response_model=SiteView, dependencies=READ, responses=NOT_FOUND, summary="One site")
def site(twin: TwinDep, site: str) -> Response:
    return json_response(dumps(twin.site(site)))


@router.get(
    "/sites/{site}/jobs",
    response_model=QueueOut,
    dependencies=READ,
    responses=NOT_FOUND,
    summary="A batch site's pending and running jobs, as its collector last saw them",
)
def site_jobs(twin: TwinDep, site: str) -> Response:
    known_site(twin, site)
    queue = twin.queue(site).drop("user", "group")  # people are not named by the read scope
    return json_response(dumps({"site": site, "generated_at_s": twin.clock(), "jobs": queue.to_dicts()}))
