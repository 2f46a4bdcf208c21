"""The figure builders: every site drawn, states coloured, point budgets kept, empty input survived."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
import polars as pl
import pytest

from dashboards.figures import (
    MANY_HOSTS,
    MAX_POINTS,
    STATE_COLOURS,
    TRACE_TYPES,
    continuum_figure,
    downsample,
    empty_figure,
    node_history_figure,
    site_history_figure,
)
from tests.dashboards.twin_double import NOW_S, FakeReader, history_frame, site

DAY_S = 86400.0


def annotations(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def says_no_data(fig: go.Figure) -> bool:
    return any("no data yet" in t for t in annotations(fig)) and not fig.data


def points_per_trace(fig: go.Figure) -> list[int]:
    return [len(t.x) for t in fig.data if t.x is not None]


def site_nodes(fig: go.Figure) -> dict[str, dict[str, Any]]:
    """Site name -> its trace's state (trace name) and marker colour, from the node traces."""
    out = {}
    for trace in fig.data:
        if trace.customdata is not None:
            for name in trace.customdata:
                out[name] = {"state": trace.name, "colour": trace.marker.color}
    return out


# --- continuum -----------------------------------------------------------------------------------


def test_every_site_is_a_node_coloured_by_its_state(reader: FakeReader) -> None:
    fig = continuum_figure(reader.sites(), reader.links())
    nodes = site_nodes(fig)
    assert set(nodes) == {s.name for s in reader.sites()}
    for s in reader.sites():
        assert nodes[s.name] == {"state": s.state, "colour": STATE_COLOURS[s.state]}
    labels = " ".join(t for trace in fig.data if trace.text is not None for t in trace.text)
    assert "load 63 %" in labels and "load –" in labels  # grid has no load yet


def test_links_are_edges_labelled_with_bandwidth_and_rate(reader: FakeReader) -> None:
    fig = continuum_figure(reader.sites(), reader.links())
    edges = [t for t in fig.data if t.mode == "lines"]
    assert len(edges) == len(reader.links())
    assert [e.line.dash for e in edges] == ["solid", "dot", "dot"]  # ok, stale, down
    labels = tuple(a.text for a in fig.layout.annotations)  # boxed, on their lines
    assert labels == ("10 Gb/s · now 1.2 Gb/s", "1 Gb/s", "100 Gb/s")
    assert all(a.bgcolor == "white" and a.borderwidth == 1 for a in fig.layout.annotations)
    assert len(next(t for t in fig.data if t.name == "links").hovertext) == 3  # each link's hover target


def test_site_labels_sit_outside_the_ring_of_links(reader: FakeReader) -> None:
    """Links are chords of the sites' ellipse: a label on the outer side never lies on one."""
    fig = continuum_figure(reader.sites(), reader.links())
    for trace in (t for t in fig.data if t.customdata is not None):
        for x, y, where in zip(trace.x, trace.y, trace.textposition, strict=True):
            expected = "top" if y > 0.7 else "bottom" if y < -0.7 else ("right" if x > 0 else "left")
            assert expected in where, (x, y, where)


def test_a_link_to_an_unconfigured_endpoint_still_draws(reader: FakeReader) -> None:
    links = [*reader.links(), reader.links()[0].__class__("local", "internet", "", None, None, "ok", 1.0, None, None)]
    fig = continuum_figure(reader.sites(), links)
    assert "internet" in next(t for t in fig.data if t.name == "other endpoints").text


def test_the_selected_site_is_outlined(reader: FakeReader) -> None:
    fig = continuum_figure(reader.sites(), reader.links(), selected="local")
    trace = next(t for t in fig.data if t.customdata is not None and "local" in t.customdata)
    widths = dict(zip(trace.customdata, trace.marker.line.width, strict=True))
    assert widths["local"] > max(w for n, w in widths.items() if n != "local")


def test_site_positions_do_not_depend_on_input_order(reader: FakeReader) -> None:
    forward = continuum_figure(reader.sites(), reader.links())
    backward = continuum_figure(list(reversed(reader.sites())), reader.links())

    def where(fig: go.Figure) -> dict[str, tuple[float, float]]:
        return {
            n: (x, y)
            for t in fig.data
            if t.customdata is not None
            for n, x, y in zip(t.customdata, t.x, t.y, strict=True)
        }

    assert where(forward) == where(backward)


def test_one_site_and_no_sites() -> None:
    single = continuum_figure([site("only")], [])
    assert set(site_nodes(single)) == {"only"}
    assert says_no_data(continuum_figure([], []))


# --- node history --------------------------------------------------------------------------------


def _day(hosts: int, step_s: float = 60.0) -> pl.DataFrame:
    ts = [NOW_S - DAY_S + i * step_s for i in range(int(DAY_S / step_s))]
    return history_frame([f"h{i:04d}" for i in range(hosts)], ts)


