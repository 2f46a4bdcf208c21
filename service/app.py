"""The app factory: one FastAPI app per call, with the pipeline, store and twin owned by its lifespan.

Why: no import-time globals (tests build as many apps as they like, each with its own registry),
and one place that starts and stops everything. Startup opens the store and starts the collectors;
shutdown stops the collectors, flushes what they handed in (the final flush), then closes the store.
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
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api import v1
from service.api.errors import ApiError, ErrorBody, error_body
from service.api.fastpath import LatestFastPath
from service.auth import TokenStore, UiAuthMiddleware, login_router, open_endpoints_for, require_scope
from service.compose import build_collectors, open_store, resolve_salt
from service.config import LoadedConfig
from service.metrics import RequestMetrics, TwinMetrics, build_registry
from service.sessions import SessionStore
from telemetry.pipeline import Pipeline, StoreSink
from twin.live import LiveTwin
from twin.topology import CollectorSpec, LinkSpec, SiteSpec, Topology

__all__ = ["create_app", "topology_of"]

log = logging.getLogger(__name__)
_BATCH_TYPES = ("slurm", "replay")
_FORECAST_EVERY_S = 30.0
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def topology_of(loaded: LoadedConfig) -> Topology:
    by_site: dict[str, list[CollectorSpec]] = {}
    for spec in loaded.collectors:
        by_site.setdefault(spec.site.name, []).append(CollectorSpec(spec.name, spec.entry.type, spec.entry.interval))
    sites = tuple(
        SiteSpec(s.name, s.kind, s.description, tuple(s.nodes), tuple(by_site.get(s.name, ())))
        for s in loaded.config.sites
    )
    links = tuple(
        LinkSpec(
            a=link.between[0],
            b=link.between[1],
            description=link.description,
            bandwidth_bps=link.bandwidth_gbps * 1e9 if link.bandwidth_gbps is not None else None,
            latency_s=link.latency_ms / 1e3 if link.latency_ms is not None else None,
            interface=link.interface,
        )
        for link in loaded.config.links
    )
    return Topology(sites, links)


def create_app(
    loaded: LoadedConfig,
    data_dir: str | Path | None = None,
    *,
    collect: bool = True,
    ui: bool = True,
) -> FastAPI:
    """The whole service as an ASGI app. `collect=False` serves an existing store without running
    collectors (read replicas, tests); `ui=False` leaves the Dash twin out."""
    config = loaded.config
    open_eps = open_endpoints_for(config.auth, config.serve.listen)
    tokens = TokenStore(loaded.tokens_path(data_dir))
    registry, latency = build_registry()
    state: dict[str, Any] = {}
    twin = LiveTwin(topology_of(loaded), health=lambda: _stats(state.get("pipeline")))
    models = _model_registry(loaded.models_path(data_dir))
    if models is not None:
        twin.runtime_model = lambda: models.current("runtime")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(loaded, data_dir)
        sink = StoreSink(store)
        twin.store = store
        pipeline = Pipeline(
            build_collectors(loaded) if collect else [],
            [sink, twin],
            buffer_samples=config.pipeline.buffer_samples,
            max_batch_samples=config.pipeline.max_batch_samples,
            labels={"host": config.host_name()},
        )
        state.update(pipeline=pipeline, sink=sink)
        app.state.store = store
        app.state.pipeline = pipeline
        app.state.salt = resolve_salt(loaded, data_dir)
        pipeline.start()
        retention = asyncio.create_task(_retention_loop(store, config.store.retention))
        batch_sites = [s.name for s in twin.topology.sites if any(c.type in _BATCH_TYPES for c in s.collectors)]
        forecasting = asyncio.create_task(_forecast_loop(twin, batch_sites, _FORECAST_EVERY_S))
        log.info("serving %d collectors; store %s", len(pipeline.collectors), loaded.store_path(data_dir))
        try:
            yield
        finally:
            retention.cancel()
            forecasting.cancel()
            await asyncio.to_thread(pipeline.stop)
            store.close()
            health = pipeline.health()
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
    )
    app.state.tokens = tokens
    app.state.sessions = SessionStore(tokens, idle_s=config.auth.session_idle, max_age_s=config.auth.session_max_age)
    app.state.twin = twin
    app.state.loaded = loaded
    _install_error_handlers(app)
    registry.register(TwinMetrics(twin, lambda: state.get("pipeline"), lambda: state.get("sink")))

    def guard(path: str) -> list[Any]:
        return [] if path in open_eps else [Depends(require_scope("read"))]

    @app.get("/healthz", dependencies=guard("/healthz"), summary="Alive", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        dependencies=guard("/readyz"),
        summary="Ready: store open and collectors running",
        tags=["health"],
        responses={503: {"model": ErrorBody}},
    )
    def readyz(request: Request) -> Response:
        pipeline: Pipeline | None = state.get("pipeline")
        problems = []
        if getattr(request.app.state, "store", None) is None:
            problems.append("store not open")
        if pipeline is None or not pipeline.running:
            problems.append("collectors not running")
        if problems:
            return JSONResponse(error_body(503, "not_ready", "; ".join(problems)), 503)
        return JSONResponse({"status": "ready", "collectors": len(pipeline.collectors) if pipeline else 0})

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
    app.include_router(v1.router)
    if ui:
        from dashboards.app import create_dash

        dash_app = create_dash(twin)
        app.mount("/", UiAuthMiddleware(dash_app.server, tokens, enabled="/" not in open_eps))
    app.front = RequestMetrics(LatestFastPath(app.fastapi, fastapi_app=app), histogram=latency)
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


def _model_registry(path: Path) -> Any:
    """The hash-checked, hot-reloading registry of learned models; None when scikit-learn and
    skops are not installed (the `models` extra): forecasts then use AVE2."""
    try:
        from models.artifacts import ModelRegistry
    except ImportError:
        log.warning("learned models disabled: install the `models` extra (scikit-learn, skops)")
        return None
    return ModelRegistry(path)


def _stats(pipeline: Pipeline | None) -> dict[str, Any]:
    if pipeline is None:
        return {}
    return {rc.name: rc.stats for rc in pipeline.collectors}


async def _forecast_loop(twin: LiveTwin, sites: list[str], every_s: float) -> None:
    """Forecast every batch site's queue regularly, so each pending job's first forecast is kept
    and scored when it starts (the forecast's past accuracy), whether or not anyone asks."""
    while True:
        await asyncio.sleep(every_s)
        for site in sites:
            try:
                await asyncio.to_thread(twin.forecast, site)
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


def _install_error_handlers(app: FastAPI) -> None:
    """Every refusal, whatever raised it, leaves as the one error body (service/api/errors.py)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, exc.code, exc.message, exc.details), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        first = details[0] if details else {"location": "", "message": "invalid request"}
        message = f"{first['location']}: {first['message']}"
        return JSONResponse(error_body(422, "invalid_request", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(exc.status_code, code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal_error", "the server failed; see its log"), 500)
