"""The continuum overview page: every site at a glance, and one site's hosts after a click.

Layout and callback wiring live here; everything a callback computes is a `render_*` function of
the reader and plain values, so it is tested without Dash running. The reader reaches callbacks
through `register`'s closure, never a module global (several apps, several workers, tests).
The selected site and the drill-down's range live in the URL (`?site=NAME&range=24h`, see
`dashboards.urlstate`), so a drill-down can be shared as a link.

The drill-down is a fixed skeleton whose properties the callbacks set (table rows, figures,
visibility), rather than children rebuilt each tick: Dash remounts returned children, which
would replot both figures and lose the user's zoom every five seconds. It has three callbacks: the
live part (title, collectors, range selector, nodes table) from the twin's snapshot on the 5 s
tick; the history figures, which read the store, on a slower clock of their own
(`HISTORY_REFRESH_MS`); and a batch site's queue and forecast (`render_forecast`) on the 5 s tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.clocks import clock_of, label_time_axis
from dashboards.figures import (
    MANY_HOSTS,
    MAX_POINTS,
    continuum_figure,
    empty_figure,
    error_cdf_figure,
    forecast_figure,
    node_band_figure,
    node_history_figure,
    site_history_figure,
    sized,
)
from dashboards.pages import AdviceSummary, Page, Sources
from dashboards.parts import (
    MAX_QUEUE_ROWS,
    accuracy_stats,
    advice_table,
    badge,
    collectors_table,
    links_table,
    node_rows,
    nodes_table,
    queue_columns,
    queue_rows,
    queue_table,
    range_links,
    site_card,
)
from dashboards.urlstate import DEFAULT_RANGE, RANGE_PHRASES, RANGES, RangeKey, drill_query, parse, selected_site
from twin.view import NodeView, QueueForecast, SiteView, TwinReader

__all__ = [
    "HISTORY_REFRESH_MS",
    "PAGE",
    "REFRESH_MS",
    "Drilldown",
    "History",
    "Overview",
    "QueuePart",
    "clocks",
    "layout",
    "register",
    "render_click",
    "render_drilldown",
    "render_forecast",
    "render_history",
    "render_overview",
    "selected_site",
    "sized",
]

REFRESH_MS = 5000
"""Live refresh period: the collectors' usual interval, so every tick can show something new."""
HISTORY_REFRESH_MS: Mapping[RangeKey, int] = {"1h": REFRESH_MS, "6h": 15_000, "24h": 60_000}
"""How often the history figures are re-read, per range: about when a range can show a new step
(2,000 steps of 24 h are 43 s long). The figures have a clock of their own because Dash drops a
callback's answer when the same callback is asked again before it answered: on the 5 s tick, a
read slower than 5 s (24 h of a thousand hosts) would never reach the page. Re-reading a day
every 5 s would also keep the store busy for nothing."""
HISTORY_REFRESH_FIRST_MS = max(HISTORY_REFRESH_MS.values())
"""The history clock's period until the live part has set the range's own: the longest, so the
first history read is not asked again before it has answered."""

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
    """One refresh of the drill-down's live part (in the order of the callback's outputs)."""

    head: list[Component]
    ranges: list[Component]
    hosts_style: dict[str, str]
    hosts_title: str
    hosts: list[dict[str, Any]]
    site_style: dict[str, str]
    history_refresh_ms: int
    """The history figures' refresh period for the range shown (see HISTORY_REFRESH_MS)."""


class History(NamedTuple):
    """One refresh of the drill-down's history figures (in the order of the callback's outputs)."""

    hosts_figure_title: str
    hosts_figure: go.Figure
    site_title: str
    site_figure: go.Figure
    hosts_figure_style: dict[str, str]
    """`sized(hosts_figure)`, and `site_figure_style` likewise: see `sized` for why."""
    site_figure_style: dict[str, str]


class QueuePart(NamedTuple):
    """One refresh of a batch site's "Queue and forecast" section (in the order of the callback's outputs)."""

    section_style: dict[str, str]
    summary: list[Component]
    queue_style: dict[str, str]
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    figure: go.Figure
    accuracy: list[Component]
    accuracy_figure: go.Figure
    figure_style: dict[str, str]
    """`sized(figure)`, and `accuracy_figure_style` likewise: see `sized` for why."""
    accuracy_figure_style: dict[str, str]


