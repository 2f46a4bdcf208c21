"""Ingest: batches pushed by a remote `ctwin agent` (service/ingest.py holds the rules). Needs a
token with the `ingest` scope that the target site names in `sites[].push.tokens`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import BaseModel, Field

from service.api.deps import Responses, ServiceDep, v1_router
from service.api.errors import ApiError, ErrorBody
from service.auth import TokenInfo, require_scope
from service.compose import Service
from service.ingest import INGEST_MEDIA_TYPE, Ingestor, IngestResult

__all__ = ["IngestOut", "router"]

router = v1_router("ingest")

IngestToken = Annotated[TokenInfo, Depends(require_scope("ingest"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="The batch's key (8-200 of A-Za-z0-9_.:@/+=-); a key already stored is answered without"
        " storing the batch again",
    ),
]
_REFUSALS: Responses = {
    403: {
        "model": ErrorBody,
        "description": "The token lacks the ingest scope, or a row is for a site it may not push",
    },
    413: {"model": ErrorBody, "description": "The body, or its row count, is over the limit"},
    415: {"model": ErrorBody, "description": f"The body is not {INGEST_MEDIA_TYPE}"},
    422: {"model": ErrorBody, "description": "Not the schema, unknown metrics or labels, bad timestamps or sites"},
    503: {"model": ErrorBody, "description": "The pipeline's buffer is full or the store unreadable: retry"},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {INGEST_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}


class IngestOut(BaseModel):
    rows: int = Field(description="Samples (or job rows) in the batch")
    sites: list[str]
    duplicate: bool = Field(description="True: a batch with this Idempotency-Key was stored before; not stored again")


async def _body(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != INGEST_MEDIA_TYPE:
        raise ApiError(
            415, "unsupported_media_type", f"send the batch as {INGEST_MEDIA_TYPE} (polars write_ipc_stream)"
        )
    return await request.body()


def _ingestor(composed: Service) -> Ingestor:
    if composed.ingest is None:
        raise ApiError(503, "no_ingest", "this service takes no pushed batches")
    return composed.ingest


def _out(result: IngestResult) -> IngestOut:
    return IngestOut(rows=result.rows, sites=result.sites, duplicate=result.duplicate)


@router.post(
    "/ingest",
    response_model=IngestOut,
    responses=_REFUSALS,
    openapi_extra=_BODY,
    summary="Store a batch of samples pushed by an agent (Arrow IPC stream of the sample schema)",
)
async def ingest_samples(
    request: Request, composed: ServiceDep, token: IngestToken, key: IdempotencyKey = None
) -> IngestOut:
    body = await _body(request)
    return _out(await asyncio.to_thread(_ingestor(composed).samples, body, token.name, key))


@router.post(
    "/ingest/jobs",
    response_model=IngestOut,
    responses=_REFUSALS,
    openapi_extra=_BODY,
    summary="Store job-history rows pushed by an agent (Arrow IPC stream of the job schema)",
)
async def ingest_jobs(
    request: Request, composed: ServiceDep, token: IngestToken, key: IdempotencyKey = None
) -> IngestOut:
    body = await _body(request)
    return _out(await asyncio.to_thread(_ingestor(composed).jobs, body, token.name, key))
