"""Query parameters shared by the time-series and export routers: times, label matchers, selections."""

from __future__ import annotations

from collections.abc import Sequence

from service.api.errors import ApiError
from service.timeparse import parse_time_ns
from telemetry.stores.base import QueryError, Selection

__all__ = ["labels_of", "selection_of", "time_ns"]


def time_ns(text: str | None, name: str, default: int | None) -> int | None:
    if text is None:
        return default
    try:
        return parse_time_ns(text)
    except ValueError as exc:
        raise ApiError(400, "bad_time", f"{name}: {exc}") from None


def labels_of(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(400, "bad_label", f"label {item!r} is not key=value")
        labels[key] = value
    return labels


def selection_of(metrics: Sequence[str], labels: Sequence[str], start: str | None, end: str | None) -> Selection:
    try:
        return Selection(
            metrics=tuple(metrics),
            labels=labels_of(labels),
            start_ns=time_ns(start, "start", None),
            end_ns=time_ns(end, "end", None),
        )
    except QueryError as exc:
        raise ApiError(400, "bad_query", str(exc)) from None
