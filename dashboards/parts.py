"""Page pieces built from view values: site cards, small tables, and the nodes table.

Pure functions like the figures. Kept apart from the page wiring so `overview.py` reads as the
page's structure. One rule shapes them: Dash 4.2+ remounts every component a callback returns
(plotly/dash#3846) and its cost grows faster than linearly, so anything that can be long (a
site's hosts) is one `DataTable` fed with rows, never a tree of html components.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import polars as pl
from dash import dcc, html
from dash.dash_table.DataTable import DataTable
from dash.dash_table.Format import Format, Scheme
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.figures import STATE_COLOURS, by_predicted_start
from dashboards.urlstate import DEFAULT_RANGE, RANGE_PHRASES, RANGES, RangeKey, drill_query
from twin.advice.outcome import human_duration
from twin.view import CollectorHealth, LinkView, NodeView, QueueForecast, SiteView, State

__all__ = [
    "accuracy_stats",
    "collectors_table",
    "host_query",
    "links_table",
    "node_rows",
    "nodes_table",
    "queue_columns",
    "queue_rows",
    "queue_table",
    "range_links",
    "site_card",
    "site_href",
]

GIB = 2.0**30
_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
"""The page's font (assets/ctwin.css); DataTable would otherwise draw its cells in monospace."""
NODES_PAGE_SIZE = 25
"""Rows per page of the nodes table: a thousand-host site stays quick, sorting and filtering still
see every host."""
QUEUE_PAGE_SIZE = 25
MAX_QUEUE_ROWS = 1000
"""Pending jobs sent to the queue table, the next to start first: a 5,000-job queue would put
~1 MB on the wire every refresh, and nobody pages past the first thousand predicted starts."""


def site_href(prefix: str, name: str, range_: RangeKey = DEFAULT_RANGE) -> str:
    """The link to `name`'s drill-down over `range_` (so switching sites keeps the chosen range)."""
    return prefix + drill_query(name, range_)


def _attr(name: str, value: str) -> dict[str, Any]:
    """A `data-*` attribute, through Dash's wildcard props (the typed signatures list named props only)."""
    return {name: value}


def badge(state: State) -> html.Span:
    return html.Span(state, className=f"badge badge-{state}")


def _last_error(collectors: Sequence[CollectorHealth]) -> str | None:
    """The error worth showing on a card: from an unhealthy collector first, else any."""
    ranked = sorted(collectors, key=lambda c: c.state == "ok")
    return next((c.last_error for c in ranked if c.last_error), None)


def _facts(site: SiteView) -> list[tuple[str, str]]:
    batch = site.nodes_total is not None or site.jobs_running is not None or site.jobs_pending is not None
    rows = [("hosts", fmt.count(site.hosts))] if site.hosts or not batch else []
    if site.jobs_running is not None or site.jobs_pending is not None:
        rows.append(("jobs", f"{fmt.count(site.jobs_running)} running · {fmt.count(site.jobs_pending)} pending"))
    if site.nodes_total is not None:
        rows.append(("nodes busy", f"{fmt.count(site.nodes_busy)} / {fmt.count(site.nodes_total)}"))
    if site.cpus_total is not None:
        rows.append(("CPUs busy", f"{fmt.count(site.cpus_busy)} / {fmt.count(site.cpus_total)}"))
    if site.mem_used_frac is not None:
        rows.append(("memory", fmt.percent(site.mem_used_frac)))
    if site.is_replay:
        rows.append(("replay at", fmt.utc(site.trace_time_s)))
    return rows


def site_card(site: SiteView, *, selected: bool, prefix: str, range_: RangeKey = DEFAULT_RANGE) -> Component:
    """One site as a card linking to its drill-down (over the range being shown); unhealthy sites
    still show, with their data age and last error, because a missing card would read as "no such site"."""
    error = _last_error(site.collectors) if site.state != "ok" else None
    body: list[Component] = [
        html.Div(
            [html.Span(site.name, className="card-name"), html.Span(site.kind, className="kind"), badge(site.state)],
            className="card-head",
        ),
        html.Div([html.Span(fmt.percent(site.load), className="big"), html.Span("load")], className="card-load"),
        html.Dl([part for k, v in _facts(site) for part in (html.Dt(k), html.Dd(v))], className="facts"),
        html.Div(f"data {fmt.age(site.data_age_s)}", className="age"),
    ]
    if site.state == "configured":  # nothing to measure: say where its figures come from, not "data –"
        body[-1] = html.Div(
            "no collectors: known from its configuration only (price, quota, provisioning delay)", className="age"
        )
    if error:
        body.append(html.Div(f"last error: {fmt.clip(error)}", className="error", title=error))
    classes = f"card state-{site.state}" + (" selected" if selected else "")
    card = html.Div(body, **_attr(ids.SITE_ATTR, site.name))
    return dcc.Link(card, href=site_href(prefix, site.name, range_), className=classes)


