"""The placement-advice page (`?view=advice`): a job form → every site ranked for it, turnaround as
stacked stage-in / wait / run / stage-out bars (p50) with p10–p90 whiskers, a table of cost, CO2,
energy, reasons and data ages; below, the advice log's recent answers and how they turned out.

The job lives in the query string (`?view=advice&cores=64&walltime=3600&objective=cost…`) and the
ranking is computed from it, so a shared link reproduces the question (the answer is the twin's
current one). The form only rewrites the link; nothing is asked until the URL names a job.

The form and its URL are dashboards.advice_form. The ranking is `Advisor.preview`: the answer
`POST /v1/advice` would give now, but neither booked against herding nor kept in the advice log,
so opening or reloading a link (or a crawler following one) does not take a slot from real jobs
nor count as advice handed out. The log below lists what the API and the scheduler hooks did.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.advice_form import (
    CHOICES,
    FIELDS,
    KEYS,
    OBJECTIVES,
    PLACEHOLDERS,
    VIEW,
    JobForm,
    advice_query,
    form_state,
    parse_job,
)
from dashboards.clocks import clock_of
from dashboards.figures import empty_figure, sized
from dashboards.pages import HIDDEN, Page, Sources
from dashboards.parts import HOOK_NAMES, _attr
from twin.advice.live import Advisor
from twin.advice.outcome import Advice, SiteOutcome
from twin.errors import TwinError
from twin.view import SiteView, TwinReader

__all__ = ["PAGE", "VIEW", "advice_figure", "advice_table", "layout", "register", "render_advice", "render_log"]

LOG_ROWS = 20
STAGES = (("stage_in_s", "stage-in", "#9467bd"), ("wait_s", "wait", "#ff7f0e"), ("run_s", "run", "#1f77b4"),
          ("stage_out_s", "stage-out", "#8c564b"))  # fmt: skip
_GRAPH_CONFIG = dcc.Graph.Config(displayModeBar=False)
_BLANK = empty_figure("no job asked yet")


def _field_id(key: str) -> str:
    return f"{ids.ADVICE_FIELD}-{key}"


# ---------------------------------------------------------------------------------------- layout


def _form() -> list[Component]:
    boxes: list[Component] = []
    for key, label, kind in FIELDS:
        hint = PLACEHOLDERS.get(key)
        field = dcc.Input(id=_field_id(key), type=kind, min=0 if kind == "number" else None, placeholder=hint)
        boxes.append(html.Label([html.Span(label), field], className="field"))
    for key, label in CHOICES:
        menu = dcc.Dropdown(id=_field_id(key), clearable=key not in ("objective", "risk"))
        boxes.append(html.Label([html.Span(label), menu], className="field"))
    return boxes


def layout() -> Component:
    return html.Section(
        [
            html.H2("Placement advice"),
            html.P(
                "Where should this job run? Every site ranked by its predicted turnaround (stage-in, queue wait,"
                " run, stage-out), cost or energy, from the twin's current state, queue forecasts and links.",
                className="muted",
            ),
            html.Div(_form(), id=ids.ADVICE_FORM, className="advice-form"),
            dcc.Link("Rank every site", id=ids.ADVICE_SUBMIT, href=advice_query({}), className="button"),
            html.Nav(id=ids.ADVICE_OBJECTIVES, className="choices"),
            html.Div(id=ids.ADVICE_SUMMARY, className="advice-summary"),
            dcc.Graph(id=ids.ADVICE_GRAPH, figure=_BLANK, config=_GRAPH_CONFIG, style=sized(_BLANK)),
            html.Div(id=ids.ADVICE_RANKING),
            html.H3("Recent advice"),
            html.P(
                "The last answers handed out (REST API, ctwin advise, the scheduler hooks), with the realised"
                " turnaround once the caller reported where the job ran and it ended.",
                className="muted",
            ),
            html.Div(id=ids.ADVICE_LOG),
        ],
        id=ids.ADVICE_VIEW,
        className="panel",
        style=HIDDEN,
    )


# ------------------------------------------------------------------------------------- rendering


def _objective_links(form: JobForm) -> list[Component]:
    if form.request is None:
        return []
    links: list[Component] = [html.Strong("rank by ")]
    for objective in OBJECTIVES:
        href = advice_query({**form.values, "objective": objective})
        inner = html.Span(objective, **_attr(ids.ADVICE_ATTR, objective))
        chosen = objective == form.request.objective
        links.append(dcc.Link(inner, href=href, className="range selected" if chosen else "range"))
    return [html.Span(links, className="choice")]


def _label(o: SiteOutcome, rank: int | None) -> str:
    return f"{rank}. {o.site}" if rank is not None else f"✗ {o.site}"


def advice_figure(advice: Advice) -> go.Figure:
    """One row per site (feasible best first): the p50 stages stacked, p10–p90 of the total."""
    feasible = [o for o in advice.ranked if o.feasible and o.turnaround_s is not None]
    excluded = [o for o in advice.ranked if o not in feasible]
    labels = [_label(o, i + 1) for i, o in enumerate(feasible)] + [_label(o, None) for o in excluded]
    fig = go.Figure()
    for attr, name, colour in STAGES:
        parts = [getattr(o, attr) for o in feasible]
        fig.add_trace(
            go.Bar(
                x=[0.0 if b is None else b.p50 / 3600 for b in parts],
                y=labels[: len(feasible)],
                name=name,
                orientation="h",
                marker={"color": colour},
                hovertemplate=f"%{{y}}: {name} %{{x:.2f}} h (p50)<extra></extra>",
            )
        )
    totals = [o.turnaround_s for o in feasible if o.turnaround_s is not None]
    fig.add_trace(
        go.Scatter(
            x=[t.p50 / 3600 for t in totals],
            y=labels[: len(feasible)],
            mode="markers",
            name="turnaround p10–p90",
            marker={"color": "#222", "size": 6, "symbol": "line-ns-open"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(t.p90 - t.p50) / 3600 for t in totals],
                "arrayminus": [(t.p50 - t.p10) / 3600 for t in totals],
                "color": "#222",
            },
            hovertemplate="%{y}: turnaround %{x:.2f} h (p50)<extra></extra>",
        )
    )
    if excluded:
        fig.add_trace(
            go.Scatter(
                x=[0.0] * len(excluded),
                y=labels[len(feasible) :],
                mode="text",
                text=[f"  excluded: {o.excluded_because or o.reason}" for o in excluded],
                textposition="middle right",
                showlegend=False,
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        template="plotly_white",
        barmode="stack",
        height=max(220, 34 * len(labels) + 110),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        legend={"orientation": "h", "y": -0.25, "traceorder": "normal"},
        yaxis={"autorange": "reversed", "automargin": True, "categoryorder": "array", "categoryarray": labels},
        xaxis={
            "title": "hours from now (each site's own clock: a replayed site's trace runs faster)",
            "rangemode": "tozero",
        },
    )
    return fig


def _band(b: Any, unit: str = "", digits: int = 2) -> str:
    if b is None:
        return fmt.UNKNOWN
    low, high = f"{b.p10:,.{digits}f}", f"{b.p90:,.{digits}f}"
    if low == high:  # a band narrower than the rounding: one value
        return f"{b.p50:,.{digits}f}{unit}"
    return f"{b.p50:,.{digits}f}{unit} ({low}–{high})"


def _span(b: Any) -> str:
    """A duration band as a person plans with it: `2 h 10 min (1 h 50 min–3 h)`."""
    if b is None:
        return fmt.UNKNOWN
    low, high = fmt.duration(b.p10), fmt.duration(b.p90)
    if low == high:  # a band narrower than the rounding: one value
        return fmt.duration(b.p50)
    return f"{fmt.duration(b.p50)} ({low}–{high})"


def _ages(ages: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {fmt.age(v)}" for k, v in ages.items()) or fmt.UNKNOWN


def _start(o: SiteOutcome, views: dict[str, SiteView]) -> str:
    """The predicted start: UTC, and for a replayed site also in its trace clock."""
    if o.start_at_s is None:
        return fmt.UNKNOWN
    wall = fmt.utc(o.start_at_s)
    clock = clock_of(views.get(o.site))
    if clock.replay and clock.mapped:
        return f"{wall} · trace {fmt.utc(clock.at(o.start_at_s)).removesuffix(' UTC')}"
    return wall


def advice_table(advice: Advice, reader: TwinReader | None = None) -> html.Table:
    head = ("site", "kind", "turnaround", "starts", "cost", "energy (kWh)", "CO2 (g)", "reason", "data ages")
    views = {s.name: s for s in reader.sites()} if reader is not None else {}
    rows = []
    for o in advice.ranked:
        cells = [
            html.Td(html.Strong(o.site) if o.site == advice.recommended else o.site),
            html.Td(o.kind),
            html.Td(_span(o.turnaround_s)),
            html.Td(_start(o, views)),
            html.Td(_band(o.cost, f" {advice.currency}")),
            html.Td(_band(o.energy_kwh, "", 3)),
            html.Td(_band(o.co2_g, "", 0)),
            html.Td(o.reason if o.feasible else f"excluded ({o.excluded_because}): {o.reason}"),
            html.Td(_ages(dict(o.data_age_s)), className="muted"),
        ]
        rows.append(html.Tr(cells, className="" if o.feasible else "excluded", **_attr(ids.ADVICE_SITE_ATTR, o.site)))
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)], className="grid")


def render_advice(advisor: Advisor | None, search: str | None, reader: TwinReader | None = None) -> tuple[Any, ...]:
    """(objective links, summary, figure, table) for the job the URL names."""
    form = parse_job(search)
    links = _objective_links(form)
    if advisor is None:
        return links, "No advisor in this service: placement advice is not configured.", _BLANK, None
    if form.error is not None:
        return links, html.Span(form.error, className="error"), empty_figure("the job cannot be read"), None
    if form.request is None:
        return links, "Fill in the job and press “Rank every site”: the ranking follows the link.", _BLANK, None
    try:
        advice = advisor.preview(form.request)
    except (TwinError, KeyError, ValueError) as exc:
        return links, html.Span(f"No advice: {exc}", className="error"), empty_figure("no advice"), None
    feasible = sum(o.feasible for o in advice.ranked)
    if advice.recommended is None:
        summary: Any = [html.Strong("No site can run this job. "), advice.summary]
    else:
        summary = [html.Strong(f"Recommended: {advice.recommended}. "), advice.summary]
    summary = html.Div(
        [
            html.P(summary),
            html.P(
                f"{feasible} of {len(advice.ranked)} sites can run it · ranked by {advice.objective} ({advice.risk})"
                f" · as of {fmt.utc(advice.created_s)} · a preview: not booked, not logged (POST /v1/advice books one)",
                className="muted",
            ),
        ]
    )
    return links, summary, advice_figure(advice), advice_table(advice, reader)


def _outcome_cells(row: dict[str, Any]) -> list[str]:
    outcome = row.get("outcome") or {}
    realised = (outcome.get("realised") or {}).get("turnaround_s")
    error = (outcome.get("error_s") or {}).get("turnaround_s")
    regret = outcome.get("regret_s")
    if row.get("joined_s") is None:
        state = f"reported: {row['chosen_site']} job {row['job_id']}" if row.get("job_id") else "not reported"
        return [state, fmt.UNKNOWN, fmt.UNKNOWN, fmt.UNKNOWN]
    return [
        f"{outcome.get('state', 'ended')} at {row['chosen_site']}",
        fmt.duration(realised),
        fmt.UNKNOWN if error is None else ("+" if error >= 0 else "−") + fmt.duration(abs(error)),
        fmt.duration(regret),
    ]


def render_log(advisor: Advisor | None, limit: int = LOG_ROWS) -> Component:
    """The advice log's last answers, newest first."""
    if advisor is None:
        return html.P("No advisor in this service, so no advice log.", className="muted")
    rows = advisor.log.recent(limit)
    if not rows:
        return html.P("No advice handed out yet: nothing has asked through the API or a scheduler hook.",
                      className="muted")  # fmt: skip
    head = ("asked", "hook", "objective", "recommended", "predicted", "outcome", "realised", "error", "regret")
    body = []
    for row in rows:
        ranked = {s["site"]: s for s in row.get("ranked") or []}
        best = ranked.get(row.get("recommended") or "", {})
        predicted = (best.get("turnaround_s") or {}).get("p50")
        hook = row.get("hook") or "api"
        cells = [fmt.utc(row["created_s"]), HOOK_NAMES.get(hook, hook), row.get("objective") or fmt.UNKNOWN,
                 row.get("recommended") or "none", fmt.duration(predicted), *_outcome_cells(row)]  # fmt: skip
        body.append(html.Tr([html.Td(c) for c in cells], **_attr(ids.ADVICE_ID_ATTR, row["advice_id"])))
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)], className="grid")


