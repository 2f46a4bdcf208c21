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
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboards import fmt
from twin.view import LinkView, SiteView, State

__all__ = [
    "MANY_HOSTS",
    "MAX_GANTT_JOBS",
    "MAX_POINTS",
    "STATE_COLOURS",
    "TRACE_TYPES",
    "by_predicted_start",
    "continuum_figure",
    "downsample",
    "empty_figure",
    "error_cdf_figure",
    "forecast_figure",
    "node_band_figure",
    "node_history_figure",
    "site_history_figure",
    "sized",
]

MAX_POINTS = 2000
"""Points per trace sent to the browser: the budget that keeps a first render fast."""
TRACE_TYPES = frozenset({"scatter", "bar", "pie"})
"""The trace types of the plotly.js "basic" bundle the page ships; a figure using any other type
would draw nothing. No `scattergl`: at `MAX_POINTS` an SVG line draws in milliseconds, needs no
GPU (headless browsers and thin clients fall back to slow software WebGL), and does not use up
the browser's small budget of WebGL contexts."""
MAX_GANTT_JOBS = 200
"""Pending jobs drawn on the forecast figure: the next ones to start, which are what a user acts on;
beyond a couple of hundred rows the bars are thinner than a pixel and the table serves better."""
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
    "configured": "#4a7fb5",
}
_STATE_ORDER: tuple[State, ...] = ("ok", "configured", "starting", "stale", "down")
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


def sized(figure: go.Figure) -> dict[str, str]:
    """The style a drill-down graph needs to keep its figure's height: a definite one.

    The graphs follow the page's width (`responsive`), so dcc.Graph calls `Plotly.Plots.resize`
    whenever their parent resizes, e.g. a section opening on a site switch. That drops the figure's
    height and sizes the plot to 100% of its container; in an auto-height container this is 0 px,
    and the plot spills over what follows (the site's load figure over the queue table). A pixel
    height on the graph's own div, refreshed with each figure, keeps it at the figure's height."""
    height = figure.layout.height
    return {"height": f"{height}px"} if height else {}


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


_RX = 0.8
"""The circle's horizontal radius (vertical: 1): narrower than tall, so a label beside a node on
the left or right still fits a phone-wide graph (a 311 px wide plot keeps ~75 px beside them)."""