def range_links(site: str, chosen: RangeKey, *, prefix: str) -> list[Component]:
    """The drill-down's range selector: plain links that rewrite the URL, like the site cards.

    Links rather than a form control, because the URL is the page's only state: a control would
    have to mirror the URL and the URL the control, a loop Dash can only close with logic in a
    callback. A link needs none, and opening one in a new tab or sharing it just works. The range
    key sits on an inner span (`data-range`), as `dcc.Link` takes no `data-*` attributes."""
    return [
        dcc.Link(
            html.Span(key.removesuffix("h") + " h", **_attr(ids.RANGE_ATTR, key)),
            href=site_href(prefix, site, key),
            className="range selected" if key == chosen else "range",
            title=f"show the {RANGE_PHRASES[key]}",
        )
        for key in RANGES
    ]


def _table(head: Sequence[str], rows: list[html.Tr], *, numeric: Sequence[str] = (), **attrs: Any) -> html.Table:
    """A plain table; `numeric` headers align right, over their right-aligned numbers."""
    header = html.Tr([html.Th(h, className="num" if h in numeric else None) for h in head])
    return html.Table([html.Thead(header), html.Tbody(rows)], **attrs)


def links_table(links: Sequence[LinkView]) -> Component:
    if not links:
        return html.P("No links between sites configured.", className="muted")
    rows = [
        html.Tr(
            [
                html.Td(f"{lk.a} ↔ {lk.b}"),
                html.Td(badge(lk.state)),
                html.Td(fmt.bits_per_s(lk.bandwidth_bps), className="num"),
                html.Td(fmt.seconds_short(lk.latency_s), className="num"),
                html.Td(fmt.bits_per_s(lk.rx_bps), className="num"),
                html.Td(fmt.bits_per_s(lk.tx_bps), className="num"),
                html.Td("from config" if lk.state == "configured" else fmt.age(lk.data_age_s)),
            ]
        )
        for lk in links
    ]
    head = ("link", "state", "capacity", "latency", "rx", "tx", "data age")
    return _table(head, rows, numeric=head[2:6], className="grid")


def collectors_table(collectors: Sequence[CollectorHealth]) -> html.Table:
    rows = [
        html.Tr(
            [
                html.Td(c.name),
                html.Td(c.type),
                html.Td(badge(c.state)),
                html.Td(fmt.age(c.data_age_s)),
                html.Td(fmt.count(c.errors), className="num"),
                html.Td(fmt.clip(c.last_error) if c.last_error else "", className="error", title=c.last_error or ""),
            ]
        )
        for c in collectors
    ]
    head = ("collector", "type", "state", "data age", "errors", "last error")
    return _table(head, rows, numeric=("errors",), className="grid")


HOOK_NAMES = {
    "api": "REST API",
    "cli": "ctwin advise",
    "k8s-extender": "kube-scheduler extender",
    "multikueue": "MultiKueue dispatcher",
    "sbatch": "ctwin sbatch",
}


def advice_table(summary: pl.DataFrame, now_s: float) -> html.Table:
    """Per hook (telemetry.advice.SUMMARY_SCHEMA rows): how many answers recommended the site, how
    many callers said where they submitted, how many followed, how many ended, and the error."""
    rows = [
        html.Tr(
            [
                html.Td(HOOK_NAMES.get(r["hook"], r["hook"]), title=r["hook"]),
                html.Td(fmt.count(r["answers"]), className="num"),
                html.Td(fmt.count(r["reported"]), className="num"),
                html.Td(fmt.count(r["followed"]), className="num"),
                html.Td(fmt.count(r["joined"]), className="num"),
                html.Td("" if r["abs_error_s"] is None else human_duration(r["abs_error_s"]), className="num"),
                html.Td("" if r["regret_s"] is None else human_duration(r["regret_s"]), className="num"),
                html.Td(fmt.age(None if r["last_s"] is None else now_s - r["last_s"])),
            ]
        )
        for r in summary.iter_rows(named=True)
    ]
    head = ("hook", "answers", "submitted", "followed", "ended", "|error| turnaround", "regret", "last")
    numeric = ("answers", "submitted", "followed", "ended", "|error| turnaround", "regret")
    return _table(head, rows, numeric=numeric, className="grid", id=ids.ADVICE_TABLE)


