"""One JSON error body for every 4xx/5xx the service answers, so clients parse one shape:

    {"error": {"status": 404, "code": "not_found", "message": "no site named 'x'", "details": [...]}}

`code` is a stable machine-readable word; `message` says what was wrong and, where it can, how to
fix it; `details` (optional) lists per-field problems of a rejected request.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel

from twin.errors import (
    AdviceConflictError,
    InvalidJobError,
    InvalidScenarioError,
    NoBatchQueueError,
    NoModelError,
    TwinError,
    UnknownAdviceError,
    UnknownJobError,
    UnknownLinkError,
    UnknownSiteError,
)

__all__ = ["TWIN_STATUS", "ApiError", "ErrorBody", "ErrorDetail", "error_body", "twin_status"]


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_body(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


class ApiError(HTTPException):
    """Raise from a route or dependency; the app's handler renders it as the error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.message = message
        self.details = details


TWIN_STATUS: dict[type[TwinError], int] = {
    UnknownSiteError: 404,
    UnknownAdviceError: 404,
    AdviceConflictError: 409,
    NoBatchQueueError: 409,
    NoModelError: 409,
    InvalidJobError: 400,
    UnknownJobError: 404,
    UnknownLinkError: 404,
    InvalidScenarioError: 422,
}
"""HTTP status of each refusal of the twin (twin/errors.py); the app's one handler renders them."""


def twin_status(exc: TwinError) -> int:
    for cls in type(exc).__mro__:
        if cls in TWIN_STATUS:
            return TWIN_STATUS[cls]
    return 400
