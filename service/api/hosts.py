"""Hosts and containers: latest values with their data age, from the twin's snapshot (no store
I/O), serialised once per snapshot and second (service/api/latest.py)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from service.api.deps import NOT_FOUND, READ, SiteName, TwinDep, known_site, v1_router
from service.api.latest import json_cache
from service.api.sites import json_response
from twin.view import ContainerView, NodeView

__all__ = ["router"]

router = v1_router("hosts")


class NodesOut(BaseModel):
    generated_at_s: float
    items: list[NodeView]


class ContainersOut(BaseModel):
    generated_at_s: float
    items: list[ContainerView]


@router.get("/nodes", response_model=NodesOut, dependencies=READ, responses=NOT_FOUND, summary="Latest node values")
def nodes(request: Request, twin: TwinDep, site: SiteName | None = None) -> Response:
    known_site(twin, site)
    return json_response(json_cache(request.app).latest(twin, "/v1/nodes", site))


@router.get(
    "/containers",
    response_model=ContainersOut,
    dependencies=READ,
    responses=NOT_FOUND,
    summary="Latest container values",
)
def containers(request: Request, twin: TwinDep, site: SiteName | None = None) -> Response:
    known_site(twin, site)
    return json_response(json_cache(request.app).latest(twin, "/v1/containers", site))
