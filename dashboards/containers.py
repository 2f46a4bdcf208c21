"""The container-configuration view (`?view=containers`): predicted vs measured effect per factor
on held-out container counts, and the what-if for one application.

A view of its own, not a panel of the overview: its first render fits and scores the model (about
two seconds on this machine, once per process), which the overview's first render must not wait
for. The chosen configuration lives in the query string like the rest of the page's state
(`?view=containers&containers=4&affinity=cpu&batch=8`), so a link shows what its sender saw.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlencode

import dash
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, dcc, html
from dash.development.base_component import Component

from dashboards import ids
from dashboards.figures import empty_figure, sized
from dashboards.pages import HIDDEN, Page, Sources
from dashboards.parts import _attr
from twin.advice.containers import AFFINITIES, ContainerEffects
from twin.advice.request import ContainerSpec

__all__ = ["PAGE", "VIEW", "is_shown", "layout", "register", "render_factors", "render_whatif", "whatif_query"]

VIEW = "containers"
NODE_CORES = 32
"""The published runs' node: the what-if is for that node (the model has seen no other)."""
COUNTS = (1, 2, 4, 8, 16, 32)
BATCHES = (1, 2, 4, 8, 16, 32)
_GRAPH_CONFIG = dcc.Graph.Config(displayModeBar=False)
_BLANK = empty_figure("loading…")


def is_shown(search: str | None) -> bool:
    return _query(search).get("view") == VIEW


def _query(search: str | None) -> dict[str, str]:
    parsed = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    return {k: v[-1] for k, v in parsed.items() if v}


def whatif_query(containers: int, affinity: str, batch: int) -> str:
    return "?" + urlencode({"view": VIEW, "containers": containers, "affinity": affinity, "batch": batch})


def _chosen(search: str | None) -> tuple[int, str, int]:
    """The configuration in the URL; a hand-edited value falls back to the default."""
    q = _query(search)
    containers = int(q["containers"]) if q.get("containers", "").isdigit() else 1
    affinity = q.get("affinity", "none")
    batch = int(q["batch"]) if q.get("batch", "").isdigit() else 8
    return (
        containers if containers in COUNTS else 1,
        affinity if affinity in AFFINITIES else "none",
        batch if batch in BATCHES else 8,
    )


def layout() -> Component:
    return html.Section(
        [
            html.H2("Container configurations"),
            html.P(
                "How containerising a job changes its throughput, learned from published MLPerf-inference runs"
                " (ResNet50 on TF-Serving, 32-CPU nodes, Liu & Guitart): effects relative to one container with no"
                " affinity policy.",
                className="muted",
            ),
            html.H3("What if this application ran otherwise?"),
            html.Nav(id=ids.CONTAINERS_FORM, className="choices"),
            html.Div(id=ids.CONTAINERS_WHATIF_NOTE, className="muted"),
            dcc.Graph(id=ids.CONTAINERS_WHATIF, figure=_BLANK, config=_GRAPH_CONFIG, style=sized(_BLANK)),
            html.H3("Predicted vs measured, on container counts the model did not see"),
            html.Div(id=ids.CONTAINERS_FACTORS_NOTE, className="muted"),
            dcc.Graph(id=ids.CONTAINERS_FACTORS, figure=_BLANK, config=_GRAPH_CONFIG, style=sized(_BLANK)),
        ],
        id=ids.CONTAINERS_VIEW,
        className="panel",
        style=HIDDEN,
    )


def _form(containers: int, affinity: str, batch: int) -> list[Component]:
    def links(label: str, values: tuple[Any, ...], current: Any, make: Any) -> html.Span:
        choices: list[Component] = [html.Strong(label + " ")]
        for v in values:
            # the key sits on an inner span: dcc.Link takes no data-* attributes
            inner = html.Span(str(v), **_attr(ids.CONTAINERS_ATTR, f"{label}={v}"))
            choices.append(dcc.Link(inner, href=make(v), className="range selected" if v == current else "range"))
        return html.Span(choices, className="choice")

    return [
        links("containers per node now", COUNTS, containers, lambda v: whatif_query(v, affinity, batch)),
        links("affinity", AFFINITIES, affinity, lambda v: whatif_query(containers, v, batch)),
        links("client batch", BATCHES, batch, lambda v: whatif_query(containers, affinity, v)),
    ]


