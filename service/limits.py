"""Bounds on what one request may cost, as pure-ASGI layers in front of everything (the API, the
Dash twin's callbacks, the login form):

- `RequestLimits` reads a request body only up to `max_body_bytes` (a declared Content-Length above
  it is refused before a byte is read; a chunked body is cut off as soon as it passes it): 413.
  A JSON body nested deeper than `max_json_depth` is refused before any parser recurses into it:
  400. Before this, a 200 MB POST to the open Dash endpoint raised the service's memory by up to
  960 MB.
- It also sheds load: at most `max_expensive` expensive requests (time-series queries, exports,
  forecasts, what-ifs, advice) run at once; one more waits up to `max_wait_s` (0.2 s) behind at most
  `max_waiting` (32) others for a slot, and beyond that is answered at once with 503 and
  `Retry-After`, so the latest-value routes (a dictionary lookup each) stay fast however many
  clients pile onto the slow ones (bench/overload.py). The bound is small on purpose: every such
  request runs Python in the one process, and each one more takes GIL time from the event loop
  that answers everything else.

Every refusal is the API's one error body (service/api/errors.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_body

__all__ = ["EXPENSIVE", "RequestLimits", "json_depth"]

EXPENSIVE = re.compile(r"^(/v1/query|/v1/export/|/v1/advice|/v1/whatif$|/v1/sites/[^/]+/(forecast|whatif)$)")
"""API paths whose answer costs a store scan, a simulation or a model call. The Dash twin's
callbacks are not among them: a page fires several at once, and shedding one leaves a hole in it."""


def json_depth(body: bytes, limit: int) -> int:
    """How deeply `body` nests arrays and objects, counted up to `limit + 1` (strings skipped);
    a linear scan that never recurses, so a hostile body cannot exhaust the stack."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def _refuse(send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    body = json.dumps(error_body(status, code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int,
        max_expensive: int,
        max_waiting: int = 32,
        max_wait_s: float = 0.2,
        retry_after_s: int = 1,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.max_expensive = max_expensive
        self.retry_after_s = retry_after_s
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.running_expensive = 0
        self.shed = 0
        """Expensive requests answered 503 since start (exposed in /metrics)."""
        self.refused_bodies = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not EXPENSIVE.match(scope.get("path", "")):
            await self._bounded(scope, receive, send)
            return
        if not await self._acquire():
            self.shed += 1
            await _refuse(
                send,
                503,
                "overloaded",
                f"{self.running_expensive} expensive requests (queries, exports, forecasts, advice, what-ifs)"
                f" are running"
                f" and {len(self._waiting)} waiting, the most this service takes at once; retry after"
                f" {self.retry_after_s} s",
                [(b"retry-after", str(self.retry_after_s).encode())],
            )
            return
        held = True

        async def release_then_send(message: Message) -> None:
            # The slot is freed before the answer's last bytes go out: a client that sends its next
            # request the moment it has this answer must find the slot free.
            nonlocal held
            if held and message["type"] == "http.response.body" and not message.get("more_body", False):
                held = False
                self._release()
            await send(message)

        try:
            await self._bounded(scope, receive, release_then_send)
        finally:
            if held:
                self._release()

    async def _acquire(self) -> bool:
        """A slot now, or after waiting at most `max_wait_s` behind at most `max_waiting` others
        (first come, first served); False: shed. A short queue keeps the slots busy between
        answers, so the expensive requests still served under overload stay near the sustainable
        rate, instead of every free slot racing a flood of instant refusals."""
        if self.running_expensive < self.max_expensive and not self._waiting:
            self.running_expensive += 1
            return True
        if len(self._waiting) >= self.max_waiting or self.max_wait_s <= 0:
            return False
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(slot)
        try:
            await asyncio.wait_for(asyncio.shield(slot), self.max_wait_s)
            return True  # _release handed its slot over (running_expensive unchanged)
        except TimeoutError:
            return slot.done()  # handed over just as the wait ended: keep it
        except asyncio.CancelledError:  # the client left while waiting: a slot handed over goes on
            if slot.done():
                self._release()
            raise
        finally:
            if slot in self._waiting:
                self._waiting.remove(slot)

    def _release(self) -> None:
        while self._waiting:  # hand the slot to the longest waiter still waiting
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.running_expensive -= 1

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        limit = self.max_body_bytes
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _refuse(send, 400, "bad_request", "the Content-Length header is not a number")
                return
            if too_big:
                await self._too_large(send, int(declared))
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(send, size)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and content_type.endswith(b"json"):
            depth = json_depth(body, self.max_json_depth)
            if depth > self.max_json_depth:
                self.refused_bodies += 1
                await _refuse(send, 400, "too_deep", f"the JSON body nests deeper than {self.max_json_depth} levels")
                return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, send: Send, size: int) -> None:
        self.refused_bodies += 1
        await _refuse(
            send,
            413,
            "too_large",
            f"the request body is larger than {self.max_body_bytes:,} bytes (at least {size:,});"
            " send less (batch advice takes at most 1,000 jobs)",
        )


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """The buffered body once, then whatever the connection says next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
