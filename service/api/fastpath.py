"""A fast path for the hottest reads: `GET /v1/{sites,nodes,containers,links}` answered from the
latest-value cache (service/api/latest.py) before FastAPI's routing and dependency machinery.

Why: schedulers and dashboards poll the latest values; answering a thousand nodes is a cache
lookup, and FastAPI's per-request routing, dependency solving and thread-pool hop cost 5-10× more
than the lookup itself (bench/api_latest.py). The fast path takes only the plain, valid,
authorised request; anything else (no or bad token, unknown site, extra parameters, HEAD, an
error while building) falls through to the FastAPI route, which answers the same bytes or the
same error body. So the API has one behaviour and one OpenAPI description.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.latest import LATEST_PATHS, SITE_FILTERED, json_cache, latest_key
from service.auth import TokenInfo, authorize

__all__ = ["LatestFastPath"]

log = logging.getLogger(__name__)
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Route:
    """Stands in for the matched route so the latency histogram labels the request by template."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


_ROUTES = {path: _Route(path) for path in LATEST_PATHS}


def _headers(scope: Scope) -> dict[str, str]:
    """Only the Authorization header: the API takes tokens, never the browser's session cookie."""
    headers: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key == b"authorization":
            headers["authorization"] = value.decode("latin-1")
    return headers


class LatestFastPath:
    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in LATEST_PATHS:
            await self.app(scope, receive, send)
            return
        body = await self._answer(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTES[scope["path"]]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> bytes | None:
        path: str = scope["path"]
        site: str | None = None
        query = scope.get("query_string", b"")
        if query:
            params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            if path not in SITE_FILTERED or len(params) != 1 or params[0][0] != "site":
                return None
            site = params[0][1]
            if not _SITE.match(site) or len(site) > 128:
                return None
        state = self.fastapi_app.state
        service = getattr(state, "service", None)
        if service is None:
            return None
        twin = service.twin
        if site is not None:
            try:
                twin.topology.site(site)
            except KeyError:
                return None
        if not isinstance(authorize("read", state.tokens, _headers(scope)), TokenInfo):
            return None
        cache = json_cache(self.fastapi_app)
        body = cache.peek(twin, latest_key(path, site))
        if body is None:  # build off the event loop; concurrent misses wait for one build
            try:
                body = await anyio.to_thread.run_sync(cache.latest, twin, path, site)
            except Exception:  # the route builds again and answers with the API's error body
                log.exception("building %s failed", path)
                return None
        return body
