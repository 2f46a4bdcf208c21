"""The models page (`?view=models&kind=runtime&range=24h`): each current artefact's card, how
accurate the predictions have been over time (runtime, wait, queue forecasts, advice) with a drift
alarm per kind, and predicted vs realised for the chosen kind.

Where the pairs come from: the advice log's joined outcomes (`AdviceLog.outcomes`: each reported
job's predicted p50 run, wait and turnaround at the site it ran, and what it really took) and the
queue-forecast tracker's scored errors (`QueueForecast.recent_errors_s`, as on the overview). The
cards come from the model registry (`Sources.models`). Nothing is fitted or scanned here: the
outcomes are read back for the chosen range only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

import dash
import numpy as np
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, dcc, html
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.clocks import label_time_axis
from dashboards.figures import empty_figure, error_cdf_figure, sized
from dashboards.models_accuracy import (
    MIN_RECENT,
    RECENT_SHARE,
    RULE,
    Drift,
    abs_errors,
    binned_error,
    card_baseline,
    drift,
    split_recent,
)
from dashboards.pages import HIDDEN, Page, Sources, query
from dashboards.parts import _attr
from twin.advice.log import OUTCOME_SCHEMA
from twin.view import TwinReader

__all__ = ["KINDS", "PAGE", "RANGES", "VIEW", "Chosen", "chosen", "models_query", "render"]

VIEW = "models"
KINDS = ("runtime", "wait", "forecast", "advice")
CARDED = ("runtime", "wait", "container_effect")
"""The kinds of artefact (each with a card) the registry serves."""
NOTES = {
    "wait": "The twin does not serve this model yet: the wait line below scores the queue simulation's waits.",
    "container_effect": "Used by the containers page and the advice's container choice.",
}
LABELS = {
    "runtime": "runtime model",
    "wait": "wait model",
    "forecast": "queue forecasts",
    "advice": "advice (turnaround)",
    "container_effect": "container-effect model",
}
RANGES: dict[str, tuple[int, int]] = {"6h": (6 * 3600, 900), "24h": (86400, 3600), "7d": (7 * 86400, 6 * 3600)}
"""Range key → (window, bin width), seconds."""
_COLORS = {"runtime": "#1f77b4", "wait": "#ff7f0e", "advice": "#2ca02c"}
_GRAPH_CONFIG = dcc.Graph.Config(displayModeBar=False)
_BLANK = empty_figure("loading…")
TRAIN_HINT = "run `ctwin train --log …`, or without --log to train on the store's job history"

CONTAINER_HINT = "run `ctwin containers train`; until then the containers page uses its built-in effects"

Chosen = tuple[str, str]


def models_query(kind: str, range_: str) -> str:
    return "?" + urlencode({"view": VIEW, "kind": kind, "range": range_})


def chosen(search: str | None) -> Chosen:
    """(kind, range) from the URL; a hand-edited value falls back to runtime / 24h."""
    q = query(search)
    kind, range_ = q.get("kind", "runtime"), q.get("range", "24h")
    return (kind if kind in KINDS else "runtime", range_ if range_ in RANGES else "24h")


def layout() -> Component:
    return html.Section(
        [
            html.H2("Models"),
            html.P(
                "The learned models serving the twin, and how their predictions turned out: the advice log's"
                " reported jobs (predicted p50 at the site they ran vs what they took) and the queue forecasts"
                " scored against the starts that followed.",
                className="muted",
            ),
            html.Nav(id=ids.MODELS_FORM, className="choices"),
            html.H3("Current artefacts"),
            html.Div(id=ids.MODELS_CARDS, className="model-cards"),
            html.H3("Drift"),
            html.Div(id=ids.MODELS_ALARMS),
            html.H3("Accuracy over time"),
            html.Div(id=ids.MODELS_ACCURACY_NOTE, className="muted"),
            dcc.Graph(id=ids.MODELS_ACCURACY, figure=_BLANK, config=_GRAPH_CONFIG, style=sized(_BLANK)),
            html.H3("Predicted vs realised"),
            html.Div(id=ids.MODELS_SCATTER_NOTE, className="muted"),
            dcc.Graph(id=ids.MODELS_SCATTER, figure=_BLANK, config=_GRAPH_CONFIG, style=sized(_BLANK)),
        ],
        id=ids.MODELS_VIEW,
        className="panel",
        style=HIDDEN,
    )


def _form(kind: str, range_: str) -> list[Component]:
    def links(label: str, key: str, values: tuple[str, ...], current: str, make: Any) -> html.Span:
        items: list[Component] = [html.Strong(label + " ")]
        for v in values:
            inner = html.Span(LABELS.get(v, v), **_attr(ids.MODELS_ATTR, f"{key}={v}"))
            items.append(dcc.Link(inner, href=make(v), className="range selected" if v == current else "range"))
        return html.Span(items, className="choice")

    return [
        links("predicted vs realised of", "kind", KINDS, kind, lambda v: models_query(v, range_)),
        links("over the last", "range", tuple(RANGES), range_, lambda v: models_query(kind, v)),
    ]


# ---------------------------------------------------------------------------------------- cards
def _facts(loaded: Any) -> list[tuple[str, str]]:
    card = loaded.card
    window = card.training_window or {}
    ours = [r for r in (card.scores or {}).get("by_model", []) if r.get("model") == "ours"]
    facts = [
        ("artefact", card.artefact),
        ("estimator", card.estimator.rsplit(".", 1)[-1]),
        ("trained", card.created[:19].replace("T", " ") + " UTC" if card.created else "unknown"),
        ("sha256", card.artefact_sha256[:16] + "…"),
        ("data sha256", card.data_sha256[:16] + "…" if card.data_sha256 else "unknown"),
        ("trained on", f"{fmt.count(window.get('jobs'))} jobs of {', '.join(window.get('sites') or ['?'])}"),
        (
            "jobs submitted",
            f"{fmt.utc(window.get('first_submit_s'))} – {fmt.utc(window.get('last_submit_s'))} (the log's clock)",
        ),
        ("sources", ", ".join(str(s) for s in window.get("sources") or []) or "unknown"),
        ("libraries", ", ".join(f"{k} {v}" for k, v in sorted((card.versions or {}).items()) if k != "python")),
    ]
    held = (card.scores or {}).get("holdout")
    for r in ours:
        scores = [f"n {fmt.count(r.get('n'))}", f"MAE {fmt.duration(r.get('mae_s'))}"]
        scores.append(f"median |error| {fmt.duration(r.get('median_ae_s'))}")
        if r.get("mean_accuracy") is not None:
            scores.append(f"mean accuracy {fmt.percent(r['mean_accuracy'])}")
        if r.get("p90_coverage") is not None:
            scores.append(f"p90 coverage {fmt.percent(r['p90_coverage'])}")
        share = f"newest {held:.0%}" if isinstance(held, int | float) else "held-out"
        facts.append((f"{share}, {r.get('site', '')}", ", ".join(scores)))
    return facts


def _card(kind: str, loaded: Any | None, error: str | None) -> Component:
    attrs = _attr(ids.MODELS_ATTR, kind)
    head = html.Strong(LABELS[kind])
    if loaded is None:
        hint = CONTAINER_HINT if kind == "container_effect" else TRAIN_HINT
        why = f"No {LABELS[kind]} trained yet ({hint})."
        body: list[Component] = [html.P(why, className="muted")]
    else:
        body = [html.Dl([part for k, v in _facts(loaded) for part in (html.Dt(k), html.Dd(v))])]
        if kind in NOTES:
            body.append(html.P(NOTES[kind], className="muted"))
    if error:
        body.append(html.P(fmt.clip(error), className="muted"))
    return html.Div([head, *body], className="model-card", **attrs)


def cards(models: Any | None) -> tuple[list[Component], dict[str, Any | None]]:
    if models is None:
        note = html.P(f"This service has no model registry: no model trained yet ({TRAIN_HINT}).", className="muted")
        return [note], dict.fromkeys(CARDED)
    errors = getattr(models, "errors", {}) or {}
    loaded = {kind: models.current(kind) for kind in CARDED}

    def problem(kind: str) -> str | None:
        if errors.get(kind):
            return f"A newer artefact was refused: {errors[kind]}"
        return f"The registry cannot read its directory: {errors['*']}" if errors.get("*") else None

    return [_card(k, loaded[k], problem(k)) for k in CARDED], loaded


# ---------------------------------------------------------------------------------------- pairs
def _outcomes(sources: Sources, since_s: float) -> pl.DataFrame:
    log = getattr(sources.advisor, "log", None)
    return log.outcomes(since_s) if log is not None else pl.DataFrame(schema=OUTCOME_SCHEMA)


def _forecast_errors(reader: TwinReader) -> dict[str, list[float]]:
    """Each batch site's scored forecast errors, oldest first (the tracker keeps no times)."""
    errors: dict[str, list[float]] = {}
    for site in reader.sites():
        try:
            errors[site.name] = [float(e) for e in reader.queue_forecast(site.name).recent_errors_s]
        except (KeyError, LookupError):
            continue
    return errors


