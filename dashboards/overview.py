"""The continuum overview page: every site at a glance, and one site's hosts after a click.

Layout and callback wiring live here; everything a callback computes is a `render_*` function of
the reader and plain values, so it is tested without Dash running. The reader reaches callbacks
through `register`'s closure, never a module global (several apps, several workers, tests).
The selected site lives in the URL (`?site=NAME`), so a drill-down can be shared as a link.

The drill-down is a fixed skeleton whose properties the callbacks set (table rows, figures,
visibility), rather than children rebuilt each tick: Dash remounts returned children, which
would replot both figures and lose the user's zoom every five seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.figures import continuum_figure, empty_figure, node_history_figure, site_history_figure
from dashboards.parts import badge, collectors_table, links_table, node_rows, nodes_table, site_card
from twin.view import SiteView, TwinReader

__all__ = [
    "HISTORY_WINDOW_S",
    "REFRESH_MS",
    "Drilldown",
    "Overview",
    "layout",
    "register",
    "render_click",
    "render_drilldown",
    "render_overview",
    "selected_site",
]

REFRESH_MS = 5000
"""Live refresh period: the collectors' usual interval, so every tick can show something new."""
HISTORY_WINDOW_S = 3600.0
"""The drill-down shows the last hour."""

SHOWN: dict[str, str] = {}
HIDDEN = {"height": "0", "overflow": "hidden"}
"""Collapsed rather than `display: none`: a graph drawn inside a hidden element gets Plotly's default
700 px width and keeps it when shown; a collapsed one is drawn at the page's width."""
_GRAPH_CONFIG = dcc.Graph.Config(displaylogo=False, responsive=True)


class Overview(NamedTuple):
    """One refresh of the overview (in the order of the callback's outputs)."""

    cards: list[Component]
    continuum: go.Figure
    links: Component
    summary: str


class Drilldown(NamedTuple):
    """One refresh of the drill-down (in the order of the callback's outputs)."""

    head: list[Component]
    hosts_style: dict[str, str]
    hosts_title: str
    hosts: list[dict[str, Any]]
    hosts_figure: go.Figure
    site_style: dict[str, str]
    site_title: str
    site_figure: go.Figure


# --- URL state -----------------------------------------------------------------------------------


def selected_site(search: str | None) -> str | None:
    """The site named by `?site=NAME`, if any."""
    values = parse_qs((search or "").lstrip("?")).get("site")
    return values[0] if values and values[0] else None


def render_click(click_data: dict[str, Any] | None) -> Any:
    """The URL query for a click on a site node of the continuum graph; clicks elsewhere (a link
    label, an empty spot) change nothing."""
    points = (click_data or {}).get("points") or []
    name = points[0].get("customdata") if points else None
    return f"?{urlencode({'site': name})}" if isinstance(name, str) and name else dash.no_update


# --- render functions: all a callback does is call one of these ---------------------------------


def _summary(sites: Sequence[SiteView], now_s: float) -> str:
    counts = {s: sum(1 for v in sites if v.state == s) for s in ("ok", "stale", "down", "starting")}
    states = " · ".join(f"{n} {s}" for s, n in counts.items() if n)
    updated = time.strftime("%H:%M:%S UTC", time.gmtime(now_s))
    return f"{len(sites)} sites" + (f" · {states}" if states else "") + f" · updated {updated}"


def render_overview(reader: TwinReader, search: str | None, *, now_s: float, prefix: str = "/") -> Overview:
    """Cards, continuum graph, links table and header line for the current snapshot."""
    sites = reader.sites()
    links = reader.links()
    chosen = selected_site(search)
    cards = [site_card(s, selected=s.name == chosen, prefix=prefix) for s in sites]
    if not sites:
        cards = [html.P("No sites yet: the twin has not loaded its configuration.", className="muted")]
    return Overview(cards, continuum_figure(sites, links, selected=chosen), links_table(links), _summary(sites, now_s))


def _guarded(build: Callable[[], go.Figure]) -> go.Figure:
    """History reads the store; a failed read becomes a message on its figure, not a dead page."""
    try:
        return build()
    except Exception as exc:  # surfaced on the page, with its reason
        return empty_figure(f"history unavailable: {fmt.clip(f'{type(exc).__name__}: {exc}', 120)}")


def _nothing(head: list[Component]) -> Drilldown:
    blank = empty_figure("")
    return Drilldown(head, HIDDEN, "", [], blank, HIDDEN, "", blank)