# --- URL state -----------------------------------------------------------------------------------


def render_click(click_data: dict[str, Any] | None, search: str | None = None) -> Any:
    """The URL query for a click on a site node of the continuum graph, keeping the range shown
    (`search` is the current query); clicks elsewhere (a link label, an empty spot) change nothing."""
    points = (click_data or {}).get("points") or []
    name = points[0].get("customdata") if points else None
    return drill_query(name, parse(search).range) if isinstance(name, str) and name else dash.no_update


# --- render functions: all a callback does is call one of these ---------------------------------


def _summary(sites: Sequence[SiteView], now_s: float) -> str:
    order = ("ok", "stale", "down", "starting", "configured")  # a config-only site is counted, not as a fault
    counts = {s: sum(1 for v in sites if v.state == s) for s in order}
    states = " · ".join(f"{n} {s}" for s, n in counts.items() if n)
    updated = time.strftime("%H:%M:%S UTC", time.gmtime(now_s))
    return f"{len(sites)} sites" + (f" · {states}" if states else "") + f" · updated {updated}"


def render_overview(reader: TwinReader, search: str | None, *, now_s: float, prefix: str = "/") -> Overview:
    """Cards, continuum graph, links table and header line for the current snapshot."""
    sites = reader.sites()
    links = reader.links()
    chosen, range_ = parse(search)
    cards = [site_card(s, selected=s.name == chosen, prefix=prefix, range_=range_) for s in sites]
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
    return Drilldown(head, [], HIDDEN, "", [], HIDDEN, HISTORY_REFRESH_MS[DEFAULT_RANGE])


class _Shown(NamedTuple):
    """Which parts of the drill-down a site has; every callback decides it the same way."""

    site: SiteView
    nodes: list[NodeView]
    hosts: bool
    history: bool
    batch: bool
    """A batch scheduler (or a replayed log) behind it: it has a queue to forecast."""


def _shown(reader: TwinReader, name: str | None) -> _Shown | None:
    """A site with hosts shows them; a batch or replayed site (or one without hosts) shows its load
    and jobs. None when no site is selected or there is no such site."""
    if name is None:
        return None
    try:
        site = reader.site(name)
    except KeyError:
        return None
    nodes = reader.nodes(name)
    has_hosts = bool(nodes or site.hosts)
    batch = site.is_replay or site.nodes_total is not None or site.jobs_running is not None
    return _Shown(site, nodes, has_hosts, batch or not has_hosts, batch)


def render_drilldown(reader: TwinReader, search: str | None, *, now_s: float, prefix: str = "/") -> Drilldown:
    """One site in detail, from the twin's snapshot only (no store read, so it is quick every tick):
    its collectors, its range selector, and its hosts now. The history figures are
    `render_history`'s, on a slower clock."""
    name, range_ = parse(search)
    if name is None:
        return _nothing([html.P("Click a site card or a site in the graph to see its hosts.", className="muted")])
    shown = _shown(reader, name)
    if shown is None:
        return _nothing([html.H2(name), html.P(f"There is no site named {name!r}.", className="error")])
    site = shown.site
    about = [site.description + " · " if site.description else "", f"data {fmt.age(site.data_age_s)}"]
    head: list[Component] = [
        html.H2([f"{site.name} ", html.Span(site.kind, className="kind"), " ", badge(site.state)]),
        html.P(about, className="muted"),
    ]
    if site.collectors:
        head += [html.H3("Collectors"), collectors_table(site.collectors)]
    return Drilldown(
        head,
        range_links(name, range_, prefix=prefix),
        SHOWN if shown.hosts else HIDDEN,
        f"Hosts ({len(shown.nodes)})",
        node_rows(shown.nodes),
        SHOWN if shown.history else HIDDEN,
        HISTORY_REFRESH_MS[range_],
    )


