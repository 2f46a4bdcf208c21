"""Times on the command line and in the API: "now", relative ("-1h", "-30m", "+4h"), ISO-8601, or unix seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from telemetry.schema import parse_duration

_MAX_NS = 2**62  # about year 2116; keeps every later arithmetic inside Int64


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


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(value: object) -> float:
    """Bytes from a number or a string like "20GB", "1.5 TB", "512MiB" (SI and binary units)."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '20GB'")
    if isinstance(value, int | float):
        size = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(number) :]
        if unit not in _SIZE_UNITS or not number:
            raise ValueError(f"invalid size {value!r}: use bytes or a string like 20GB, 1.5TB, 512MiB")
        try:
            size = float(number) * _SIZE_UNITS[unit]
        except ValueError:
            raise ValueError(f"invalid size {value!r}: use bytes or a string like 20GB, 1.5TB, 512MiB") from None
    else:
        raise ValueError(f"invalid size {value!r}: use bytes or a string like 20GB")
    if not (size >= 0 and size < 1e18):
        raise ValueError(f"size {value!r} is outside 0 .. 1 EB")
    return size
