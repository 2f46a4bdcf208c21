"""Times on the command line and in the API: "now", relative ("-1h", "-30m", "+4h"), ISO-8601, or unix seconds.
Sizes ("20GB", "512MiB") and durations ("2h", "30m", seconds) are read by telemetry.schema's
parse_size and parse_duration, re-exported here for the API; `Walltime` is a job's requested time
as every route that takes one reads it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

from telemetry.schema import Duration, parse_duration, parse_size

__all__ = ["MAX_WALLTIME_S", "Walltime", "parse_duration", "parse_size", "parse_time_ns"]

_MAX_NS = 2**62  # about year 2116; keeps every later arithmetic inside Int64

MAX_WALLTIME_S = 366 * 86400
"""No scheduler grants a longer kill limit; beyond it a request is a typo (seconds meant as ms)."""


def _at_most_a_year(seconds: float) -> float:
    if seconds > MAX_WALLTIME_S:
        raise ValueError("walltime must be at most 366 days")
    return seconds


Walltime = Annotated[Duration, AfterValidator(_at_most_a_year)]
"""A job's requested time (its kill limit), in seconds: a number, or "2h", "30m" (parse_duration)."""


def parse_time_ns(text: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch; ValueError with the accepted forms for anything else, and for
    times before 1970 or after 2116 (which no store holds and Int64 arithmetic cannot take)."""
    value = _parse(text, now_ns if now_ns is not None else time.time_ns())
    if not 0 <= value < _MAX_NS:
        raise ValueError(f"the time {text!r} is outside 1970..2116")
    return value


def _parse(text: str, now: int) -> int:
    value = text.strip()
    if value == "now":
        return now
    if value.startswith(("-", "+")):
        try:
            sign = -1 if value[0] == "-" else 1
            return now + sign * int(parse_duration(value[1:]) * 1e9)
        except (ValueError, OverflowError):
            pass
    try:
        return int(float(value) * 1e9)
    except (ValueError, OverflowError):
        pass
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1e9)
    except (ValueError, OverflowError):
        raise ValueError(
            f"cannot read the time {text!r}: use now, -15m, -2h, +4h, an ISO date like 2026-11-21T10:00:00Z,"
            " or unix seconds"
        ) from None
