"""Pure figure builders: view values and polars frames in, plotly figures out.

No Dash, no I/O, no state: the overview's render functions call these, and tests call them with
hand-made values. Every builder accepts empty input and then says "no data yet" on the figure
instead of raising, because a site that has not reported yet is a normal sight on this page.
Every trace carries at most `MAX_POINTS` points, whatever the reader handed over, and every trace
is one of `TRACE_TYPES`: the page loads a plotly.js bundle with only those (dashboards/assets,
see its PROVENANCE.md), a quarter of the full one's size and start-up cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import plotly.graph_objects as go
import polars as pl
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboards import fmt
from twin.view import LinkView, SiteView, State

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MANY_HOSTS",
    "MAX_POINTS",
    "STATE_COLOURS",
    "TRACE_TYPES",
    "continuum_figure",
    "downsample",
    "empty_figure",
    "node_history_figure",
    "site_history_figure",
]

MAX_POINTS = 2000
"""Points per trace sent to the browser: the budget that keeps a first render fast."""
TRACE_TYPES = frozenset({"scatter", "bar", "pie"})
"""The trace types of the plotly.js "basic" bundle the page ships; a figure using any other type
would draw nothing. No `scattergl`: at `MAX_POINTS` an SVG line draws in milliseconds, needs no
GPU (headless browsers and thin clients fall back to slow software WebGL), and does not use up
the browser's small budget of WebGL contexts."""
MARKERS_UNTIL = 30
"""Traces this short also show their points."""
MANY_HOSTS = 8
"""Above this many hosts the node figure shows the mean and the min–max band, not a line per host:
a thousand lines are unreadable and slow, the band still shows spread and outliers' reach."""

STATE_COLOURS: Mapping[State, str] = {
    "ok": "#2e9e5b",
    "starting": "#7a8699",
    "stale": "#d99a00",
    "down": "#d64545",
}
_STATE_ORDER: tuple[State, ...] = ("ok", "starting", "stale", "down")
_KIND_ORDER = {"hpc": 0, "htc": 1, "cloud": 2, "edge": 3}
_MUTED = "#6b7280"
_PALETTE: Sequence[str] = qualitative.Plotly

Agg = Literal["mean", "min", "max", "first"]