def _forecast_drift(by_site: dict[str, list[float]]) -> Drift:
    """Per site, its newest RECENT_SHARE of scored forecasts against its earlier ones (sites differ
    too much to pool); the worst site's verdict."""
    verdicts = []
    for site, errors in by_site.items():
        cut = len(errors) - max(1, round(len(errors) * RECENT_SHARE)) if errors else 0
        before = [abs(e) for e in errors[:cut]]
        d = drift("forecast", [abs(e) for e in errors[cut:]], float(np.median(before)) if before else None,
                  f"earlier scored forecasts at {site}")  # fmt: skip
        ratio = (d.recent_s or 0.0) / max(d.baseline_s or 0.0, 1.0) if d.baseline_s is not None else -1.0
        verdicts.append((d.alarm, d.n_recent >= MIN_RECENT, ratio, d))
    if not verdicts:
        return drift("forecast", [], None, "earlier scored forecasts")
    return max(verdicts, key=lambda v: v[:3])[3]


def _drifts(
    pairs: pl.DataFrame, forecast: dict[str, list[float]], loaded: dict[str, Any], start: float, end: float
) -> list[Drift]:
    out = []
    for kind in ("runtime", "wait", "advice"):
        part = pairs.filter(pl.col("kind") == kind)
        earlier, recent = split_recent(part, start, end)
        # only the runtime artefact makes the predictions scored here (twin.queues): its card is the baseline
        card = getattr(loaded.get(kind), "card", None) if kind == "runtime" else None
        baseline = card_baseline(card)
        if baseline is not None:
            out.append(drift(kind, abs_errors(recent), baseline, "card's held-out median error"))
        else:
            before = abs_errors(earlier)
            out.append(drift(kind, abs_errors(recent), float(np.median(before)) if before else None, "earlier window"))
    out.append(_forecast_drift(forecast))
    return out


