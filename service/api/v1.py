"""The `/v1` API: one router per resource (each under /v1, service/api/deps.py), gathered here.
Every route needs a token with a scope; handlers only translate HTTP to calls on the composed
service, and the twin's refusals (twin/errors.py) become 4xx in the app's one error handler."""

from __future__ import annotations

from fastapi import APIRouter

from service.api import advice, containers, export, forecasts, hosts, ingest, jobs, links, query, sites, whatif

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = tuple(
    m.router for m in (sites, hosts, links, query, export, forecasts, advice, containers, jobs, ingest, whatif)
)