def render_history(reader: TwinReader, search: str | None, *, now_s: float) -> History:
    """The selected site over the chosen range (`?range=`, the last hour by default): its hosts' CPU
    and memory, and for a batch or replayed site its load and jobs.

    Every history read asks for at most `MAX_POINTS` points per series, so the store aggregates a
    long range into steps on the server and no trace sent to the browser outgrows that budget
    (24 h at 1-minute resolution is 1,440 points per host). The range is wall time (the samples
    are stamped when collected); a replayed site's x axis is in its trace clock (dashboards.clocks),
    labelled, so it agrees with its queue, forecast and card."""
    name, range_ = parse(search)
    blank = empty_figure("")
    shown = _shown(reader, name)
    if name is None or shown is None:
        return History("", blank, "", blank, sized(blank), sized(blank))
    end = now_s
    start = end - RANGES[range_]
    phrase = RANGE_PHRASES[range_]
    # The revision names site and range: a new range resets the zoom, a refresh keeps it.
    revision = f"nodes-{name}-{range_}"
    hosts = len(shown.nodes)
    clock = clock_of(shown.site)
    if clock.replay and (span := clock.span_phrase(RANGES[range_])):
        phrase = f"{phrase} ({span})"
    if hosts > MANY_HOSTS:  # one row per bucket, aggregated in the store, whatever the host count
        hosts_figure = _guarded(
            lambda: node_band_figure(
                clock.frame(reader.node_history_band(name, start, end, max_points=MAX_POINTS)), hosts, revision=revision
            )
        )
    elif shown.hosts:
        hosts_figure = _guarded(
            lambda: node_history_figure(
                clock.frame(reader.node_history(name, None, start, end, max_points=MAX_POINTS)), revision=revision
            )
        )
    else:
        hosts_figure = blank
    site_figure = (
        _guarded(
            lambda: site_history_figure(
                clock.frame(reader.site_history(name, start, end, max_points=MAX_POINTS)),
                revision=f"site-{name}-{range_}",
            )
        )
        if shown.history
        else blank
    )
    site = shown.site
    replay_note = f" (replay now at {fmt.utc(site.trace_time_s)})" if site.is_replay and site.trace_time_s else ""
    for figure in (hosts_figure, site_figure):
        label_time_axis(figure, clock.name)
    return History(
        f"CPU and memory, {phrase}",
        hosts_figure,
        f"Load and jobs, {phrase}" + replay_note,
        site_figure,
        sized(hosts_figure),
        sized(site_figure),
    )


_PREDICTORS = {
    "ave2": "runtimes predicted from each user's last two jobs",
    "requested": "runtimes as requested (what the scheduler assumes)",
}


def _forecast_hidden() -> QueuePart:
    blank = empty_figure("")
    return QueuePart(HIDDEN, [], HIDDEN, queue_columns(None), [], blank, [], blank, sized(blank), sized(blank))


def _forecast_summary(forecast: QueueForecast, site: SiteView) -> list[Component]:
    """What the forecast is of: how many jobs, on how many CPUs, how runtimes were guessed, at which
    instant of the site's clock (a replay's is 1996, not today), and what had to be corrected."""
    pending = forecast.jobs.height
    if pending == 0:
        lead = "No pending jobs: the queue is empty, every job submitted is running."
    else:
        lead = f"{fmt.count(pending)} pending jobs, simulated forward on {fmt.count(forecast.processors)} CPUs"
        lead += f" with {_PREDICTORS.get(forecast.predictor, forecast.predictor)}."
    facts = [f"site clock {fmt.utc(forecast.now_s)}"]
    if site.jobs_running is not None:
        facts.append(f"{fmt.count(site.jobs_running)} running")
    facts.append(f"forecast took {fmt.seconds_short(forecast.seconds)}")
    if pending > MAX_QUEUE_ROWS:
        facts.append(f"the table lists the next {fmt.count(MAX_QUEUE_ROWS)} to start")
    out: list[Component] = [html.P(lead), html.P(" · ".join(facts), className="muted")]
    if forecast.corrections:
        fixed = ", ".join(f"{fmt.count(n)} {reason.replace('_', ' ')}" for reason, n in forecast.corrections.items())
        out.append(html.P(f"Corrected to make the forecast possible: {fixed}.", className="muted"))
    return out


