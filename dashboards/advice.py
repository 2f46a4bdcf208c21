"""The placement-advice page (`?view=advice`): a job form → every site ranked for it, turnaround as
stacked stage-in / wait / run / stage-out bars (p50) with p10–p90 whiskers, a table of cost, CO2,
energy, reasons and data ages; below, the advice log's recent answers and how they turned out.

The job lives in the query string (`?view=advice&cores=64&walltime=3600&objective=cost…`) and the
ranking is computed from it, so a shared link reproduces the question (the answer is the twin's
current one). The form only rewrites the link; nothing is asked until the URL names a job.

The Advisor has one path, `advise()`, which books the recommended slot against herding and logs
the answer: the page uses it like the REST API does, with `hook="dash"`, so the advice log says
which answers the page handed out (they can be reported back and joined like any other).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import astuple, dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.clocks import clock_of
from dashboards.figures import empty_figure
from dashboards.pages import HIDDEN, Page, Sources, query
from dashboards.parts import HOOK_NAMES, _attr
from models.containers.config import AFFINITIES
from telemetry.schema import parse_duration
from twin.advice.live import Advisor
from twin.advice.outcome import Advice, SiteOutcome
from twin.advice.request import ContainerSpec, DataSpec, JobRequest, Objective, Weights
from twin.errors import TwinError
from twin.view import SiteView, TwinReader

__all__ = ["PAGE", "VIEW", "JobForm", "advice_query", "parse_job", "render_advice", "render_log"]

VIEW = "advice"
OBJECTIVES: tuple[Objective, ...] = ("turnaround", "cost", "energy", "co2", "weighted")
RISKS = ("p50", "p90")
RUNTIMES = ("apptainer", "podman", "docker", "charliecloud")
LOG_ROWS = 20
GB = 1e9
MAX_WALLTIME_S = 366 * 86400
STAGES = (("stage_in_s", "stage-in", "#9467bd"), ("wait_s", "wait", "#ff7f0e"), ("run_s", "run", "#1f77b4"),
          ("stage_out_s", "stage-out", "#8c564b"))  # fmt: skip
_GRAPH_CONFIG = dcc.Graph.Config(displayModeBar=False)
_BLANK = empty_figure("no job asked yet")

FieldType = Literal["text", "number"]
FIELDS: tuple[tuple[str, str, FieldType], ...] = (
    ("cores", "cores", "number"),
    ("nodes", "nodes", "number"),
    ("gpus", "GPUs", "number"),
    ("walltime", "walltime (s, or 2h, 30m)", "text"),
    ("memory", "memory per node (GB)", "number"),
    ("input", "input (GB)", "number"),
    ("output", "output (GB)", "number"),
    ("image", "container image", "text"),
    ("containers", "containers per node", "number"),
    ("w_turnaround", "weight of turnaround", "number"),
    ("w_cost", "weight of cost", "number"),
    ("w_energy", "weight of energy", "number"),
    ("w_co2", "weight of CO2", "number"),
)
"""Free-typed form fields: (query key, label, input type)."""
PLACEHOLDERS = {"walltime": "e.g. 2h", "w_turnaround": "1", "w_cost": "0", "w_energy": "0", "w_co2": "0"}
"""What a blank field means."""
CHOICES: tuple[tuple[str, str], ...] = (
    ("input_site", "input lives at"),
    ("output_site", "output goes to"),
    ("runtime", "container runtime"),
    ("affinity", "affinity"),
    ("objective", "objective"),
    ("risk", "rank by"),
)
"""Dropdown form fields: (query key, label)."""
KEYS = tuple(k for k, _, _ in FIELDS) + tuple(k for k, _ in CHOICES)


def _field_id(key: str) -> str:
    return f"{ids.ADVICE_FIELD}-{key}"


@dataclass(frozen=True)
class JobForm:
    """What the URL asks: the job (None until it names one) or why it cannot be read."""

    request: JobRequest | None
    error: str | None
    values: dict[str, str]


def _number(q: dict[str, str], key: str, label: str, *, lo: float, hi: float, integer: bool) -> float | None:
    raw = q.get(key, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{label} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi or (integer and value != int(value)):
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{label} must be {kind} from {lo:g} to {hi:g}, not {raw!r}")
    return value


def _walltime(raw: str) -> float | None:
    """Seconds, or "2h", "30m" as the API takes them (telemetry.schema.parse_duration)."""
    if not raw.strip():
        return None
    try:
        seconds = parse_duration(raw.strip())
    except ValueError as exc:
        raise ValueError(f"walltime: {exc}") from None
    if seconds > MAX_WALLTIME_S:
        raise ValueError(f"walltime must be at most 366 days, not {raw!r}")
    return seconds


def parse_job(search: str | None) -> JobForm:
    """The job the query string names (lenient about blanks, strict about nonsense)."""
    q = query(search)
    values = {k: q[k] for k in KEYS if k in q}
    if "cores" not in q and "walltime" not in q:
        return JobForm(None, None, values)
    try:
        cores = _number(q, "cores", "cores", lo=1, hi=10_000_000, integer=True)
        walltime = _walltime(q.get("walltime", ""))
        if cores is None or walltime is None:
            raise ValueError("a job needs cores and a walltime (seconds)")
        nodes = _number(q, "nodes", "nodes", lo=1, hi=1_000_000, integer=True)
        gpus = _number(q, "gpus", "GPUs", lo=0, hi=100_000, integer=True)
        memory = _number(q, "memory", "memory", lo=0, hi=1e6, integer=False)
        size_in = _number(q, "input", "input size", lo=0, hi=1e9, integer=False)
        size_out = _number(q, "output", "output size", lo=0, hi=1e9, integer=False)
        containers = _number(q, "containers", "containers per node", lo=1, hi=1024, integer=True)
        affinity = q.get("affinity") or None
        if affinity is not None and affinity not in AFFINITIES:
            raise ValueError(f"affinity must be one of {', '.join(AFFINITIES)}, not {affinity!r}")
        objective = q.get("objective") or "turnaround"
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
        weights = Weights(
            *(
                default if (w := _number(q, f"w_{name}", f"weight of {name}", lo=0, hi=1000, integer=False)) is None
                else w
                for name, default in (("turnaround", 1.0), ("cost", 0.0), ("energy", 0.0), ("co2", 0.0))
            )
        )  # fmt: skip
        if objective == "weighted" and not any(astuple(weights)):
            raise ValueError("objective weighted needs a weight above 0 on at least one measure")
        risk = q.get("risk") or "p50"
        if risk not in RISKS:
            raise ValueError(f"risk must be p50 (the median outcome) or p90 (risk-averse), not {risk!r}")
        container = ContainerSpec(
            runtime=q.get("runtime") or None,
            image=(q.get("image") or "").strip()[:512] or None,
            containers_per_node=None if containers is None else int(containers),
            affinity=affinity,
        )
    except ValueError as exc:
        return JobForm(None, str(exc), values)
    request = JobRequest(
        cores=int(cores),
        walltime_s=max(1, math.ceil(walltime)),
        nodes=None if nodes is None else int(nodes),
        gpus=0 if gpus is None else int(gpus),
        memory_bytes=None if memory is None else int(memory * GB),
        input=DataSpec((size_in or 0.0) * GB, q.get("input_site") or None),
        output=DataSpec((size_out or 0.0) * GB, q.get("output_site") or None),
        container=container,
        objective=objective,
        risk=risk,  # type: ignore[arg-type]
        weights=weights,
    )
    return JobForm(request, None, values)


def advice_query(values: dict[str, Any]) -> str:
    """The page's link for these form values (blanks left out, so the link stays short)."""
    kept = {k: str(values[k]).strip() for k in KEYS if values.get(k) not in (None, "")}
    return "?" + urlencode({"view": VIEW, **{k: v for k, v in kept.items() if v}})


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
            dcc.Graph(id=ids.ADVICE_GRAPH, figure=_BLANK, config=_GRAPH_CONFIG, style=_height(_BLANK)),
            html.Div(id=ids.ADVICE_TABLE),
            html.H3("Recent advice"),
            html.P(
                "The last answers of every hook (this page, the REST API, the scheduler hooks), with the"
                " realised turnaround once the caller reported where the job ran and it ended.",
                className="muted",
            ),
            html.Div(id=ids.ADVICE_LOG),
        ],
        id=ids.ADVICE_VIEW,
        className="panel",
        style=HIDDEN,
    )