def _gib(b: float | None) -> float | None:
    return None if b is None else b / GIB


def host_query(site: str, host: str | None = None, range_: RangeKey | None = None) -> str:
    """The link to a host's page (`?view=hosts`, dashboards.hosts)."""
    params = {
        "view": "hosts",
        "site": site,
        **({"host": host} if host else {}),
        **({"range": range_} if range_ else {}),
    }
    return "?" + urlencode(params)


def node_rows(nodes: Sequence[NodeView]) -> list[dict[str, Any]]:
    """The nodes table's data, one row per host (numbers stay numbers, so the table sorts them)."""
    return [
        {
            "host": n.host,
            "state": n.state,
            "cpu": n.cpu_util,
            "cpus": n.cpus,
            "mem_used_gib": _gib(n.mem_used_bytes),
            "mem_total_gib": _gib(n.mem_total_bytes),
            "load1": n.load1,
            "age": fmt.age(n.data_age_s),
            "panels": f"[panels]({host_query(n.site, n.host)})",
        }
        for n in sorted(nodes, key=lambda n: n.host)
    ]


def nodes_table() -> DataTable:
    """The empty nodes table of the drill-down; callbacks only replace its `data`."""

    def number(precision: int | None = None, scheme: Scheme = Scheme.fixed) -> Format:
        """Unknown values read as `–`, as everywhere on the page (a blank cell looks like zero or loading)."""
        base = Format(nully=fmt.UNKNOWN)
        return base if precision is None else base.precision(precision).scheme(scheme)

    columns: list[Any] = [  # typed loosely: the stubs do not accept Format objects, Dash does
        {"id": "host", "name": "host"},
        {"id": "state", "name": "state"},
        {"id": "cpu", "name": "CPU", "type": "numeric", "format": number(0, Scheme.percentage)},
        {"id": "cpus", "name": "CPUs", "type": "numeric", "format": number()},
        {"id": "mem_used_gib", "name": "memory used (GiB)", "type": "numeric", "format": number(1)},
        {"id": "mem_total_gib", "name": "memory total (GiB)", "type": "numeric", "format": number(1)},
        {"id": "load1", "name": "load1", "type": "numeric", "format": number(2)},
        {"id": "age", "name": "data age"},
        {"id": "panels", "name": "", "presentation": "markdown"},  # the host's own page
    ]
    state_colours = [
        {"if": {"filter_query": f'{{state}} = "{s}"', "column_id": "state"}, "color": c, "fontWeight": 600}
        for s, c in STATE_COLOURS.items()
    ]
    return DataTable(
        id=ids.NODES_TABLE,
        columns=columns,
        data=[],
        sort_action="native",
        filter_action="native",
        page_size=NODES_PAGE_SIZE,
        markdown_options={"link_target": "_self"},
        style_as_list_view=True,
        style_cell={"fontFamily": _FONT, "fontSize": 13, "padding": "3px 8px", "textAlign": "right"},
        style_cell_conditional=[{"if": {"column_id": c}, "textAlign": "left"} for c in ("host", "state", "age")],
        style_header={"fontWeight": 600, "color": "#6b7280", "backgroundColor": "white"},
        style_data_conditional=state_colours,
    )


# --- the queue forecast --------------------------------------------------------------------------

_QUEUE_COLUMNS: list[tuple[str, str]] = [
    ("job", "job"),
    ("cpus", "CPUs"),
    ("requested", "requested time"),
    ("waiting", "waiting since submit"),
    ("start", "predicted start"),
]
_SCHEDULER_COLUMN = ("scheduler", "scheduler's estimate")
_BAND_COLUMN = ("band", "start p10–p90")


def _has(jobs: Any, column: str) -> bool:
    return column in jobs.columns and jobs.get_column(column).null_count() < jobs.height


def queue_columns(forecast: QueueForecast | None) -> list[dict[str, Any]]:
    """The queue table's columns: the scheduler's estimate and the p10–p90 band only when the
    forecast has them (a replay has no scheduler, `ave2` no band), so no column is all dashes."""
    columns = list(_QUEUE_COLUMNS)
    if forecast is not None and _has(forecast.jobs, "scheduler_start_s"):
        columns.append(_SCHEDULER_COLUMN)
    if forecast is not None and _has(forecast.jobs, "start_early_s") and _has(forecast.jobs, "start_late_s"):
        columns.append(_BAND_COLUMN)
    return [{"id": c, "name": n, **({"type": "numeric"} if c == "cpus" else {})} for c, n in columns]