def _circle(names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Positions on an ellipse, first name at the top; one site sits in the middle."""
    if len(names) == 1:
        return {names[0]: (0.0, 0.0)}
    step = 2 * math.pi / max(1, len(names))
    return {n: (_RX * math.cos(math.pi / 2 - i * step), math.sin(math.pi / 2 - i * step)) for i, n in enumerate(names)}


def _outward(x: float, y: float) -> str:
    """Where a node's label goes: away from the middle. Links are chords of the circle, all inside
    it, so a label outside never lies on a line (one below a node, the old place, crossed every link
    leaving it downwards)."""
    if abs(x) < 1e-9 and abs(y) < 1e-9:
        return "bottom center"
    angle = math.degrees(math.atan2(y, x / _RX))
    if 45 <= angle <= 135:
        return "top center"
    if -135 <= angle <= -45:
        return "bottom center"
    return "middle right" if x > 0 else "middle left"


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


_NARROW_PX_PER_UNIT = (70.0, 123.0)
"""Pixels per data unit (x, y) of the continuum graph on a phone-wide screen (a 291 × 376 px plot
area at 400 px): label sizes are estimated there, the narrowest place they must not collide."""
_LABEL_CHAR_PX, _LABEL_HEIGHT_PX, _LABEL_GAP_PX = 6.5, 18.0, 6.0
_SPOTS = (0.5, 0.38, 0.62, 0.28, 0.72)
"""Where along its link a label may sit (0 and 1 are the ends, under the sites' markers)."""


def _link_label_spots(links: Sequence[LinkView], pos: Mapping[str, tuple[float, float]]) -> list[tuple[float, float]]:
    """A place for each link's label, on its own line and clear of the labels placed before it:
    links leaving one site meet there, and their middles can be closer than a label is wide. Sizes
    are estimated for a narrow screen (where labels are largest in data units); when no spot is
    clear, the one with the least overlap is taken."""
    placed: list[tuple[float, float, float, float]] = []
    spots = []
    for link in links:
        (x0, y0), (x1, y1) = pos[link.a], pos[link.b]
        w = (len(_link_label(link)) * _LABEL_CHAR_PX + _LABEL_GAP_PX) / _NARROW_PX_PER_UNIT[0]
        h = (_LABEL_HEIGHT_PX + _LABEL_GAP_PX) / _NARROW_PX_PER_UNIT[1]

        def overlap(x: float, y: float, w: float = w, h: float = h) -> float:
            return sum(
                max(0.0, (w + pw) / 2 - abs(x - px)) * max(0.0, (h + ph) / 2 - abs(y - py)) for px, py, pw, ph in placed
            )

        candidates = [(x0 + t * (x1 - x0), y0 + t * (y1 - y0)) for t in _SPOTS]
        best = min(candidates, key=lambda c: (overlap(*c) > 0, overlap(*c), candidates.index(c)))
        placed.append((*best, w, h))
        spots.append(best)
    return spots


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
                    "dash": "solid" if link.state in ("ok", "configured") else "dot",
                },
                hoverinfo="skip",
                showlegend=False,
            )
        )
    if links:
        mids = [((pos[lk.a][0] + pos[lk.b][0]) / 2, (pos[lk.a][1] + pos[lk.b][1]) / 2) for lk in links]
        fig.add_trace(  # the hover target of each link (an annotation has no rich hover)
            go.Scatter(
                x=[m[0] for m in mids],
                y=[m[1] for m in mids],
                mode="markers",
                hovertext=[_link_hover(lk) for lk in links],
                hoverinfo="text",
                marker={"size": 14, "color": "rgba(255,255,255,0)"},
                name="links",
                showlegend=False,
            )
        )
        for (lx, ly), link in zip(_link_label_spots(links, pos), links, strict=True):
            # A boxed label on an opaque background on its link: it interrupts its own line (and any
            # line crossing there) instead of being drawn over it, so it stays readable.
            fig.add_annotation(
                x=lx,
                y=ly,
                text=_link_label(link),
                showarrow=False,
                font={"size": 11, "color": _MUTED},
                bgcolor="white",
                bordercolor=STATE_COLOURS.get(link.state, _MUTED),
                borderwidth=1,
                borderpad=2,
                opacity=1,
            )
    if outside:
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in outside],
                y=[pos[n][1] for n in outside],
                mode="markers+text",
                text=outside,
                textposition=[_outward(*pos[n]) for n in outside],
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
                text=[f"<b>{fmt.clip(s.name, 16)}</b><br>load {fmt.percent(s.load)}" for s in group],
                textposition=[_outward(*pos[s.name]) for s in group],
                cliponaxis=False,
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
        margin={"l": 10, "r": 10, "t": 34, "b": 10},
        showlegend=True,
        legend={"orientation": "h", "x": 0, "y": 1.08, "title": {"text": "state "}},
        # room beside the ellipse for the left and right sites' labels, above it for the top one's
        xaxis={"visible": False, "range": [-2.05, 2.05], "fixedrange": True},
        yaxis={"visible": False, "range": [-1.5, 1.55], "fixedrange": True},
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
        _band_traces(fig, stats, metrics, len(hosts), max_points)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return _time_layout(fig, height=200 + 170 * len(metrics), revision=revision)


def node_band_figure(
    stats: pl.DataFrame, hosts: int, *, max_points: int = MAX_POINTS, revision: str = "nodes"
) -> go.Figure:
    """Many hosts at once: mean and min–max band per metric, from `TwinReader.node_history_band`
    (already aggregated across hosts in the store: one row per bucket, whatever the host count)."""
    metrics = [(c, t) for c, t in (("cpu_util", "CPU busy"), ("mem_used_frac", "Memory used")) if c in stats.columns]
    if stats.is_empty() or "ts_s" not in stats.columns or not metrics:
        return empty_figure("no data yet: no host metrics in this window")
    fig = make_subplots(
        rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.1, subplot_titles=[t for _, t in metrics]
    )
    _band_traces(fig, stats, metrics, hosts, max_points)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return _time_layout(fig, height=200 + 170 * len(metrics), revision=revision)


