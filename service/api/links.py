"""Links between sites: configured capacity and latency beside the traffic measured on them and
the throughput and round-trip time link probes measured (with their ages)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from service.api.deps import READ, TwinDep, v1_router
from service.api.latest import json_cache
from service.api.sites import json_response
from twin.view import LinkView

__all__ = ["router"]

router = v1_router("links")


class LinksOut(BaseModel):
    generated_at_s: float
    items: list[LinkView]


@router.get("/links", response_model=LinksOut, dependencies=READ, summary="Links between sites")
def links(request: Request, twin: TwinDep) -> Response:
    return json_response(json_cache(request.app).latest(twin, "/v1/links"))
