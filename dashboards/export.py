"""The export page (`?view=export`): an analyst picks a table (jobs, telemetry samples, advice with
outcomes), a site, a time range and a format, sees the manifest before downloading (columns with
type and unit, a row estimate, the join keys, the replayed site's clock), and downloads one zip:
the dataset and its manifest (telemetry.export, the same functions as the REST export).

Why a Dash-side download and not a link to /v1/export: the REST API takes bearer tokens only (no
cookie, service/auth.py), and handing the browser a token would expose it. The download runs in a
Dash callback behind the UI's session guard, and refuses a session without the export scope.
State lives in the query string (`?view=export&table=jobs&site=kth&range=24h&format=csv`).
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from dashboards import ids
from dashboards.pages import HIDDEN, Page, Sources, query
from dashboards.parts import _attr
from telemetry.export import (
    JOINS,
    ExportManifest,
    ReplayClock,
    ReplayClockUnknownError,
    column_unit,
    export_advice,
    export_jobs,
    export_samples,
    jobs_submitted,
    manifest_path,
    replay_clocks,
    vocabulary_type,
)
from telemetry.jobs import JOB_SCHEMA
from telemetry.stores.base import ProgressCallback, Selection, Store
from twin.view import TwinReader

__all__ = ["PAGE", "VIEW", "Choice", "ExportSource", "build", "choice_of", "export_query", "layout", "render_preview"]

VIEW = "export"
TABLES = ("jobs", "samples", "advice")
RANGES: dict[str, float | None] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "all": None}
FORMATS = ("parquet", "csv")
_ADVICE_COLUMNS = ("advice_id", "created_s", "user", "chosen_site", "job_id", "realised_turnaround_s", "regret_s")
NO_REPLAY = "Every time is wall clock UTC (no replayed site)."
REFUSED = "This session may read but not export: sign in with a token that has the export scope."
_SAMPLE_COLUMNS = (("time", "TIMESTAMPTZ_NS"), ("metric", "VARCHAR"), ("value", "DOUBLE"), ("site", "VARCHAR"))


@dataclass(frozen=True)
class ExportSource:
    """What an export reads: the store, and the salt users and groups are pseudonymised with
    (the service's own, so files from the page and from the API share pseudonyms)."""

    store: Store
    salt: str


@dataclass(frozen=True)
class Choice:
    table: str
    site: str | None
    range: str
    format: Literal["parquet", "csv"]


def export_query(choice: Choice, **change: str) -> str:
    values = {"table": choice.table, "site": choice.site or "", "range": choice.range, "format": choice.format}
    values.update(change)
    return "?" + urlencode({"view": VIEW, **{k: v for k, v in values.items() if v}})


def choice_of(search: str | None, sites: Sequence[str]) -> tuple[Choice, list[str]]:
    """The choice in the URL, and what of it was not understood (shown, then the default used)."""
    q = query(search)
    problems = []
    table = q.get("table", "jobs")
    if table not in TABLES:
        problems.append(f"unknown table {table!r} (jobs, samples or advice)")
        table = "jobs"
    site = q.get("site") or None
    if site is not None and site not in sites:
        problems.append(f"no site {site!r} in this twin")
        site = None
    range_ = q.get("range", "24h")
    if range_ not in RANGES:
        problems.append(f"unknown range {range_!r} ({', '.join(RANGES)})")
        range_ = "24h"
    fmt = q.get("format", "parquet")
    if fmt not in FORMATS:
        problems.append(f"unknown format {fmt!r} (parquet or csv)")
        fmt = "parquet"
    return Choice(table, site, range_, fmt), problems  # type: ignore[arg-type]


def _wall_bounds(choice: Choice, now_s: float) -> tuple[float | None, float | None]:
    span = RANGES[choice.range]
    return (None, None) if span is None else (now_s - span, now_s)


def _selection(choice: Choice, now_s: float) -> Selection:
    lo, hi = _wall_bounds(choice, now_s)
    return Selection(
        labels={"site": choice.site} if choice.site else {},
        start_ns=None if lo is None else int(lo * 1e9),
        end_ns=None if hi is None else int(hi * 1e9),
    )


def estimate_rows(
    source: ExportSource, choice: Choice, clocks: Sequence[ReplayClock], now_s: float, replayed: Sequence[str] = ()
) -> int:
    """Rows the export would write (a count in the store, not the export itself)."""
    if choice.table == "samples":
        return source.store.count(_selection(choice, now_s))
    if choice.table == "advice":
        lo, hi = _wall_bounds(choice, now_s)
        return source.store.advice(created_from_s=lo, created_to_s=hi).height
    lo, hi = _wall_bounds(choice, now_s)  # job times are each site's own: jobs_submitted maps the range
    return jobs_submitted(
        source.store, site=choice.site, wall_from_s=lo, wall_to_s=hi, clocks=clocks, replayed=replayed
    ).height


def _columns(choice: Choice) -> list[tuple[str, str]]:
    if choice.table == "jobs":
        return [(n, str(t)) for n, t in JOB_SCHEMA.items()]
    if choice.table == "advice":
        return [(n, "Float64" if n.endswith("_s") else "String") for n in _ADVICE_COLUMNS]
    return list(_SAMPLE_COLUMNS)


def build(
    source: ExportSource,
    choice: Choice,
    clocks: Sequence[ReplayClock],
    now_s: float,
    out: Path,
    progress: ProgressCallback | None = None,
    replayed: Sequence[str] = (),
) -> Path:
    """Export `choice` into `out`; returns the dataset's path (its manifest is beside it)."""
    stamp = int(now_s)
    path = out / f"{choice.table}-{choice.site or 'all'}-{stamp}.{choice.format}"
    if choice.table == "samples":
        export_samples(source.store, _selection(choice, now_s), path, choice.format, progress, clocks=clocks)
    elif choice.table == "advice":
        lo, hi = _wall_bounds(choice, now_s)
        export_advice(
            source.store,
            path,
            choice.format,
            source.salt,
            created_from_s=lo,
            created_to_s=hi,
            progress=progress,
            clocks=clocks,
        )
    else:
        lo, hi = _wall_bounds(choice, now_s)
        export_jobs(
            source.store,
            path,
            choice.format,
            source.salt,
            site=choice.site,
            wall_from_s=lo,
            wall_to_s=hi,
            progress=progress,
            clocks=clocks,
            replayed=replayed,
        )
    return path


def zipped(path: Path) -> bytes:
    """The dataset and its manifest in one zip (one download: the file never travels undocumented)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.write(path, path.name)
        archive.write(manifest_path(path), manifest_path(path).name)
    return buffer.getvalue()


def layout() -> Component:
    return html.Section(
        [
            html.H2("Export a dataset"),
            html.P(
                "Jobs, telemetry samples or placement advice with its outcomes, as Parquet or CSV, with a manifest"
                " that documents every column's type and unit, the time bounds used, how the tables join and how a"
                " replayed site's trace clock maps to wall time. Users and groups are pseudonymised.",
                className="muted",
            ),
            html.Nav(id=ids.EXPORT_FORM, className="choices"),
            html.Div(id=ids.EXPORT_PREVIEW),
            html.Button(
                "Download dataset + manifest (zip)", id=ids.EXPORT_BUTTON, n_clicks=0, className="export-button"
            ),
            html.Progress(id=ids.EXPORT_PROGRESS, max="1", value="0", style=HIDDEN),
            html.Div(id=ids.EXPORT_STATUS, className="muted"),
            dcc.Store(id=ids.EXPORT_TICKET),
            dcc.Interval(id=ids.EXPORT_TICK, interval=400, disabled=True),
            dcc.Download(id=ids.EXPORT_DOWNLOAD),
        ],
        id=ids.EXPORT_VIEW,
        className="panel",
        style=HIDDEN,
    )


def _form(choice: Choice, sites: Sequence[str]) -> list[Component]:
    def links(label: str, key: str, values: Sequence[str], current: str) -> html.Span:
        items: list[Component] = [html.Strong(label + " ")]
        for v in values:
            inner = html.Span(v or "all sites", **_attr(ids.EXPORT_ATTR, f"{key}={v}"))
            href = export_query(choice, **{key: v})
            items.append(dcc.Link(inner, href=href, className="range selected" if v == current else "range"))
        return html.Span(items, className="choice")

    return [
        links("table", "table", TABLES, choice.table),
        links("site", "site", ["", *sites], choice.site or ""),
        links("range", "range", list(RANGES), choice.range),
        links("format", "format", FORMATS, choice.format),
    ]


def render_preview(
    reader: TwinReader, source: ExportSource | None, search: str | None, now_s: float | None = None
) -> tuple[list[Component], list[Component]]:
    """The form and the manifest preview for the URL's choice."""
    views = reader.sites()
    sites = [s.name for s in views]
    choice, problems = choice_of(search, sites)
    form = _form(choice, sites)
    notes: list[Component] = [html.P(p, className="error") for p in problems]
    if source is None:
        return form, [*notes, html.P("No store behind this page: nothing to export.", className="empty")]
    now = time.time() if now_s is None else now_s
    clocks = replay_clocks(views)
    try:
        rows = estimate_rows(source, choice, clocks, now, [s.name for s in views if s.is_replay])
    except ReplayClockUnknownError as exc:  # the API's 409: said here the same way
        notes.append(html.P(str(exc), className="error"))
        rows = 0
    columns = _columns(choice)
    head = html.Tr([html.Th("column"), html.Th("type"), html.Th("unit")])
    body = [
        html.Tr([html.Td(n), html.Td(vocabulary_type(t)), html.Td(column_unit(n, choice.table) or "—")])
        for n, t in columns
    ]
    more = "" if choice.table != "samples" else " (plus one column per label key)"
    if choice.table == "advice":
        more = f" (first {len(columns)} of its columns)"
    joins = [
        html.Li(
            f"{j['left']['table']} ({', '.join(j['left']['columns'])}) → "
            f"{j['right']['table']} ({', '.join(j['right']['columns'])}): {j['meaning']}"
        )
        for j in JOINS
        if choice.table in (j["left"]["table"], j["right"]["table"])
    ]
    shown = [c for c in clocks if choice.site in (None, c.site)]
    clock_items = [
        html.Li(
            f"{c.site}: trace_s = {c.trace_origin_s:,.0f} + (wall_s − {c.wall_origin_s:,.0f}) × {c.speed:,.0f}",
            **_attr(ids.EXPORT_ATTR, f"clock={c.site}"),
        )
        for c in shown
    ]
    where = choice.site or "every site"
    if rows == 0:
        why = {
            "jobs": f"no jobs submitted at {where} in this range",
            "samples": f"no samples from {where} in this range",
            "advice": "no advice given in this range (the advice log is empty)",
        }[choice.table]
        estimate: Component = html.P(f"0 rows: {why}.", className="empty", **_attr(ids.EXPORT_ATTR, "rows=0"))
    else:
        estimate = html.P(f"About {rows:,} rows from {where}.", **_attr(ids.EXPORT_ATTR, f"rows={rows}"))
    preview = [
        *notes,
        html.H3("Manifest preview"),
        estimate,
        html.Table([html.Thead(head), html.Tbody(body)], className="export-columns"),
        html.P(f"{len(columns)} columns{more}.", className="muted"),
        html.H4("Join keys"),
        html.Ul(joins),
        html.H4("Clocks"),
        html.Ul(clock_items)
        if clock_items
        else html.P("Every time is wall clock UTC (no replayed site).", className="muted"),
    ]
    return form, preview


def _caller_may_export() -> bool:
    """Whether the session behind this callback holds the export scope (the UI guard puts the
    token on the request; none there means the UI runs without auth, e.g. on loopback)."""
    try:
        from dash.backends._fastapi import get_current_request

        request = get_current_request()
    except Exception:  # another backend, or no request: nothing to check, so no download (fail closed)
        return False
    if request is None:
        return False
    token = (getattr(request, "scope", {}).get("state") or {}).get("token")
    allows = getattr(token, "allows", None)
    return token is None or (callable(allows) and bool(allows("export")))


PROGRESS: dict[str, float] = {}
"""Running exports' progress (0..1) by ticket; an entry lives while its export runs."""


def progress_of(ticket: str | None) -> tuple[dict[str, str], str, str]:
    """The progress bar's style and value and a status line for the export `ticket`."""
    done = PROGRESS.get(ticket or "")
    if done is None:
        return HIDDEN, "0", ""
    return {}, f"{done:.2f}", f"Exporting… {done:.0%}"


def download(
    reader: TwinReader, source: ExportSource | None, search: str | None, ticket: str | None = None
) -> tuple[Any, str]:
    """The zip for dcc.Download and a status line; an empty or refused export says why. Progress
    goes to PROGRESS[ticket] while it runs (the export functions' progress hook)."""
    if source is None:
        return dash.no_update, "No store behind this page: nothing to export."
    views = reader.sites()
    choice, _ = choice_of(search, [s.name for s in views])
    started = time.perf_counter()
    key = ticket or ""
    PROGRESS[key] = 0.0

    def hook(fraction: float) -> None:
        PROGRESS[key] = fraction

    replayed = [s.name for s in views if s.is_replay]
    try:
        with tempfile.TemporaryDirectory(prefix="ctwin-export-") as tmp:
            path = build(source, choice, replay_clocks(views), time.time(), Path(tmp), hook, replayed)
            manifest = ExportManifest(**json.loads(manifest_path(path).read_text(encoding="utf-8")))
            payload = zipped(path)
    except ReplayClockUnknownError as exc:
        return dash.no_update, str(exc)
    finally:
        PROGRESS.pop(key, None)
    name = path.with_suffix(path.suffix + ".zip").name
    took = time.perf_counter() - started
    status = f"Exported {manifest.rows:,} rows in {took:.1f} s: {name} (sha256 {manifest.sha256[:12]}…)."
    return dcc.send_bytes(payload, name), status


def register(app: dash.Dash, reader: TwinReader, source: ExportSource | None) -> None:
    @app.callback(
        Output(ids.EXPORT_FORM, "children"),
        Output(ids.EXPORT_PREVIEW, "children"),
        Input(ids.URL, "search"),
    )
    async def _preview(search: str | None) -> Any:
        if not PAGE.shown(search):
            return dash.no_update, dash.no_update
        return await asyncio.to_thread(render_preview, reader, source, search)

    # a click makes a ticket in the browser and starts polling its progress
    app.clientside_callback(
        "function(n) { return [n + '-' + Math.random().toString(36).slice(2), false]; }",
        Output(ids.EXPORT_TICKET, "data"),
        Output(ids.EXPORT_TICK, "disabled"),
        Input(ids.EXPORT_BUTTON, "n_clicks"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.EXPORT_DOWNLOAD, "data"),
        Output(ids.EXPORT_STATUS, "children"),
        Output(ids.EXPORT_TICK, "disabled", allow_duplicate=True),
        Output(ids.EXPORT_PROGRESS, "style", allow_duplicate=True),
        Input(ids.EXPORT_TICKET, "data"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    async def _download(ticket: str | None, search: str | None) -> Any:
        if not ticket or not PAGE.shown(search):
            return dash.no_update, dash.no_update, True, HIDDEN
        if not _caller_may_export():  # on the request's context, before the worker thread
            return dash.no_update, REFUSED, True, HIDDEN
        sent, status = await asyncio.to_thread(download, reader, source, search, ticket)
        return sent, status, True, HIDDEN

    @app.callback(
        Output(ids.EXPORT_PROGRESS, "style"),
        Output(ids.EXPORT_PROGRESS, "value"),
        Output(ids.EXPORT_STATUS, "children", allow_duplicate=True),
        Input(ids.EXPORT_TICK, "n_intervals"),
        State(ids.EXPORT_TICKET, "data"),
        prevent_initial_call=True,
    )
    def _progress(_n: int, ticket: str | None) -> Any:
        style, value, status = progress_of(ticket)
        return style, value, status or dash.no_update


def _register_page(app: dash.Dash, sources: Sources) -> None:
    register(app, sources.reader, sources.export)


PAGE = Page(view=VIEW, label="Export", section_id=ids.EXPORT_VIEW, layout=layout, register=_register_page)
