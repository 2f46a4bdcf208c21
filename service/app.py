"""The app factory: one FastAPI app per call over one composed service (service/compose.py).

Why: no import-time globals (tests build as many apps as they like, each with its own registry).
The composition opens the store and wires the pipeline and the twin; the lifespan starts the
collectors and the background loops, and on shutdown stops the collectors, flushes what they
handed in (the final flush), then closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api import v1
from service.api.errors import ApiError, ErrorBody, error_body, twin_status
from service.api.extender import ExtenderRoutes
from service.api.fastpath import LatestFastPath
from service.auth import TokenStore, UiAuthMiddleware, login_router, open_endpoints_for, require_scope
from service.compose import Service, build_service
from service.config import LoadedConfig
from service.docs import install_offline_docs
from service.hooks.extender_metrics import ExtenderMetrics
from service.limits import RequestLimits
from service.metrics import LimitMetrics, RequestMetrics, TwinMetrics, build_registry
from service.sessions import SessionStore
from twin.errors import TwinError

__all__ = ["OwnPathsMount", "create_app", "http_error"]

log = logging.getLogger(__name__)
_FORECAST_EVERY_S = 30.0
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def create_app(
    loaded: LoadedConfig,
    data_dir: str | Path | None = None,
    *,
    collect: bool = True,
    ui: bool = True,
) -> FastAPI:
    """The whole service as an ASGI app: the store is opened and everything wired here
    (service.compose.build_service); the lifespan starts the collectors and the background
    loops. `collect=False` serves an existing store without running collectors (read replicas,
    tests); `ui=False` leaves the Dash twin out."""
    config = loaded.config
    open_eps = open_endpoints_for(config.auth, config.serve.listen)
    tokens = TokenStore(loaded.tokens_path(data_dir))
    registry, latency = build_registry()
    service = build_service(loaded, data_dir, collect=collect)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        retention = asyncio.create_task(_retention_loop(service.store, config.store.retention))
        forecasting = asyncio.create_task(_forecast_loop(service, _FORECAST_EVERY_S))
        log.info("serving %d collectors; store %s", len(service.pipeline.collectors), loaded.store_path(data_dir))
        try:
            yield
        finally:
            retention.cancel()
            forecasting.cancel()
            await asyncio.to_thread(service.stop)
            health = service.pipeline.health()
            log.info(
                "stopped: %s samples and %s job rows written, %s dropped",
                health["written_samples"],
                health["written_job_rows"],
                health["dropped_samples"],
            )

    app = ServiceApp(
        title="Continuum Twin",
        version="0.1.0",
        summary="Telemetry, digital twin and placement advice for the compute continuum",
        lifespan=lifespan,
        responses={422: {"model": ErrorBody, "description": "A parameter failed validation"}},
        docs_url=None,  # /docs from installed files, not a CDN; no /redoc (service/docs.py)
        redoc_url=None,
    )
    install_offline_docs(app)
    app.state.tokens = tokens
    app.state.sessions = SessionStore(tokens, idle_s=config.auth.session_idle, max_age_s=config.auth.session_max_age)
    app.state.service = service
    app.state.loaded = loaded
    _install_error_handlers(app)
    registry.register(TwinMetrics(service))

    def guard(path: str) -> list[Any]:
        return [] if path in open_eps else [Depends(require_scope("read"))]

    @app.get("/healthz", dependencies=guard("/healthz"), summary="Alive", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        dependencies=guard("/readyz"),
        summary="Ready: collectors running and store writes succeeding",
        tags=["health"],
        responses={503: {"model": ErrorBody}},
    )
    def readyz() -> Response:
        problems = []
        if not service.pipeline.running:
            problems.append("collectors not running")
        if store_problem := service.pipeline.store_problem():
            problems.append(store_problem)
        if problems:
            return JSONResponse(error_body(503, "not_ready", "; ".join(problems)), 503)
        body: dict[str, object] = {"status": "ready", "collectors": len(service.pipeline.collectors)}
        if service.mirror is not None:  # InfluxDB away is not "not ready": reads and the store go on, it spools
            body["influx"] = service.mirror.forwarder.problem() or "connected"
        if service.remote_write is not None:
            body["remote_write"] = service.remote_write.forwarder.problem() or "connected"
        return JSONResponse(body)

    @app.get(
        "/metrics",
        dependencies=guard("/metrics"),
        summary="Prometheus exposition",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(login_router)
    for router in v1.ROUTERS:
        app.include_router(router)
    if ui:
        from dashboards.app import create_dash
        from dashboards.export import ExportSource

        dash_app = create_dash(
            service.twin,
            advice=service.advisor.log.summary,
            containers=service.advisor.containers,
            advisor=service.advisor,
            models=service.models,
            export=ExportSource(service.store, service.salt),
        )
        ui_app: FastAPI = dash_app.server
        ui_app.add_exception_handler(StarletteHTTPException, http_error)  # its own 404s (a missing asset) too
        ui_guard = UiAuthMiddleware(ui_app, tokens, enabled="/" not in open_eps)
        app.router.routes.append(OwnPathsMount("/", ui_guard, owner=ui_app))
    serve = config.serve
    limits = RequestLimits(
        LatestFastPath(app.fastapi, fastapi_app=app),
        max_body_bytes=serve.max_body,
        max_json_depth=serve.max_json_depth,
        max_expensive=serve.max_expensive_requests,
    )
    app.state.limits = limits
    registry.register(LimitMetrics(limits))
    front: ASGIApp = limits
    if service.extender is not None:  # its own body limit, never shed (service/api/extender.py)
        hook = config.schedulers.kubernetes
        front = ExtenderRoutes(limits, service.extender, path_secret=hook.path_secret, max_body=hook.max_body)
        registry.register(ExtenderMetrics(service.extender, service.pod_worker, service.node_cache))
    app.front = RequestMetrics(front, histogram=latency)
    app.state.registry = registry
    return app


class ServiceApp(FastAPI):
    """FastAPI with two pure-ASGI layers in front of all of its own per-request machinery: the
    request-latency histogram (so it times everything) and the latest-values fast path (so a
    poll of a thousand nodes costs little more than sending the bytes; bench/api_latest.py)."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http":
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself, behind `front`."""
        await super().__call__(scope, receive, send)


async def _forecast_loop(service: Service, every_s: float) -> None:
    """Forecast every batch site's queue regularly, so each pending job's first forecast is kept
    and scored when it starts (the forecast's past accuracy), whether or not anyone asks."""
    sites = service.batch_sites()
    while True:
        await asyncio.sleep(every_s)
        for site in sites:
            try:
                await asyncio.to_thread(service.twin.forecast, site)
            except LookupError:
                pass  # no batch state collected yet
            except Exception:
                log.exception("forecast of %s failed", site)


async def _retention_loop(store: Any, retention_s: float) -> None:
    while True:
        try:
            await asyncio.to_thread(store.apply_retention, time.time_ns() - int(retention_s * 1e9))
        except Exception:
            log.exception("retention failed; retrying in an hour")
        await asyncio.sleep(3600)


class OwnPathsMount(Mount):
    """A mount at "/" that claims only the paths its app (`owner`) routes.

    Why: a plain `Mount("/")` matches every path, so an unknown path (`/v1/typo`, `/redoc`) and a
    known one asked with the wrong method (`DELETE /v1/advice/{id}`) went to the Dash app, whose
    FastAPI answered its own `{"detail": "Not Found"}`, never 405. Claiming only the Dash app's
    own routes leaves the rest to the service's router: 404, or 405 with `Allow`, in the one
    error body (service/api/errors.py)."""

    def __init__(self, path: str, app: ASGIApp, *, owner: FastAPI) -> None:
        super().__init__(path, app=app)
        self.owner = owner

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            inner = {**scope, **child}
            if any(route.matches(inner)[0] is not Match.NONE for route in self.owner.router.routes):
                return match, child
        return Match.NONE, {}


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own refusals (no route: 404; a route without the method: 405 with
    `Allow`; a body it cannot read: 400) in the one error body, with their headers."""
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    return JSONResponse(error_body(exc.status_code, code, str(exc.detail)), exc.status_code, headers=exc.headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every refusal, whatever raised it, leaves as the one error body (service/api/errors.py)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, exc.code, exc.message, exc.details), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(TwinError)
    async def twin_error(request: Request, exc: TwinError) -> JSONResponse:
        status = twin_status(exc)
        return JSONResponse(error_body(status, exc.code, exc.message), status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        first = details[0] if details else {"location": "", "message": "invalid request"}
        message = f"{first['location']}: {first['message']}"
        return JSONResponse(error_body(422, "invalid_request", message, details), 422)

    app.add_exception_handler(StarletteHTTPException, http_error)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal_error", "the server failed; see its log"), 500)