def downsample(
    frame: pl.DataFrame, max_points: int = MAX_POINTS, *, by: str = "ts_s", how: Mapping[str, Agg] | None = None
) -> pl.DataFrame:
    """At most `max_points` rows, in equal-count buckets along `by`: each bucket keeps its first `by`
    and the mean of other numeric columns (or what `how` asks, e.g. "max" for an upper band).

    The reader already downsamples on the server; this keeps the budget even when one does not,
    without asserting on (and so failing for) its input.
    """
    limit = max(1, max_points)
    if frame.height <= limit:
        return frame
    chosen = how or {}

    def reduce(name: str, dtype: pl.DataType) -> pl.Expr:
        kind = chosen.get(name, "mean" if dtype.is_numeric() else "first")
        col = pl.col(name)
        return {"mean": col.mean(), "min": col.min(), "max": col.max(), "first": col.first()}[kind]

    bucket = (pl.int_range(pl.len(), dtype=pl.Int64) * limit // pl.len()).alias("_bucket")
    return (
        frame.sort(by)
        .with_columns(bucket)
        .group_by("_bucket", maintain_order=True)
        .agg(pl.col(by).first(), *(reduce(n, d) for n, d in frame.schema.items() if n != by))
        .drop("_bucket")
    )


def empty_figure(message: str = "no data yet", *, height: int = 260) -> go.Figure:
    """A blank plot that says why it is blank, rather than an empty grid that looks broken."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 15, "color": _MUTED},
    )
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 20, "r": 20, "t": 20, "b": 20},
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return fig


# --- the continuum graph -------------------------------------------------------------------------


def _circle(names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Positions on a unit circle, first name at the top; one site sits in the middle."""
    if len(names) == 1:
        return {names[0]: (0.0, 0.0)}
    step = 2 * math.pi / max(1, len(names))
    return {n: (math.cos(math.pi / 2 - i * step), math.sin(math.pi / 2 - i * step)) for i, n in enumerate(names)}


def _site_size(site: SiteView) -> float:
    load = site.load if site.load is not None and math.isfinite(site.load) else 0.0
    return 22 + 34 * min(1.0, max(0.0, load))


def _site_hover(site: SiteView) -> str:
    lines = [
        f"<b>{site.name}</b> ({site.kind}) · {site.state}",
        f"load {fmt.percent(site.load)} · {site.hosts} hosts",
        f"data {fmt.age(site.data_age_s)}",
    ]
    if site.jobs_running is not None or site.jobs_pending is not None:
        lines.insert(2, f"jobs {fmt.count(site.jobs_running)} running · {fmt.count(site.jobs_pending)} pending")
    return "<br>".join(lines)


def _link_width(bps: float | None) -> float:
    """Wider for more capacity, on a log scale (1 Gb/s → 4 px, 100 Gb/s → 6 px)."""
    if bps is None or not math.isfinite(bps) or bps <= 0:
        return 1.5
    return min(8.0, max(1.0, 1 + math.log10(bps / 1e6)))


def _link_label(link: LinkView) -> str:
    rates = [r for r in (link.rx_bps, link.tx_bps) if r is not None and math.isfinite(r)]
    label = fmt.bits_per_s(link.bandwidth_bps)
    return f"{label} · now {fmt.bits_per_s(max(rates))}" if rates else label


def _link_hover(link: LinkView) -> str:
    return "<br>".join(
        [
            f"<b>{link.a} ↔ {link.b}</b> · {link.state}",
            f"configured {fmt.bits_per_s(link.bandwidth_bps)}, latency {fmt.seconds_short(link.latency_s)}",
            f"measured rx {fmt.bits_per_s(link.rx_bps)} · tx {fmt.bits_per_s(link.tx_bps)}",
            f"data {fmt.age(link.data_age_s)}",
        ]
    )


def continuum_figure(sites: Sequence[SiteView], links: Sequence[LinkView], *, selected: str | None = None) -> go.Figure:
    """Every site as a node (colour = state, size = load) and every link as an edge labelled with its
    configured bandwidth and, when measured, its current rate.

    Sites sit on a circle in a stable order (kind, then name), so a refresh never moves them; each
    node's `customdata` is its site name, which is what a click hands back for the drill-down.
    """
    if not sites:
        return empty_figure("no data yet: no sites configured", height=420)
    ordered = sorted(sites, key=lambda s: (_KIND_ORDER.get(s.kind, 9), s.name))
    known = {s.name for s in ordered}
    outside = sorted({end for link in links for end in (link.a, link.b)} - known)
    pos = _circle([s.name for s in ordered] + outside)
    fig = go.Figure()

    for link in links:
        (x0, y0), (x1, y1) = pos[link.a], pos[link.b]
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                line={
                    "color": STATE_COLOURS.get(link.state, _MUTED),
                    "width": _link_width(link.bandwidth_bps),
                    "dash": "solid" if link.state == "ok" else "dot",
                },
                hoverinfo="skip",
                showlegend=False,
            )
        )
    if links:
        mids = [((pos[lk.a][0] + pos[lk.b][0]) / 2, (pos[lk.a][1] + pos[lk.b][1]) / 2) for lk in links]
        fig.add_trace(
            go.Scatter(
                x=[m[0] for m in mids],
                y=[m[1] for m in mids],
                mode="markers+text",
                text=[_link_label(lk) for lk in links],
                textposition="top center",
                textfont={"size": 11, "color": _MUTED},
                hovertext=[_link_hover(lk) for lk in links],
                hoverinfo="text",
                marker={"size": 7, "color": "white", "line": {"color": _MUTED, "width": 1}},
                name="links",
                showlegend=False,
            )
        )
    if outside:
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in outside],
                y=[pos[n][1] for n in outside],
                mode="markers+text",
                text=outside,
                textposition="bottom center",
                hovertext=[f"{n}: a link endpoint, not a configured site" for n in outside],
                hoverinfo="text",
                marker={"size": 12, "color": "#d1d5db"},
                name="other endpoints",
                showlegend=False,
            )
        )
    for state in _STATE_ORDER:
        group = [s for s in ordered if s.state == state]
        if not group:
            continue
        fig.add_trace(
            go.Scatter(
                x=[pos[s.name][0] for s in group],
                y=[pos[s.name][1] for s in group],
                mode="markers+text",
                name=state,
                text=[f"<b>{s.name}</b><br>load {fmt.percent(s.load)}" for s in group],
                textposition="bottom center",
                customdata=[s.name for s in group],
                hovertext=[_site_hover(s) for s in group],
                hoverinfo="text",
                marker={
                    "color": STATE_COLOURS[state],
                    "opacity": 1,
                    "size": [_site_size(s) for s in group],
                    "line": {
                        "color": ["#111827" if s.name == selected else "white" for s in group],
                        "width": [4 if s.name == selected else 1.5 for s in group],
                    },
                },
            )
        )
    fig.update_layout(
        template="plotly_white",
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        showlegend=True,
        legend={"orientation": "h", "x": 0, "y": 1.06, "title": {"text": "state "}},
        xaxis={"visible": False, "range": [-1.5, 1.5], "fixedrange": True},
        yaxis={"visible": False, "range": [-1.45, 1.3], "fixedrange": True},
        clickmode="event",
        uirevision="continuum",
    )
    return fig


