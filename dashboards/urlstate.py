"""The page's state in its URL: the selected site and the drill-down's time range.

Everything a user chooses lives in the query string (`?site=NAME&range=24h`) and nowhere else, so
a shared link opens the page exactly as its sender saw it, the browser's back button undoes a
choice, and the callbacks stay pure functions of the URL. Parsing is lenient: a hand-edited or
stale link (`range=7d`, `range=`) falls back to the default instead of breaking the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple
from urllib.parse import parse_qs, urlencode

__all__ = [
    "DEFAULT_RANGE",
    "RANGES",
    "RANGE_PHRASES",
    "RangeKey",
    "UrlState",
    "drill_query",
    "parse",
    "selected_range",
    "selected_site",
]

RangeKey = Literal["1h", "6h", "24h"]
"""The drill-down's history windows, spelled as they appear in the URL."""
RANGES: Mapping[RangeKey, float] = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 24 * 3600.0}
"""Window length in seconds for each range; the order is the selector's order."""
RANGE_PHRASES: Mapping[RangeKey, str] = {"1h": "last hour", "6h": "last 6 hours", "24h": "last 24 hours"}
"""How a figure's title names its window."""
DEFAULT_RANGE: RangeKey = "1h"
"""The last hour: what an operator checks first, and the cheapest history read."""


class UrlState(NamedTuple):
    """What the query string selects."""

    site: str | None
    range: RangeKey


def _first(search: str | None, key: str) -> str | None:
    values = parse_qs((search or "").lstrip("?")).get(key)
    return values[0] if values and values[0] else None


def selected_site(search: str | None) -> str | None:
    """The site named by `?site=NAME`, if any."""
    return _first(search, "site")


def selected_range(search: str | None) -> RangeKey:
    """The range named by `?range=`, or the default for a missing or unknown one."""
    value = (_first(search, "range") or "").strip().lower()
    for key in RANGES:
        if key == value:
            return key
    return DEFAULT_RANGE


def parse(search: str | None) -> UrlState:
    """Site and range from a query string (`dcc.Location.search`, with or without its `?`)."""
    return UrlState(selected_site(search), selected_range(search))


def drill_query(site: str, range_: RangeKey = DEFAULT_RANGE) -> str:
    """The query string that opens `site`'s drill-down over `range_`. The default range is left
    out, so the plain `?site=NAME` links stay as they were and the shortest link is canonical."""
    params = {"site": site} if range_ == DEFAULT_RANGE else {"site": site, "range": range_}
    return f"?{urlencode(params)}"
