"""The API's dependencies, in one place: the composed service and its parts, the scopes, the
parameters every router shares. Routers take these as `Annotated` parameters, so a test can
override one (`app.dependency_overrides[deps.service] = ...`) and handlers stay free of lookups."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from service.api.errors import ErrorBody
from service.api.routing import GuardedRoute
from service.auth import AUTH_RESPONSES, require_scope
from service.compose import Service
from telemetry.stores.base import Store
from twin.live import Twin

__all__ = [
    "ADVISE",
    "BAD_REQUEST",
    "EXPORT",
    "NOT_FOUND",
    "NO_QUEUE",
    "READ",
    "Responses",
    "ServiceDep",
    "SiteName",
    "StoreDep",
    "TwinDep",
    "known_site",
    "service",
    "v1_router",
]

Responses = dict[int | str, dict[str, Any]]
BAD_REQUEST: Responses = {400: {"model": ErrorBody, "description": "A parameter that cannot be used as given"}}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such site"}}
NO_QUEUE: Responses = {
    409: {"model": ErrorBody, "description": "No batch scheduler state at the site (yet), or no learned model loaded"}
}

READ = [Depends(require_scope("read"))]
EXPORT = [Depends(require_scope("export"))]
ADVISE = [Depends(require_scope("advise"))]

SiteName = Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)]


def v1_router(tag: str) -> APIRouter:
    """A resource's router under /v1. The prefix is the router's own, not added when the app
    includes it: FastAPI includes routers lazily, and only a router's own prefix is part of the
    route template that request metrics label by (`/v1/nodes`, never the raw path)."""
    return APIRouter(
        prefix="/v1",
        tags=[tag],
        responses={**AUTH_RESPONSES, 422: {"model": ErrorBody}},
        route_class=GuardedRoute,  # access decided before a body is read (service/api/routing.py)
    )


def service(request: Request) -> Service:
    composed: Service = request.app.state.service
    return composed


ServiceDep = Annotated[Service, Depends(service)]


def twin(composed: ServiceDep) -> Twin:
    return composed.twin


def store(composed: ServiceDep) -> Store:
    return composed.store


TwinDep = Annotated[Twin, Depends(twin)]
StoreDep = Annotated[Store, Depends(store)]


def known_site(twin: Twin, site: str | None) -> None:
    """UnknownSiteError (→ 404 with the known names) unless `site` is None or a configured site."""
    if site is not None:
        twin.topology.site(site)
