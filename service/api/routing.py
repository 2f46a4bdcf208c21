"""The route class of every `/v1` router: access is decided, and a body's media type checked,
before the body is read.

Why: FastAPI reads and JSON-decodes a route's body before it runs any dependency, so a protected
route answered malformed JSON sent without a token with a 422 (a decode error) and only valid
JSON with the 401; and a body sent as `text/plain` was passed on as bytes, to fail as "Input
should be a valid dictionary", which never says the media type was the problem. Here the route's
scope guards (service.auth.require_scope) run first, then a body that is not JSON is refused with
415 naming `application/json`; only then does FastAPI parse the body and run the dependencies as
before (the scope guard again: one in-memory token lookup, the price of keeping FastAPI's own
dependency path untouched).
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field

from service.api.errors import ApiError, ErrorBody
from service.auth import Denial, ScopeName, authorize, guard_scope

__all__ = ["JSON_ONLY", "GuardedRoute", "is_json"]

JSON_ONLY: dict[str, Any] = {"model": ErrorBody, "description": "The body is not sent as application/json"}


def is_json(content_type: str | None) -> bool:
    """`application/json` or any `application/*+json`, parameters aside (FastAPI's own rule)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _scopes(dependant: Dependant) -> Iterator[ScopeName]:
    for sub in dependant.dependencies:
        if (scope := guard_scope(sub.call)) is not None:
            yield scope
        yield from _scopes(sub)


class GuardedRoute(APIRoute):
    """An APIRoute whose body, if it takes one, is read only by a caller it admits, and only as JSON."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None and 415 not in self.responses:  # document the refusal it can send
            self.responses = {**self.responses, 415: JSON_ONLY}
            self.response_fields[415] = create_model_field(
                name=f"Response_415_{self.unique_id}", type_=ErrorBody, mode="serialization"
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler
        scopes = tuple(dict.fromkeys(_scopes(self.dependant)))

        async def guarded(request: Request) -> Response:
            for scope in scopes:
                decided = authorize(scope, request.app.state.tokens, request.headers)
                if isinstance(decided, Denial):
                    raise decided.api_error()
            content_type = request.headers.get("content-type")
            if await request.body() and not is_json(content_type):
                sent = f"it came as {content_type!r}" if content_type else "it came without a Content-Type"
                raise ApiError(
                    415,
                    "unsupported_media_type",
                    f"send the body as JSON with `Content-Type: application/json`; {sent}",
                )
            return await handler(request)

        return guarded