def _band_traces(
    fig: go.Figure, stats: pl.DataFrame, metrics: list[tuple[str, str]], hosts: int, max_points: int
) -> None:
    how: dict[str, Agg] = {}
    for c, _ in metrics:
        how[f"{c}_min"], how[f"{c}_max"] = "min", "max"
    stats = downsample(stats.sort("ts_s"), max_points, how=how)
    x = _epoch_ms(stats.get_column("ts_s"))
    for row, (col, _) in enumerate(metrics, start=1):
        colour = _PALETTE[row - 1]
        band = {"mode": "lines", "line": {"width": 0, "color": colour}, "hoverinfo": "skip"}
        fig.add_trace(_line(x, _values(stats.get_column(f"{col}_max")), showlegend=False, **band), row=row, col=1)
        fig.add_trace(
            _line(
                x,
                _values(stats.get_column(f"{col}_min")),
                fill="tonexty",
                opacity=0.25,
                name=f"min–max of {hosts} hosts",
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


# --- the queue forecast --------------------------------------------------------------------------


def by_predicted_start(jobs: pl.DataFrame) -> pl.DataFrame:
    """Pending jobs in the order they are predicted to start (ties: submit order, then job id); a
    job without a predicted start (one the site cannot run) goes last. The table and the figure
    share this order, so the figure's top rows are the table's first page."""
    keys = [c for c in ("predicted_start_s", "submit_s", "job_id") if c in jobs.columns]
    return jobs.sort(keys, nulls_last=True) if keys else jobs


def _col(frame: pl.DataFrame, name: str) -> pl.Series:
    """A column, or nulls where the forecast did not produce it (no band, no scheduler estimate)."""
    return frame.get_column(name) if name in frame.columns else pl.Series(name, [None] * frame.height, pl.Int64)


def _hours_from(series: pl.Series, now_s: float) -> np.ndarray[Any, Any]:
    return ((series.cast(pl.Float64) - now_s) / 3600.0).to_numpy()


_CPU_SCALE = [[0.0, "#9ecae1"], [0.5, "#3182bd"], [1.0, "#08306b"]]
"""Light to dark blue, starting visible: a one-CPU job must not draw as a white bar."""


def forecast_figure(
    jobs: pl.DataFrame,
    now_s: float,
    *,
    processors: int | None = None,
    max_jobs: int = MAX_GANTT_JOBS,
    revision: str = "forecast",
) -> go.Figure:
    """The forecast as a Gantt chart: one horizontal bar per pending job from its predicted start to
    its predicted end, in hours from the site's clock (so a replayed 1996 log reads like a live
    queue), the next to start on top, coloured by CPUs (up to `processors`, the whole site, when
    given). The scheduler's own estimate and the p10–p90 start band are drawn over the bars where
    the forecast has them.

    Bars rather than a step chart of CPUs in use: the forecast holds pending jobs only, so a CPU
    curve would leave out the running jobs and understate the load; per-job bars show exactly
    what was simulated. A `bar` with `base` is a Gantt in the basic plotly.js bundle.
    """
    needed = {"job_id", "predicted_start_s", "predicted_end_s"}
    if jobs.is_empty() or not needed <= set(jobs.columns):
        return empty_figure("no pending jobs: nothing to forecast")
    ordered = by_predicted_start(jobs).filter(pl.col("predicted_start_s").is_not_null())
    if ordered.is_empty():
        return empty_figure("no pending job can start here (each is wider than the site)")
    shown = ordered.head(max(1, max_jobs))
    ids = shown.get_column("job_id").cast(pl.String).to_list()
    start = _hours_from(shown.get_column("predicted_start_s"), now_s)
    end = _hours_from(shown.get_column("predicted_end_s"), now_s)
    procs = _col(shown, "procs").cast(pl.Float64).to_numpy()
    hover = [
        [fmt.count(p), fmt.starts_in(w), fmt.duration(r)]
        for p, w, r in zip(
            _col(shown, "procs").to_list(),
            (shown.get_column("predicted_start_s") - now_s).to_list(),
            (shown.get_column("predicted_end_s") - shown.get_column("predicted_start_s")).to_list(),
            strict=True,
        )
    ]
    fig = go.Figure(
        go.Bar(
            y=ids,
            x=end - start,
            base=start,
            orientation="h",
            name="predicted run",
            customdata=hover,
            marker={
                "color": procs,
                "colorscale": _CPU_SCALE,
                "cmin": 1,
                **({"cmax": processors} if processors else {}),
                "showscale": True,
                "colorbar": {"title": {"text": "CPUs"}, "thickness": 12, "len": 0.8},
                "line": {"width": 0},
            },
            hovertemplate=(
                "job %{y}<br>%{customdata[0]} CPUs<br>starts %{customdata[1]}"
                "<br>runs %{customdata[2]} (predicted)<extra></extra>"
            ),
        )
    )
    early, late = _col(shown, "start_early_s"), _col(shown, "start_late_s")
    if early.null_count() < shown.height and late.null_count() < shown.height:
        fig.add_trace(
            go.Scatter(
                y=ids,
                x=start,
                mode="markers",
                name="p10–p90 start",
                marker={"size": 4, "color": _PALETTE[1]},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": np.maximum(_hours_from(late, now_s) - start, 0),
                    # a job cannot start before now: the band's early end is clamped there, as in the table
                    "arrayminus": np.maximum(start - np.maximum(_hours_from(early, now_s), 0), 0),
                    "color": _PALETTE[1],
                    "thickness": 1.5,
                    "width": 2,
                },
                hoverinfo="skip",
            )
        )
    scheduler = _col(shown, "scheduler_start_s")
    if scheduler.null_count() < shown.height:
        fig.add_trace(
            go.Scatter(
                y=ids,
                x=_hours_from(scheduler, now_s),
                mode="markers",
                name="scheduler's estimate",
                marker={"symbol": "diamond", "size": 7, "color": _PALETTE[3], "line": {"width": 0}},
                hovertemplate="job %{y}: the scheduler says %{x:.1f} h<extra></extra>",
            )
        )
    fig.add_vline(x=0, line={"color": _MUTED, "width": 1, "dash": "dot"})
    more = ordered.height - shown.height
    title = f"the next {shown.height} of {ordered.height} pending jobs" if more else f"{shown.height} pending jobs"
    fig.update_layout(
        template="plotly_white",
        height=min(720, max(240, 110 + 14 * shown.height)),
        margin={"l": 70, "r": 10, "t": 40, "b": 40},
        title={"text": title, "font": {"size": 13, "color": _MUTED}, "x": 0, "xanchor": "left"},
        showlegend=fig.data is not None and len(fig.data) > 1,
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "xanchor": "left"},
        hovermode="closest",
        bargap=0.15,
        uirevision=revision,
    )
    fig.update_xaxes(title={"text": "hours from now (the site's clock)"}, zeroline=False)
    fig.update_yaxes(type="category", autorange="reversed", title={"text": "job"}, tickfont={"size": 10})
    return fig


