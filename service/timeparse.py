"""Times on the command line and in the API: "now", relative ("-1h", "-30m"), ISO-8601, or unix seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from telemetry.schema import parse_duration


def parse_time_ns(text: str, now_ns: int | None = None) -> int:
    now = now_ns if now_ns is not None else time.time_ns()
    value = text.strip()
    if value == "now":
        return now
    if value.startswith("-"):
        try:
            return now - int(parse_duration(value[1:]) * 1e9)
        except ValueError:
            pass
    try:
        return int(float(value) * 1e9)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read the time {text!r}: use now, -15m, -2h, -7d, an ISO date like 2026-11-21T10:00:00Z,"
            " or unix seconds"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1e9)