def render_whatif(effects: ContainerEffects | None, search: str | None) -> tuple[list[Component], str, go.Figure]:
    containers, affinity, batch = _chosen(search)
    form = _form(containers, affinity, batch)
    if effects is None:
        return form, "No container-effect model in this service.", empty_figure("no container-effect model")
    current = ContainerSpec(containers_per_node=containers, affinity=affinity)  # type: ignore[arg-type]
    rows, used = effects.whatif(current, cores_per_node=NODE_CORES, client_batch=batch, server_batch=32)
    labels = [a.config.describe() + (" (now)" if a.current else "") for a in rows]
    fig = go.Figure(
        go.Bar(
            x=[a.p50 for a in rows],
            y=labels,
            orientation="h",
            marker={"color": ["#d62728" if a.current else "#1f77b4" for a in rows]},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [a.p90 - a.p50 for a in rows],
                "arrayminus": [a.p50 - a.p10 for a in rows],
            },
            hovertemplate="%{y}: ×%{x:.2f}<extra></extra>",
        )
    )
    fig.add_vline(x=1.0, line_dash="dot")
    fig.update_layout(
        template="plotly_white",
        height=max(320, 22 * len(rows) + 80),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"title": "predicted throughput ÷ now (bars: p10–p90)"},
    )
    best = rows[0]
    note = (
        f"Best: {best.config.describe()}, ×{best.p50:.2f} ({best.p10:.2f}–{best.p90:.2f}) of now; "
        f"a {NODE_CORES}-CPU node, server batch 32. Model: {used.source}."
    )
    return form, note, fig


def render_factors(effects: ContainerEffects | None) -> tuple[str, go.Figure]:
    if effects is None:
        return "No container-effect model in this service.", empty_figure("no container-effect model")
    frame = effects.held_out_factors()
    fig = go.Figure()
    for held, part in frame.group_by("held_out", maintain_order=True):
        part = part.with_columns(label=pl.col("factor") + "=" + pl.col("level"))
        fig.add_trace(
            go.Scatter(
                x=part["measured"].to_numpy(),
                y=part["predicted"].to_numpy(),
                mode="markers",
                name=f"{held[0]} containers held out",
                text=part["label"].to_list(),
                hovertemplate="%{text}: measured ×%{x:.2f}, predicted ×%{y:.2f}<extra></extra>",
            )
        )
    values = pl.concat([frame["measured"], frame["predicted"]]).to_numpy()
    lo, hi = float(values.min()), float(values.max())
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="exact", line={"dash": "dot"}))
    fig.update_layout(
        template="plotly_white",
        height=420,
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        xaxis={"title": "measured effect (median of held-out runs at that factor level)"},
        yaxis={"title": "predicted effect", "automargin": True},
    )
    note = (
        "Each point: one factor level (affinity policy, hosts, client batch) of the runs with one container count"
        " left out of training."
    )
    return note, fig


def register(app: dash.Dash, effects: ContainerEffects | None) -> None:
    @app.callback(
        Output(ids.CONTAINERS_FORM, "children"),
        Output(ids.CONTAINERS_WHATIF_NOTE, "children"),
        Output(ids.CONTAINERS_WHATIF, "figure"),
        Output(ids.CONTAINERS_WHATIF, "style"),
        Input(ids.URL, "search"),
    )
    async def _whatif(search: str | None) -> Any:
        if not is_shown(search):
            return (dash.no_update,) * 4
        form, note, fig = await asyncio.to_thread(render_whatif, effects, search)
        return form, note, fig, sized(fig)

    @app.callback(
        Output(ids.CONTAINERS_FACTORS_NOTE, "children"),
        Output(ids.CONTAINERS_FACTORS, "figure"),
        Output(ids.CONTAINERS_FACTORS, "style"),
        Input(ids.URL, "search"),
    )
    async def _factors(search: str | None) -> Any:
        if not is_shown(search):
            return (dash.no_update,) * 3
        note, fig = await asyncio.to_thread(render_factors, effects)
        return note, fig, sized(fig)


def _register_page(app: dash.Dash, sources: Sources) -> None:
    register(app, sources.containers)


PAGE = Page(view=VIEW, label="Containers", section_id=ids.CONTAINERS_VIEW, layout=layout, register=_register_page)