def render_drilldown(reader: TwinReader, search: str | None, *, now_s: float) -> Drilldown:
    """One site in detail: its collectors, its hosts now and over the last hour, and (for a batch or
    replayed site) its load and jobs over the last hour. History is in wall time for every site: a
    replayed site's samples are stamped when they were collected, whatever trace instant they show."""
    name = selected_site(search)
    if name is None:
        return _nothing([html.P("Click a site card or a site in the graph to see its hosts.", className="muted")])
    try:
        site = reader.site(name)
    except KeyError:
        return _nothing([html.H2(name), html.P(f"There is no site named {name!r}.", className="error")])
    end = now_s
    start = end - HISTORY_WINDOW_S
    about = [site.description + " · " if site.description else "", f"data {fmt.age(site.data_age_s)}"]
    head: list[Component] = [
        html.H2([f"{site.name} ", html.Span(site.kind, className="kind"), " ", badge(site.state)]),
        html.P(about, className="muted"),
    ]
    if site.collectors:
        head += [html.H3("Collectors"), collectors_table(site.collectors)]

    nodes = reader.nodes(name)
    has_hosts = bool(nodes or site.hosts)
    hosts_figure = (
        _guarded(lambda: node_history_figure(reader.node_history(name, None, start, end), revision=f"nodes-{name}"))
        if has_hosts
        else empty_figure("")
    )
    batch = site.is_replay or site.nodes_total is not None or site.jobs_running is not None
    show_site = batch or not has_hosts
    site_figure = (
        _guarded(lambda: site_history_figure(reader.site_history(name, start, end), revision=f"site-{name}"))
        if show_site
        else empty_figure("")
    )
    replay_note = f" (replay now at {fmt.utc(site.trace_time_s)})" if site.is_replay and site.trace_time_s else ""
    site_title = "Load and jobs, last hour" + replay_note
    return Drilldown(
        head,
        SHOWN if has_hosts else HIDDEN,
        f"Hosts ({len(nodes)})",
        node_rows(nodes),
        hosts_figure,
        SHOWN if show_site else HIDDEN,
        site_title,
        site_figure,
    )


# --- layout and wiring ---------------------------------------------------------------------------


def layout() -> Component:
    """The static skeleton; every live part is filled by the callbacks on load and each tick."""
    blank = empty_figure("")
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            dcc.Interval(id=ids.TICK, interval=REFRESH_MS),
            html.Header([html.H1("Continuum Twin"), html.Span(id=ids.SUMMARY, className="muted")]),
            html.Section(id=ids.CARDS, className="cards"),
            html.Section(
                [
                    html.H2("Continuum"),
                    dcc.Graph(
                        id=ids.CONTINUUM,
                        figure=empty_figure("loading…", height=420),
                        config=dcc.Graph.Config(displayModeBar=False),
                    ),
                    html.Div(id=ids.LINKS),
                ],
                className="panel",
            ),
            html.Section(
                [
                    html.Div(id=ids.DRILL_HEAD),
                    html.Div(
                        [
                            html.H3(id=ids.HOSTS_TITLE),
                            nodes_table(),
                            html.H3("CPU and memory, last hour"),
                            dcc.Graph(id=ids.NODES_GRAPH, figure=blank, config=_GRAPH_CONFIG),
                        ],
                        id=ids.HOSTS_SECTION,
                        style=HIDDEN,
                    ),
                    html.Div(
                        [html.H3(id=ids.SITE_TITLE), dcc.Graph(id=ids.SITE_GRAPH, figure=blank, config=_GRAPH_CONFIG)],
                        id=ids.SITE_SECTION,
                        style=HIDDEN,
                    ),
                ],
                id=ids.DRILLDOWN,
                className="panel",
            ),
        ],
        className="ctwin",
    )


def register(app: dash.Dash, reader: TwinReader, *, prefix: str) -> None:
    """Wire the page's callbacks to `reader`. Rendering runs in a worker thread: history reads hit
    the store, and the service's event loop must keep answering the API meanwhile."""

    @app.callback(
        Output(ids.CARDS, "children"),
        Output(ids.CONTINUUM, "figure"),
        Output(ids.LINKS, "children"),
        Output(ids.SUMMARY, "children"),
        Input(ids.TICK, "n_intervals"),
        Input(ids.URL, "search"),
    )
    async def _overview(_tick: int | None, search: str | None) -> Overview:
        return await asyncio.to_thread(render_overview, reader, search, now_s=time.time(), prefix=prefix)

    @app.callback(
        Output(ids.DRILL_HEAD, "children"),
        Output(ids.HOSTS_SECTION, "style"),
        Output(ids.HOSTS_TITLE, "children"),
        Output(ids.NODES_TABLE, "data"),
        Output(ids.NODES_GRAPH, "figure"),
        Output(ids.SITE_SECTION, "style"),
        Output(ids.SITE_TITLE, "children"),
        Output(ids.SITE_GRAPH, "figure"),
        Input(ids.URL, "search"),
        Input(ids.TICK, "n_intervals"),
    )
    async def _drilldown(search: str | None, _tick: int | None) -> Drilldown:
        return await asyncio.to_thread(render_drilldown, reader, search, now_s=time.time())

    @app.callback(Output(ids.URL, "search"), Input(ids.CONTINUUM, "clickData"), prevent_initial_call=True)
    def _click(click_data: dict[str, Any] | None) -> Any:
        return render_click(click_data)