def _badge(d: Drift) -> Component:
    state = "drift" if d.alarm else ("quiet" if "within" in d.why else "unknown")
    word = "DRIFT" if d.alarm else ("ok" if state == "quiet" else "n/a")
    recent = f"recent median |error| {fmt.duration(d.recent_s)} (n {d.n_recent})" if d.recent_s is not None else ""
    base = f"baseline {fmt.duration(d.baseline_s)}" if d.baseline_s is not None else ""
    detail = "; ".join(p for p in (recent, base, d.why) if p)
    return html.Span(
        [html.Span(word, className=f"badge badge-{state}"), html.Strong(LABELS[d.kind]), html.Span(detail)],
        className="drift",
        **_attr(ids.MODELS_ATTR, d.kind),
    )


# ---------------------------------------------------------------------------------------- figures
def accuracy_figure(pairs: pl.DataFrame, bin_s: int, start_s: float, end_s: float) -> go.Figure:
    binned = binned_error(pairs, bin_s)
    if binned.height == 0:
        return empty_figure("no finished job joined yet: report where advised jobs ran (POST /v1/advice/{id}/report)")
    fig = go.Figure()
    for kind in ("runtime", "wait", "advice"):
        part = binned.filter(pl.col("kind") == kind)
        if part.height == 0:
            continue
        fig.add_trace(
            go.Scatter(
                x=(part["ts_s"].to_numpy() * 1000).astype("datetime64[ms]"),
                y=part["rel_error"].to_numpy(),
                customdata=part["n"].to_numpy(),
                mode="lines+markers",
                name=LABELS[kind],
                line={"color": _COLORS[kind]},
                hovertemplate="%{y:.0%} (n %{customdata})<extra>" + kind + "</extra>",
            )
        )
    fig.update_layout(
        template="plotly_white",
        height=300,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        yaxis={"title": "median |error| ÷ realised", "tickformat": ".0%", "rangemode": "tozero"},
        xaxis={"range": [np.datetime64(int(start_s * 1000), "ms"), np.datetime64(int(end_s * 1000), "ms")]},
        legend={"orientation": "h", "y": 1.1},
    )
    label_time_axis(fig, "UTC (when each job's outcome was joined)")
    return fig


