"""The latest-value lists (`/v1/sites`, `/v1/nodes`, `/v1/containers`, `/v1/links`) as JSON bytes,
shared by their FastAPI routes and the fast path (service/api/fastpath.py) so both answer the
same bytes.

Why a cache: schedulers and dashboards poll these lists, and a thousand-node answer is ~200 kB of
JSON. Answers are keyed by (what, snapshot version, whole second): ages stay right to the
second, and all requests within a second share one serialisation. Nodes and containers go one
step further: their rows are rendered once per snapshot with holes for the only fields that
follow the clock (data age, a node's ok/stale state), so the per-second answer is a join of
bytes, not a rebuild of a thousand objects (which also kept the garbage collector busy).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from twin.live import Twin
from twin.view import Aging

__all__ = ["LATEST_PATHS", "JsonCache", "clean", "dumps", "json_cache", "latest_key"]


def clean(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, non-finite floats as null (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: clean(getattr(value, f.name)) for f in fields(value)}
    return value


def dumps(value: Any) -> bytes:
    """The one JSON encoding of API answers (compact, NaN as null)."""
    return json.dumps(clean(value), separators=(",", ":")).encode()


# ------------------------------------------------------------------------------ rows that age
Template = bytes | tuple[bytes | str, ...]
"""A row's JSON: whole bytes if nothing in it ages, else literal pieces and holes (a hole is
the name of the field it stands for)."""


def row_template(row: Aging[Any]) -> Template:
    """The row's JSON with holes at its aging fields; the literal pieces are exactly `dumps`'s."""
    obj = clean(row.view)
    if row.newest_s is None:  # never reported: nothing ages
        return dumps(obj)
    holes = {"data_age_s", "state"} if row.stale_after_s is not None else {"data_age_s"}
    pieces: list[bytes | str] = []
    text = "{"
    for i, (key, value) in enumerate(obj.items()):
        text += ("," if i else "") + json.dumps(key) + ":"
        if key in holes:
            pieces += [text.encode(), key]
            text = ""
        else:
            text += json.dumps(value, separators=(",", ":"))
    pieces.append((text + "}").encode())
    return tuple(pieces)


def render_rows(rows: Sequence[Aging[Any]], templates: Sequence[Template], now: float) -> bytes:
    """`dumps([row.at(now) for row in rows])`, from the templates."""
    out: list[bytes] = []
    for row, template in zip(rows, templates, strict=True):
        if isinstance(template, bytes):
            out.append(template)
            continue
        state, age = row.freshness(now)
        filled = {"data_age_s": repr(age).encode(), "state": f'"{state}"'.encode()}
        out.append(b"".join(filled[p] if isinstance(p, str) else p for p in template))
    return b"[" + b",".join(out) + b"]"


def _document(now: float, items: bytes) -> bytes:
    return b'{"generated_at_s":' + dumps(now) + b',"items":' + items + b"}"


# ------------------------------------------------------------------------------ the lists
_PLAIN: dict[str, Callable[[Twin], Sequence[Any]]] = {
    "/v1/sites": lambda twin: twin.sites(),
    "/v1/links": lambda twin: twin.links(),
}
_AGING: dict[str, Callable[[Twin], list[Aging[Any]]]] = {
    "/v1/nodes": lambda twin: twin.current.node_rows(),
    "/v1/containers": lambda twin: twin.current.container_rows(),
}
LATEST_PATHS = frozenset(_PLAIN) | frozenset(_AGING)
SITE_FILTERED = frozenset(_AGING)
"""The lists that take `?site=`."""


def latest_key(path: str, site: str | None) -> str:
    return f"{path}?site={site}" if path in SITE_FILTERED else path


class JsonCache:
    """Serialised latest-value answers keyed by (what, snapshot version, whole second), and the
    row templates of all nodes and all containers keyed by snapshot version. Single-flight: one request
    builds a missing entry while the others wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._entries: dict[str, tuple[tuple[int, int], bytes]] = {}
        self._templates: dict[str, tuple[int, list[Aging[Any]], list[Template]]] = {}

    def peek(self, twin: Twin, what: str) -> bytes | None:
        """The cached answer if it is current (no building; safe on the event loop)."""
        hit = self._entries.get(what)
        if hit is not None and hit[0] == (twin.state.snapshot.version, int(twin.clock())):
            return hit[1]
        return None

    def latest(self, twin: Twin, path: str, site: str | None = None) -> bytes:
        """The answer of `path` (one of LATEST_PATHS), from the cache or built now."""
        what = latest_key(path, site)
        body = self.peek(twin, what)
        if body is not None:
            return body
        with self._lock:
            if len(self._entries) > 256:
                self._entries.clear()
            building = self._building.setdefault(what, threading.Lock())
        with building:
            body = self.peek(twin, what)
            if body is not None:  # built by the request we waited for
                return body
            version = twin.state.snapshot.version
            now = twin.clock()
            if path in _AGING:
                body = _document(now, render_rows(*self._rows(twin, version, path, site), now))
            else:
                body = dumps({"generated_at_s": now, "items": _PLAIN[path](twin)})
            self._entries[what] = ((version, int(now)), body)
            return body

    def _rows(self, twin: Twin, version: int, path: str, site: str | None) -> tuple[list[Aging[Any]], list[Template]]:
        """The rows of `path` with their templates, built once per snapshot for every site; a
        site's answer takes its share rather than rendering its rows again."""
        cached = self._templates.get(path)
        if cached is None or cached[0] != version:
            rows = _AGING[path](twin)
            cached = self._templates[path] = (version, rows, [row_template(r) for r in rows])
        _, rows, templates = cached
        if site is None:
            return rows, templates
        mine = [i for i, row in enumerate(rows) if row.view.site == site]
        return [rows[i] for i in mine], [templates[i] for i in mine]


def json_cache(app: Any) -> JsonCache:
    cache: JsonCache | None = getattr(app.state, "json_cache", None)
    if cache is None:
        cache = app.state.json_cache = JsonCache()
    return cache