def render_forecast(reader: TwinReader, search: str | None) -> QueuePart:
    """A batch site's queue and forecast: the pending jobs with their predicted starts (table and
    Gantt figure), and how close past forecasts came to the real starts.

    Hidden for a site without a batch scheduler, and for one whose scheduler state has not arrived
    yet (the reader's LookupError): a section saying "nothing" on every cloud site would be noise.
    Any other failure is shown on the section with its reason, like a failed history read. Every
    relative time is measured from the forecast's own clock (`now_s`), not the wall clock."""
    name, _range = parse(search)
    shown = _shown(reader, name)
    if name is None or shown is None or not shown.batch:
        return _forecast_hidden()
    try:
        forecast = reader.queue_forecast(name)
    except LookupError:  # KeyError too: the site went away between two reads
        return _forecast_hidden()
    except Exception as exc:  # surfaced on the page, with its reason
        reason = f"forecast unavailable: {fmt.clip(f'{type(exc).__name__}: {exc}', 160)}"
        blank = empty_figure(reason)
        summary: list[Component] = [html.P(reason, className="error")]
        return QueuePart(SHOWN, summary, HIDDEN, queue_columns(None), [], blank, [], blank, sized(blank), sized(blank))
    figure = forecast_figure(forecast.jobs, forecast.now_s, processors=forecast.processors, revision=f"forecast-{name}")
    errors = error_cdf_figure(forecast.recent_errors_s, revision=f"errors-{name}")
    return QueuePart(
        SHOWN,
        _forecast_summary(forecast, shown.site),
        SHOWN if forecast.jobs.height else HIDDEN,
        queue_columns(forecast),
        queue_rows(forecast),
        figure,
        accuracy_stats(forecast),
        errors,
        sized(figure),
        sized(errors),
    )


# --- layout and wiring ---------------------------------------------------------------------------


"""A site's advice by hook (twin.advice.log.AdviceLog.summary); None where no advisor runs."""


def render_advice(summary: AdviceSummary | None, search: str | None, *, now_s: float) -> tuple[dict[str, str], Any]:
    """The "Advice handed out here" section of the selected site: every hook's answers that
    recommended it and how they turned out (a store aggregate, cheap enough for the 5 s tick)."""
    name, _ = parse(search)
    if summary is None or name is None:
        return HIDDEN, []
    try:
        frame = summary(name)
    except Exception as exc:  # the store is away: say so, keep the page
        return SHOWN, [html.H3("Advice handed out here"), html.P(f"advice log unavailable: {exc}", className="error")]
    head = html.H3("Advice handed out here")
    if frame.height == 0:
        return SHOWN, [head, html.P("No advice has recommended this site yet.", className="muted")]
    return SHOWN, [
        head,
        html.P(
            "Per scheduler hook: answers that recommended this site; of them, submitted (the caller said"
            " where), followed (submitted here), ended (outcome joined); the mean error of the predicted"
            " turnaround and the regret over the ended ones.",
            className="muted",
        ),
        advice_table(frame, now_s),
    ]


def layout() -> Component:
    """The static skeleton; every live part is filled by the callbacks on load and each tick."""
    blank = empty_figure("")
    return html.Div(
        [
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
                    html.Nav(id=ids.RANGE, className="ranges"),
                    html.Div(
                        [
                            html.H3(id=ids.HOSTS_TITLE),
                            nodes_table(),
                            html.H3(id=ids.NODES_GRAPH_TITLE),
                            dcc.Graph(id=ids.NODES_GRAPH, figure=blank, config=_GRAPH_CONFIG, style=sized(blank)),
                        ],
                        id=ids.HOSTS_SECTION,
                        style=HIDDEN,
                    ),
                    html.Div(
                        [
                            html.H3(id=ids.SITE_TITLE),
                            dcc.Graph(id=ids.SITE_GRAPH, figure=blank, config=_GRAPH_CONFIG, style=sized(blank)),
                        ],
                        id=ids.SITE_SECTION,
                        style=HIDDEN,
                    ),
                    html.Div(
                        [
                            html.H3("Queue and forecast"),
                            html.Div(id=ids.FORECAST_SUMMARY),
                            html.Div(queue_table(), id=ids.QUEUE_BOX, style=HIDDEN),
                            dcc.Graph(id=ids.FORECAST_GRAPH, figure=blank, config=_GRAPH_CONFIG, style=sized(blank)),
                            html.H3("How good the forecast has been"),
                            html.Div(id=ids.ACCURACY_STATS),
                            dcc.Graph(id=ids.ACCURACY_GRAPH, figure=blank, config=_GRAPH_CONFIG, style=sized(blank)),
                        ],
                        id=ids.FORECAST_SECTION,
                        style=HIDDEN,
                    ),
                    html.Div(id=ids.ADVICE_SECTION, style=HIDDEN),
                ],
                id=ids.DRILLDOWN,
                className="panel",
            ),
        ],
        id=ids.OVERVIEW_VIEW,
    )


