"""Text for humans: ages, shares and sizes, with one spelling for "unknown" across the UI."""

from __future__ import annotations

import math
from datetime import UTC, datetime

UNKNOWN = "–"
"""Shown where a value is unknown; a blank cell would read as "zero" or "still loading"."""


def _known(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def age(seconds: float | None) -> str:
    """`12 s ago`, `3 min ago`, `2 h ago`, `4 d ago`; "no data yet" when nothing ever arrived."""
    if seconds is None or not _known(seconds):
        return "no data yet"
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 90 * 60:
        return f"{s / 60:.0f} min ago"
    if s < 36 * 3600:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} d ago"


def percent(share: float | None) -> str:
    """A 0..1 share as `63 %`."""
    return f"{share * 100:.0f} %" if share is not None and _known(share) else UNKNOWN


def count(n: float | None) -> str:
    return f"{n:,.0f}" if n is not None and _known(n) else UNKNOWN


def number(x: float | None, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if x is not None and _known(x) else UNKNOWN


def gib_pair(used: float | None, total: float | None) -> str:
    """Memory as `3.2 / 15.6 GiB`: one unit for both, so rows compare at a glance."""
    gib = 2.0**30
    u = f"{used / gib:.1f}" if used is not None and _known(used) else UNKNOWN
    t = f"{total / gib:.1f}" if total is not None and _known(total) else UNKNOWN
    return f"{u} / {t} GiB"


def bits_per_s(bps: float | None) -> str:
    """Network rates in decimal bit units (`10 Gb/s`), as link capacities are quoted."""
    if bps is None or not _known(bps):
        return UNKNOWN
    for unit, scale in (("Tb/s", 1e12), ("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if abs(bps) >= scale:
            return f"{bps / scale:.3g} {unit}"
    return f"{bps:.0f} b/s"


def seconds_short(s: float | None) -> str:
    """Latencies: `850 µs`, `12 ms`, `1.2 s`."""
    if s is None or not _known(s):
        return UNKNOWN
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def utc(ts_s: float | None) -> str:
    """An instant as `2007-03-01 12:00 UTC` (replayed traces are shown in their own time)."""
    if ts_s is None or not _known(ts_s):
        return UNKNOWN
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%d %H:%M UTC")


def clip(text: str, limit: int = 200) -> str:
    """Collector errors can be whole tracebacks; a card shows the start."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float | None) -> str:
    """A span of queue time at the precision a user plans with: `45 s`, `35 min`, `2 h 10 min`,
    `3 d 4 h` (two units at most: "2 h 10 min 3 s" is false precision for a forecast)."""
    if seconds is None or not _known(seconds):
        return UNKNOWN
    s = round(abs(seconds))
    if s < 90:
        return f"{s} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(round(s / 3600), 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def starts_in(seconds: float | None) -> str:
    """A predicted start relative to the site's clock: `in 35 min`, or `now` for a job predicted to
    start at once (or whose predicted start has just passed)."""
    if seconds is None or not _known(seconds):
        return UNKNOWN
    return "now" if seconds < 1 else f"in {duration(seconds)}"