def _since(now_s: int, t: int | None) -> float | None:
    return None if t is None else t - now_s


def queue_rows(forecast: QueueForecast, *, limit: int = MAX_QUEUE_ROWS) -> list[dict[str, Any]]:
    """The queue table's data: pending jobs in predicted-start order, times relative to the site's
    clock ("in 35 min", "2 h 10 min" waiting). The text is formatted here because DataTable has no
    duration format; the rows therefore come sorted and the table does not re-sort them."""
    jobs = by_predicted_start(forecast.jobs).head(max(0, limit))
    now = forecast.now_s
    rows = []
    for r in jobs.iter_rows(named=True):
        start = r.get("predicted_start_s")
        row: dict[str, Any] = {
            "job": str(r.get("job_id")),
            "cpus": r.get("procs"),
            "requested": fmt.duration(r.get("req_s")),
            "waiting": fmt.duration(None if r.get("submit_s") is None else now - r["submit_s"]),
            "start": fmt.starts_in(_since(now, start)) if start is not None else "never: wider than the site",
            "scheduler": fmt.starts_in(_since(now, r.get("scheduler_start_s"))),
        }
        early, late = r.get("start_early_s"), r.get("start_late_s")
        row["band"] = (
            f"{fmt.starts_in(_since(now, early))} – {fmt.starts_in(_since(now, late))}"
            if early is not None and late is not None
            else fmt.UNKNOWN
        )
        rows.append(row)
    return rows


def queue_table() -> DataTable:
    """The empty queue table of a batch site's drill-down; callbacks set its `columns` and `data`.

    Not sortable: its cells are formatted durations ("in 2 h" would sort before "in 35 min"), and
    the rows already come in the order that matters, the predicted start."""
    columns: list[Any] = queue_columns(None)  # typed loosely: the stubs want TypedDicts, Dash takes dicts
    return DataTable(
        id=ids.QUEUE_TABLE,
        columns=columns,
        data=[],
        sort_action="none",
        page_action="native",
        page_size=QUEUE_PAGE_SIZE,
        markdown_options={"link_target": "_self"},
        style_as_list_view=True,
        style_cell={"fontFamily": _FONT, "fontSize": 13, "padding": "3px 8px", "textAlign": "right"},
        style_cell_conditional=[{"if": {"column_id": "job"}, "textAlign": "left"}],
        style_header={"fontWeight": 600, "color": "#6b7280", "backgroundColor": "white"},
        style_data_conditional=[
            {"if": {"filter_query": '{start} = "now"', "column_id": "start"}, "color": STATE_COLOURS["ok"]},
        ],
    )


def _stat(value: str, label: str) -> html.Div:
    return html.Div([html.Span(value, className="big"), html.Span(label)], className="stat")


def accuracy_stats(forecast: QueueForecast) -> list[Component]:
    """The forecast's past accuracy in a few figures: shares within ±1 min / ±10 min / ±1 h of the
    real start, the median absolute error and how many forecasts were scored (a share of three
    scores is no evidence; the count says so). Before the first score, a sentence says why."""
    if forecast.scored == 0:
        return [
            html.P(
                "No forecast scored yet: each pending job's first forecast is scored when the job is seen starting.",
                className="muted",
            )
        ]
    errors = forecast.recent_errors_s
    late = sum(1 for e in errors if e < 0) / len(errors) if errors else None
    stats = [
        _stat(fmt.percent(forecast.within_1min), "within ±1 min"),
        _stat(fmt.percent(forecast.within_10min), "within ±10 min"),
        _stat(fmt.percent(forecast.within_1h), "within ±1 h"),
        _stat(fmt.duration(forecast.median_abs_error_s), "median error"),
        _stat(fmt.count(forecast.scored), "forecast scored" if forecast.scored == 1 else "forecasts scored"),
    ]
    if late is not None:
        stats.append(_stat(fmt.percent(late), "started later than forecast"))
    out: list[Component] = [html.Div(stats, className="stats")]
    if forecast.runtime_scored:  # the learned runtime model's own record: drift shows here first
        out.append(
            html.Div(
                [
                    _stat(fmt.percent(forecast.runtime_mean_accuracy), "runtime accuracy (learned model)"),
                    _stat(fmt.duration(forecast.runtime_mae_s), "mean runtime error"),
                    _stat(fmt.count(forecast.runtime_scored), "runtimes scored"),
                ],
                className="stats",
            )
        )
    return out