def _height(figure: go.Figure) -> dict[str, str]:
    return {"height": f"{figure.layout.height}px"}


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
    return f"{b.p50:,.{digits}f}{unit} ({b.p10:,.{digits}f}–{b.p90:,.{digits}f})"


def _span(b: Any) -> str:
    """A duration band as a person plans with it: `2 h 10 min (1 h 50 min–3 h)`."""
    if b is None:
        return fmt.UNKNOWN
    return f"{fmt.duration(b.p50)} ({fmt.duration(b.p10)}–{fmt.duration(b.p90)})"


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
        advice = advisor.advise(form.request, "dash")
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
                f" · asked {fmt.utc(advice.created_s)} · {advice.advice_id}",
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
        return html.P("No advice handed out yet: ask for a job above, or through the API or a scheduler hook.",
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


def form_state(reader: TwinReader, search: str | None) -> tuple[list[Any], list[Any]]:
    """The form as the URL says (values), and the dropdowns' choices (options)."""
    values = query(search)
    sites = [{"label": s.name, "value": s.name} for s in reader.sites()]
    options = {
        "input_site": sites,
        "output_site": sites,
        "runtime": [{"label": r, "value": r} for r in RUNTIMES],
        "affinity": [{"label": a, "value": a} for a in AFFINITIES],
        "objective": [{"label": o, "value": o} for o in OBJECTIVES],
        "risk": [{"label": "the median (p50)", "value": "p50"}, {"label": "the p90 (risk-averse)", "value": "p90"}],
    }
    defaults = {"objective": "turnaround", "risk": "p50"}
    shown = [values.get(k, defaults.get(k)) for k in KEYS]
    return shown, [options[k] for k, _ in CHOICES]


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
        Output(ids.ADVICE_TABLE, "children"),
        Output(ids.ADVICE_LOG, "children"),
        Input(ids.URL, "search"),
    )
    async def _advise(search: str | None) -> tuple[Any, ...]:
        if not PAGE.shown(search):
            return (dash.no_update,) * 6

        def work() -> tuple[Any, ...]:
            links, summary, fig, table = render_advice(sources.advisor, search, sources.reader)
            return links, summary, fig, _height(fig), table, render_log(sources.advisor)

        return await asyncio.to_thread(work)


PAGE = Page(view=VIEW, label="Advice", section_id=ids.ADVICE_VIEW, layout=layout, register=register)