# ------------------------------------------------------------------------------------- callbacks


def register(app: dash.Dash, sources: Sources) -> None:
    @app.callback(
        *[Output(_field_id(k), "value") for k in KEYS],
        *[Output(_field_id(k), "options") for k, _ in CHOICES],
        Input(ids.URL, "search"),
    )
    def _fill(search: str | None) -> tuple[Any, ...]:
        if not PAGE.shown(search):
            return (dash.no_update,) * (len(KEYS) + len(CHOICES))
        values, options = form_state(sources.reader, search)
        return (*values, *options)

    @app.callback(
        Output(ids.ADVICE_SUBMIT, "href"),
        *[Input(_field_id(k), "value") for k in KEYS],
        State(ids.URL, "search"),
    )
    def _link(*values: Any) -> Any:
        *fields, search = values
        if not PAGE.shown(search):
            return dash.no_update
        return advice_query(dict(zip(KEYS, fields, strict=True)))

    @app.callback(
        Output(ids.ADVICE_OBJECTIVES, "children"),
        Output(ids.ADVICE_SUMMARY, "children"),
        Output(ids.ADVICE_GRAPH, "figure"),
        Output(ids.ADVICE_GRAPH, "style"),
        Output(ids.ADVICE_RANKING, "children"),
        Output(ids.ADVICE_LOG, "children"),
        Input(ids.URL, "search"),
    )
    async def _advise(search: str | None) -> tuple[Any, ...]:
        if not PAGE.shown(search):
            return (dash.no_update,) * 6

        def work() -> tuple[Any, ...]:
            links, summary, fig, table = render_advice(sources.advisor, search, sources.reader)
            return links, summary, fig, sized(fig), table, render_log(sources.advisor)

        return await asyncio.to_thread(work)


PAGE = Page(view=VIEW, label="Advice", section_id=ids.ADVICE_VIEW, layout=layout, register=register)