@pytest.mark.parametrize("hosts", [3, MANY_HOSTS + 1, 200])
@pytest.mark.parametrize("step_s", [60.0, 10.0])
def test_node_history_keeps_the_point_budget(hosts: int, step_s: float) -> None:
    """24 h at 1 min (1,440 points per host) and at 10 s (8,640: a reader that ignored max_points)."""
    fig = node_history_figure(_day(hosts, step_s))
    counts = points_per_trace(fig)
    assert counts and max(counts) <= MAX_POINTS
    assert all(isinstance(t, go.Scatter) for t in fig.data)  # SVG: the shipped bundle has no WebGL


def test_few_hosts_get_a_line_each_many_get_a_band() -> None:
    few = node_history_figure(_day(3))
    assert {t.name for t in few.data} == {"h0000", "h0001", "h0002"}
    assert len(few.data) == 3 * 2  # CPU and memory rows
    many = node_history_figure(_day(MANY_HOSTS + 1))
    assert len(many.data) == 3 * 2  # band top, band bottom, mean, per row
    assert any(f"min–max of {MANY_HOSTS + 1} hosts" == t.name for t in many.data)


def test_downsampled_band_still_spans_the_extremes() -> None:
    frame = _day(MANY_HOSTS + 1, 10.0)
    fig = node_history_figure(frame)
    top = max(max(t.y) for t in fig.data)
    bottom = min(min(t.y) for t in fig.data)
    assert top == pytest.approx(max(frame["cpu_util"].max(), frame["mem_used_frac"].max()))
    assert bottom == pytest.approx(min(frame["cpu_util"].min(), frame["mem_used_frac"].min()))


def test_the_figure_on_the_wire_is_small_for_1000_hosts() -> None:
    """The issue's scale: 1,000 hosts over 24 h at 1 min reach the browser as a few capped traces."""
    fig = node_history_figure(_day(1000))
    assert max(points_per_trace(fig)) <= MAX_POINTS
    assert len(fig.to_json()) < 400_000


def test_node_history_empty_or_partial_input_does_not_raise() -> None:
    assert says_no_data(node_history_figure(_day(0)))
    assert says_no_data(node_history_figure(pl.DataFrame()))
    cpu_only = node_history_figure(_day(2).drop("mem_used_frac"))
    assert len(cpu_only.data) == 2
    with_nulls = _day(2).with_columns(cpu_util=pl.lit(None, dtype=pl.Float64))
    node_history_figure(with_nulls).to_json()


# --- site history --------------------------------------------------------------------------------


def test_site_history_keeps_the_budget_and_shows_load_and_jobs(reader: FakeReader) -> None:
    reader.step_s, reader.ignore_max_points = 10.0, True
    frame = reader.site_history("hpc1", NOW_S - DAY_S, NOW_S)
    assert frame.height > MAX_POINTS
    fig = site_history_figure(frame)
    assert {t.name for t in fig.data} == {"CPU allocated", "jobs running", "jobs pending"}
    assert max(points_per_trace(fig)) <= MAX_POINTS


def test_site_history_without_job_counts_has_only_the_load_row(reader: FakeReader) -> None:
    frame = reader.site_history("hpc1", NOW_S - 3600, NOW_S).with_columns(
        jobs_running=pl.lit(None, dtype=pl.Int64), jobs_pending=pl.lit(None, dtype=pl.Int64)
    )
    fig = site_history_figure(frame)
    assert [t.name for t in fig.data] == ["CPU allocated"]


def test_site_history_empty_input_does_not_raise() -> None:
    assert says_no_data(site_history_figure(pl.DataFrame()))
    nothing = pl.DataFrame({"ts_s": [1.0, 2.0], "load": [None, None]}, schema={"ts_s": pl.Float64, "load": pl.Float64})
    assert says_no_data(site_history_figure(nothing))


# --- helpers -------------------------------------------------------------------------------------


def test_downsample_caps_rows_and_keeps_small_frames_as_they_are() -> None:
    frame = pl.DataFrame({"ts_s": [float(i) for i in range(10_001)], "v": [float(i % 7) for i in range(10_001)]})
    small = frame.head(50)
    assert downsample(small, 100) is small
    out = downsample(frame, 2000, how={"v": "max"})
    assert out.height <= 2000
    assert out["ts_s"].is_sorted() and out["ts_s"][0] == 0.0
    assert out["v"].max() == 6.0
    assert downsample(frame.head(0), 10).height == 0


def test_empty_figure_says_why() -> None:
    fig = empty_figure("no data yet: nothing here")
    assert annotations(fig) == ["no data yet: nothing here"]
    json.loads(fig.to_json())


def test_every_figure_uses_only_trace_types_of_the_shipped_plotly_bundle(reader: FakeReader) -> None:
    """The page loads plotly.js "basic" (dashboards/assets): a trace of another type would not draw."""
    reader.step_s = 10.0
    figures = [
        continuum_figure(reader.sites(), reader.links(), selected="local"),
        node_history_figure(_day(3)),
        node_history_figure(_day(200, 10.0)),
        site_history_figure(reader.site_history("hpc1", NOW_S - DAY_S, NOW_S)),
        empty_figure(),
    ]
    used = {t.type for fig in figures for t in fig.data}
    assert used and used <= TRACE_TYPES