def scatter_figure(pairs: pl.DataFrame, kind: str) -> go.Figure:
    part = pairs.filter(pl.col("kind") == kind)
    if part.height == 0:
        return empty_figure(f"no finished job joined yet for the {LABELS[kind]}")
    x = np.maximum(part["realised_s"].to_numpy(), 1.0)
    y = np.maximum(part["predicted_s"].to_numpy(), 1.0)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    span = [np.log10(lo) - 0.2, np.log10(hi) + 0.2]  # the same decades on both axes: y = x is the diagonal
    fig = go.Figure(
        [
            go.Scatter(
                x=x,
                y=y,
                mode="markers",
                name=LABELS[kind],
                text=part["site"].to_list(),
                marker={"color": _COLORS[kind], "opacity": 0.7},
                hovertemplate="%{text}: realised %{x:.0f} s, predicted %{y:.0f} s<extra></extra>",
            ),
            go.Scatter(
                x=[lo, hi], y=[lo, hi], mode="lines", name="y = x (exact)", line={"dash": "dot", "color": "#666"}
            ),
        ]
    )
    fig.update_layout(
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 10, "t": 10, "b": 50},
        xaxis={"type": "log", "title": "realised (s, log)", "range": span},
        yaxis={"type": "log", "title": "predicted p50 (s, log)", "range": span},
        legend={"orientation": "h", "y": 1.08},
    )
    return fig


# ---------------------------------------------------------------------------------------- render
def render(sources: Sources, search: str | None, now_s: float | None = None) -> dict[str, Any]:
    """Everything the page shows for `search`, as the callback's outputs by name."""
    kind, range_ = chosen(search)
    window_s, bin_s = RANGES[range_]
    end = time.time() if now_s is None else now_s
    start = end - window_s
    card_nodes, loaded = cards(sources.models)
    pairs = _outcomes(sources, start).filter(pl.col("ts_s") < end)
    by_site = _forecast_errors(sources.reader)
    forecast = [e for errors in by_site.values() for e in errors]
    drifts = _drifts(pairs, by_site, loaded, start, end)
    alarms = [html.Div([_badge(d) for d in drifts], className="drifts"), html.P(RULE, className="muted")]
    joined = pairs.filter(pl.col("kind") == "runtime").height
    if sources.advisor is None:
        acc_note = "No advisor in this service: no advice outcomes to score."
    else:
        acc_note = (
            f"{joined} reported jobs joined in the last {range_}; bins of {fmt.duration(bin_s)}."
            " Relative error divides by the realised time (at least 1 min)."
        )
    if kind == "forecast":
        scatter = error_cdf_figure(forecast)
        note = (
            f"{len(forecast)} forecasts scored against the start that followed (all batch sites). The forecast"
            " tracker keeps errors, not predicted/realised pairs, and no times: their distribution instead."
        )
    else:
        scatter = scatter_figure(pairs, kind)
        n = pairs.filter(pl.col("kind") == kind).height
        note = f"{n} {LABELS[kind]} predictions joined; points under 1 s sit at 1 s."
    return {
        "form": _form(kind, range_),
        "cards": card_nodes,
        "alarms": alarms,
        "accuracy_note": acc_note,
        "accuracy": accuracy_figure(pairs, bin_s, start, end),
        "scatter_note": note,
        "scatter": scatter,
        "drifts": drifts,
    }


def register(app: dash.Dash, sources: Sources) -> None:
    @app.callback(
        Output(ids.MODELS_FORM, "children"),
        Output(ids.MODELS_CARDS, "children"),
        Output(ids.MODELS_ALARMS, "children"),
        Output(ids.MODELS_ACCURACY_NOTE, "children"),
        Output(ids.MODELS_ACCURACY, "figure"),
        Output(ids.MODELS_ACCURACY, "style"),
        Output(ids.MODELS_SCATTER_NOTE, "children"),
        Output(ids.MODELS_SCATTER, "figure"),
        Output(ids.MODELS_SCATTER, "style"),
        Input(ids.URL, "search"),
    )
    async def _render(search: str | None) -> Any:
        if not PAGE.shown(search):
            return (dash.no_update,) * 9
        try:
            out = await asyncio.to_thread(render, sources, search)
        except Exception as exc:  # a broken source says so on the page, never a traceback
            msg = f"The models page could not be drawn: {fmt.clip(str(exc))}"
            fig = empty_figure("unavailable")
            return [], [html.P(msg, className="muted")], [], msg, fig, sized(fig), "", fig, sized(fig)
        acc, sc = out["accuracy"], out["scatter"]
        return (out["form"], out["cards"], out["alarms"], out["accuracy_note"], acc, sized(acc),
                out["scatter_note"], sc, sized(sc))  # fmt: skip


PAGE = Page(view=VIEW, label="Models", section_id=ids.MODELS_VIEW, layout=layout, register=register)