# --- time series ---------------------------------------------------------------------------------


def _epoch_ms(ts_s: pl.Series) -> np.ndarray[Any, Any]:
    """Unix seconds to epoch milliseconds: plotly date axes take these numbers as-is, which is far
    smaller on the wire than ISO strings (numpy arrays travel as base64 typed arrays)."""
    return (ts_s.cast(pl.Float64) * 1000.0).to_numpy()


def _values(series: pl.Series) -> np.ndarray[Any, Any]:
    """Floats with NaN for nulls, which plotly draws as gaps."""
    return series.cast(pl.Float64).to_numpy()


def _line(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], **kwargs: Any) -> go.Scatter:
    """An SVG line, capped upstream at MAX_POINTS (see TRACE_TYPES for why never WebGL). A short
    trace also gets markers: right after start-up a host has a point or two, which a bare line hides."""
    kwargs.setdefault("mode", "lines" if len(x) > MARKERS_UNTIL else "lines+markers")
    return go.Scatter(x=x, y=y, **kwargs)


def _time_layout(fig: go.Figure, *, height: int, revision: str) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 50, "r": 10, "t": 40, "b": 30},
        hovermode="closest",
        legend={"orientation": "h", "x": 0, "y": -0.12},
        uirevision=revision,
    )
    fig.update_xaxes(type="date")
    return fig