def clocks() -> list[Component]:
    """The page-wide URL and the two refresh clocks, which every page's callbacks may listen to."""
    return [
        dcc.Location(id=ids.URL, refresh="callback-nav"),
        dcc.Interval(id=ids.TICK, interval=REFRESH_MS),
        dcc.Interval(id=ids.HISTORY_TICK, interval=HISTORY_REFRESH_FIRST_MS),
    ]


def register(app: dash.Dash, reader: TwinReader, *, prefix: str, advice: AdviceSummary | None = None) -> None:
    """Wire the page's callbacks to `reader` (and the advice log's `advice` summary). Rendering
    runs in a worker thread: history reads hit the store, and the service's event loop must keep
    answering the API meanwhile."""

    @app.callback(
        Output(ids.ADVICE_SECTION, "style"),
        Output(ids.ADVICE_SECTION, "children"),
        Input(ids.URL, "search"),
        Input(ids.TICK, "n_intervals"),
    )
    async def _advice(search: str | None, _tick: int | None) -> tuple[dict[str, str], Any]:
        return await asyncio.to_thread(render_advice, advice, search, now_s=time.time())

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
        Output(ids.RANGE, "children"),
        Output(ids.HOSTS_SECTION, "style"),
        Output(ids.HOSTS_TITLE, "children"),
        Output(ids.NODES_TABLE, "data"),
        Output(ids.SITE_SECTION, "style"),
        Output(ids.HISTORY_TICK, "interval"),
        Input(ids.URL, "search"),
        Input(ids.TICK, "n_intervals"),
    )
    async def _drilldown(search: str | None, _tick: int | None) -> Drilldown:
        return await asyncio.to_thread(render_drilldown, reader, search, now_s=time.time(), prefix=prefix)

    @app.callback(
        Output(ids.NODES_GRAPH_TITLE, "children"),
        Output(ids.NODES_GRAPH, "figure"),
        Output(ids.SITE_TITLE, "children"),
        Output(ids.SITE_GRAPH, "figure"),
        Output(ids.NODES_GRAPH, "style"),
        Output(ids.SITE_GRAPH, "style"),
        Input(ids.URL, "search"),
        Input(ids.HISTORY_TICK, "n_intervals"),
    )
    async def _history(search: str | None, _tick: int | None) -> History:
        return await asyncio.to_thread(render_history, reader, search, now_s=time.time())

    @app.callback(
        Output(ids.FORECAST_SECTION, "style"),
        Output(ids.FORECAST_SUMMARY, "children"),
        Output(ids.QUEUE_BOX, "style"),
        Output(ids.QUEUE_TABLE, "columns"),
        Output(ids.QUEUE_TABLE, "data"),
        Output(ids.FORECAST_GRAPH, "figure"),
        Output(ids.ACCURACY_STATS, "children"),
        Output(ids.ACCURACY_GRAPH, "figure"),
        Output(ids.FORECAST_GRAPH, "style"),
        Output(ids.ACCURACY_GRAPH, "style"),
        Input(ids.URL, "search"),
        Input(ids.TICK, "n_intervals"),
    )
    async def _forecast(search: str | None, _tick: int | None) -> QueuePart:
        # Its own callback on the 5 s tick. Measured on `ctwin serve`'s KTH-SP2 replay (30-40 pending):
        # the forecast 15 ms median (p95 27 ms), the whole render 56 ms (p95 93 ms, mostly plotly's
        # figure building); well inside the tick, so no slower clock, but kept off the live part.
        return await asyncio.to_thread(render_forecast, reader, search)

    @app.callback(
        Output(ids.URL, "search"),
        Input(ids.CONTINUUM, "clickData"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def _click(click_data: dict[str, Any] | None, search: str | None) -> Any:
        return render_click(click_data, search)


def _register_page(app: dash.Dash, sources: Sources) -> None:
    register(app, sources.reader, prefix=app.config.requests_pathname_prefix, advice=sources.advice)


PAGE = Page(view="", label="Twin", section_id=ids.OVERVIEW_VIEW, layout=layout, register=_register_page)
