"""The kube-scheduler extender's routes: `POST /k8s/extender/v1/filter` and `/prioritize`
(`/k8s/extender/<path_secret>/v1/...` when a secret is configured), mounted by the app when
`schedulers.kubernetes.enabled`.

A pure-ASGI layer in front of the request limits, not a FastAPI router, for three reasons:
- the bodies are big: full Node objects with managedFields are ~5 KB each, megabytes for 500
  nodes, far above `serve.max_body` (4 MiB); these routes read up to their own
  `schedulers.kubernetes.max_body` (64 MiB) and no further (413 beyond). `nodeCacheCapable: true`
  in the scheduler's config makes them a few KB (names only);
- the service's JSON-depth guard scans a body byte by byte in Python (~0.1 s for 3 MB); the C
  decoder here has its own recursion limit, and a body it refuses is a 400;
- the expensive-request limiter must never answer the scheduler 503: an ignorable extender's
  error is skipped (ctwin's advice lost for that cycle), a non-ignorable one fails the cycle.
  A kube-scheduler asks about one pod at a time, so the routes' own concurrency is small.

Access: the kube-scheduler's Extender config has no way to send a bearer token (urlPrefix, verbs,
weight, enableHTTPS, tlsConfig, httpTimeout, nodeCacheCapable, managedResources, ignorable). So,
without a `path_secret`, the routes answer loopback clients only (403 otherwise; run ctwin beside
the scheduler, as /metrics is open on loopback); with one, an unguessable path segment in the
scheduler's `urlPrefix` is the credential (serve it over TLS beyond one host: enableHTTPS). The
request-latency histogram labels them by template, never with the secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_body
from service.auth import is_loopback
from service.hooks.extender import Extender
from service.hooks.extender_wire import WireError

__all__ = ["PREFIX", "ExtenderRoutes"]

PREFIX = "/k8s/extender/"


class _Route:
    """Stands in for the matched route so the latency histogram labels the request by template."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class ExtenderRoutes:
    def __init__(self, app: ASGIApp, extender: Extender, *, path_secret: str | None, max_body: int) -> None:
        self.app = app
        self.extender = extender
        self.path_secret = path_secret
        self.max_body = max_body
        base = PREFIX + (f"{path_secret}/" if path_secret else "") + "v1/"
        self._verbs: dict[str, tuple[_Route, Callable[[bytes], bytes]]] = {
            base + "filter": (_Route(PREFIX + "v1/filter"), extender.filter),
            base + "prioritize": (_Route(PREFIX + "v1/prioritize"), extender.prioritize),
        }
        self.refused_bodies = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        verb = self._verbs.get(scope["path"])
        if verb is None:
            await _answer(send, 404, _error(404, "not_found", "no such extender route"))
            return
        route, handler = verb
        scope["route"] = route
        if scope["method"] != "POST":
            await _answer(send, 405, _error(405, "method_not_allowed", "extender verbs take POST"))
            return
        client = scope.get("client")
        if self.path_secret is None and not (client and is_loopback(client[0])):
            message = (
                "the extender routes answer loopback clients only; set schedulers.kubernetes.path_secret"
                " and put it in the scheduler's urlPrefix to serve them beyond loopback"
            )
            await _answer(send, 403, _error(403, "forbidden", message))
            return
        body = await self._body(scope, receive, send)
        if body is None:
            return
        try:
            answer = await anyio.to_thread.run_sync(handler, body)
        except WireError as exc:
            await _answer(send, 400, _error(400, "bad_request", str(exc)))
            return
        await _answer(send, 200, answer)

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        self.refused_bodies += 1
        message = (
            f"the ExtenderArgs body is larger than {self.max_body:,} bytes (schedulers.kubernetes.max_body);"
            " raise it, or set nodeCacheCapable: true in the scheduler's extender entry (names only)"
        )
        await _answer(send, 413, _error(413, "too_large", message))


def _error(status: int, code: str, message: str) -> bytes:
    return json.dumps(error_body(status, code, message)).encode()


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