_ERROR_TICKS = ((1, "1 s"), (60, "1 min"), (600, "10 min"), (3600, "1 h"), (86_400, "1 d"), (604_800, "1 wk"))


def error_cdf_figure(errors_s: Sequence[float], *, max_points: int = MAX_POINTS, revision: str = "errors") -> go.Figure:
    """How far off past forecasts were: the share of scored forecasts (y) whose start was within x of
    the real one, on a log axis ticked at 1 min, 10 min and 1 h, so the page's three headline shares
    are read off the curve.

    A CDF of the absolute error rather than a histogram: errors span seconds to days, no single bin
    width shows both, and the basic plotly.js bundle has no `histogram` trace. Errors under a second
    sit at 1 s (a log axis has no zero). At most `max_points` points, evenly spaced in rank.
    """
    values = sorted(abs(float(e)) for e in errors_s if e is not None and math.isfinite(e))
    if not values:
        return empty_figure("no forecast scored yet", height=240)
    n = len(values)
    keep = n if n <= max_points else max(2, max_points)
    ranks = [round(i * (n - 1) / (keep - 1)) for i in range(keep)] if keep > 1 else [0]
    x = [max(1.0, values[i]) for i in ranks]
    y = [(i + 1) / n for i in ranks]
    text = [fmt.duration(values[i]) for i in ranks]
    fig = go.Figure(
        _line(
            x,  # type: ignore[arg-type]
            y,  # type: ignore[arg-type]
            name="share of forecasts",
            text=text,
            line={"color": _PALETTE[0], "width": 2, "shape": "hv"},
            hovertemplate="%{y:.0%} within %{text}<extra></extra>",
        )
    )
    top = max(x)
    ticks = [(v, t) for v, t in _ERROR_TICKS if v <= max(top * 10, 3600)]
    fig.update_layout(
        template="plotly_white",
        height=260,
        margin={"l": 50, "r": 10, "t": 20, "b": 40},
        hovermode="closest",
        showlegend=False,
        uirevision=revision,
    )
    fig.update_xaxes(
        type="log",
        tickvals=[v for v, _ in ticks],
        ticktext=[t for _, t in ticks],
        title={"text": "absolute error of the predicted start"},
    )
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], title={"text": "forecasts within"})
    return fig