def node_history_figure(
    frame: pl.DataFrame, *, max_points: int = MAX_POINTS, many_hosts: int = MANY_HOSTS, revision: str = "nodes"
) -> go.Figure:
    """A site's hosts over time: CPU busy share on top, memory used share below.

    `frame` is what `TwinReader.node_history` returns (host, ts_s, cpu_util, mem_used_frac). Up to
    `many_hosts` hosts get a line each; more get mean plus min–max band per metric.
    """
    metrics = [(c, t) for c, t in (("cpu_util", "CPU busy"), ("mem_used_frac", "Memory used")) if c in frame.columns]
    if frame.is_empty() or "host" not in frame.columns or "ts_s" not in frame.columns or not metrics:
        return empty_figure("no data yet: no host metrics in this window")
    fig = make_subplots(
        rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.1, subplot_titles=[t for _, t in metrics]
    )
    hosts = frame.get_column("host").unique().sort().to_list()
    if len(hosts) <= many_hosts:
        for i, host in enumerate(hosts):
            part = downsample(frame.filter(pl.col("host") == host).select("ts_s", *(c for c, _ in metrics)), max_points)
            x = _epoch_ms(part.get_column("ts_s"))
            colour = _PALETTE[i % len(_PALETTE)]
            for row, (col, _) in enumerate(metrics, start=1):
                fig.add_trace(
                    _line(
                        x,
                        _values(part.get_column(col)),
                        name=host,
                        legendgroup=host,
                        showlegend=row == 1,
                        line={"color": colour, "width": 1.5},
                        hovertemplate=f"{host} %{{y:.1%}}<extra></extra>",
                    ),
                    row=row,
                    col=1,
                )
    else:
        cols = [c for c, _ in metrics]
        stats = frame.group_by("ts_s").agg(
            *(pl.col(c).mean() for c in cols),
            *(pl.col(c).min().alias(f"{c}_min") for c in cols),
            *(pl.col(c).max().alias(f"{c}_max") for c in cols),
        )
        how: dict[str, Agg] = {}
        for c, _ in metrics:
            how[f"{c}_min"], how[f"{c}_max"] = "min", "max"
        stats = downsample(stats.sort("ts_s"), max_points, how=how)
        x = _epoch_ms(stats.get_column("ts_s"))
        for row, (col, _) in enumerate(metrics, start=1):
            colour = _PALETTE[row - 1]
            band = {"mode": "lines", "line": {"width": 0, "color": colour}, "hoverinfo": "skip"}
            fig.add_trace(
                _line(x, _values(stats.get_column(f"{col}_max")), showlegend=False, **band),
                row=row,
                col=1,
            )
            fig.add_trace(
                _line(
                    x,
                    _values(stats.get_column(f"{col}_min")),
                    fill="tonexty",
                    opacity=0.25,
                    name=f"min–max of {len(hosts)} hosts",
                    legendgroup="band",
                    showlegend=row == 1,
                    **band,
                ),
                row=row,
                col=1,
            )
            fig.add_trace(
                _line(
                    x,
                    _values(stats.get_column(col)),
                    line={"color": colour, "width": 2},
                    name="mean",
                    legendgroup="mean",
                    showlegend=row == 1,
                    hovertemplate="mean %{y:.1%}<extra></extra>",
                ),
                row=row,
                col=1,
            )
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return _time_layout(fig, height=200 + 170 * len(metrics), revision=revision)


def site_history_figure(frame: pl.DataFrame, *, max_points: int = MAX_POINTS, revision: str = "site") -> go.Figure:
    """A batch (or replayed) site over time: CPU allocation share on top, jobs running/pending below.

    `frame` is what `TwinReader.site_history` returns (ts_s, load, jobs_running, jobs_pending, with
    nulls where unknown); a row appears only for what the site actually reports.
    """
    if frame.is_empty() or "ts_s" not in frame.columns:
        return empty_figure("no data yet: no site history in this window")
    known = ("load", "jobs_running", "jobs_pending")
    present = {c for c in known if c in frame.columns and frame[c].null_count() < frame.height}
    rows = [r for r in (("load",), ("jobs_running", "jobs_pending")) if present.intersection(r)]
    if not rows:
        return empty_figure("no data yet: no site history in this window")
    titles = ["CPU allocated" if r == ("load",) else "Jobs" for r in rows]
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.12, subplot_titles=titles)
    part = downsample(frame.select("ts_s", *sorted(present)), max_points)
    x = _epoch_ms(part.get_column("ts_s"))
    colours = {"load": _PALETTE[0], "jobs_running": _PALETTE[2], "jobs_pending": _PALETTE[1]}
    for row, cols in enumerate(rows, start=1):
        for col in cols:
            if col not in present:
                continue
            is_load = col == "load"
            fig.add_trace(
                _line(
                    x,
                    _values(part.get_column(col)),
                    name="CPU allocated" if is_load else col.replace("jobs_", "jobs "),
                    line={"color": colours[col], "width": 2, "shape": "hv"},
                    fill="tozeroy" if is_load else None,
                    hovertemplate="%{y:.1%}<extra>load</extra>" if is_load else f"%{{y:.0f}}<extra>{col}</extra>",
                ),
                row=row,
                col=1,
            )
        if cols == ("load",):
            fig.update_yaxes(tickformat=".0%", range=[0, 1.05], row=row, col=1)
        else:
            fig.update_yaxes(rangemode="tozero", row=row, col=1)
    return _time_layout(fig, height=200 + 170 * len(rows), revision=revision)
