"""The overview's render functions against the in-test reader: what a callback would put on the page."""

from __future__ import annotations

from typing import get_args

import dash
import pytest

from dashboards import ids
from dashboards.figures import MAX_POINTS
from dashboards.overview import (
    HIDDEN,
    HISTORY_REFRESH_MS,
    REFRESH_MS,
    SHOWN,
    clocks,
    render_click,
    render_drilldown,
    render_history,
    render_overview,
    selected_site,
)
from dashboards.parts import site_href
from dashboards.urlstate import DEFAULT_RANGE, RANGE_PHRASES, RANGES, RangeKey, drill_query, parse, selected_range
from tests.dashboards.dom import text, walk, with_attr
from tests.dashboards.twin_double import NOW_S, REPLAY_SPEED, TRACE_TIME_S, FakeReader

HOUR_S = RANGES["1h"]
DAY_S = RANGES["24h"]


def cards(reader: FakeReader, search: str | None = None, prefix: str = "/") -> dict[str, str]:
    page = render_overview(reader, search, now_s=NOW_S, prefix=prefix)
    return {name: text(card) for name, card in with_attr(page.cards, ids.SITE_ATTR).items()}


def test_every_site_has_a_card_with_its_values(reader: FakeReader) -> None:
    shown = cards(reader)
    assert list(shown) == [s.name for s in reader.sites()]
    assert "63 %" in shown["hpc1"] and "120 running · 45 pending" in shown["hpc1"]
    assert "40 / 64" in shown["hpc1"] and "hosts" not in shown["hpc1"]  # a batch site without host metrics
    assert "hosts 3" in shown["local"] and "2 s ago" in shown["local"]
    assert "replay at 2007-01-28 16:00 UTC" in shown["swf-replay"]


def test_a_stale_site_shows_its_state_age_and_last_error(reader: FakeReader) -> None:
    card = cards(reader)["cloud-eu"]
    assert "stale" in card and "data 7 min ago" in card
    assert "last error: ReadTimeout: kubelet did not answer in 5 s" in card


def test_a_down_site_that_never_reported_still_shows(reader: FakeReader) -> None:
    card = cards(reader)["grid"]
    assert "down" in card and "no data yet" in card and "Connection refused" in card
    assert "– load" in card


def test_cards_link_to_their_drill_down_and_mark_the_selected_one(reader: FakeReader) -> None:
    page = render_overview(reader, "?site=local", now_s=NOW_S, prefix="/ui/")
    links = {c.children.to_plotly_json()["props"][ids.SITE_ATTR]: c for c in page.cards}
    assert links["swf-replay"].href == "/ui/?site=swf-replay"
    assert "selected" in links["local"].className and "selected" not in links["hpc1"].className
    assert "state-stale" in links["cloud-eu"].className


def test_header_counts_states_and_the_graph_has_every_site(reader: FakeReader) -> None:
    page = render_overview(reader, None, now_s=NOW_S)
    assert page.summary == "5 sites · 3 ok · 1 stale · 1 down · updated 08:00:00 UTC"
    drawn = {n for t in page.continuum.data if t.customdata is not None for n in t.customdata}
    assert drawn == {s.name for s in reader.sites()}
    assert "hpc1 ↔ local" in text(page.links) and "10 Gb/s" in text(page.links)


def test_no_sites_and_no_links_do_not_raise() -> None:
    page = render_overview(FakeReader(), None, now_s=NOW_S)
    assert "No sites yet" in text(page.cards)
    assert any("no data yet" in a.text for a in page.continuum.layout.annotations)
    assert "No links" in text(page.links)
    assert page.summary.startswith("0 sites")


def test_drill_down_shows_the_nodes_table_and_last_hour(reader: FakeReader) -> None:
    out = render_drilldown(reader, "?site=local", now_s=NOW_S)
    assert out.hosts_style == SHOWN and out.hosts_title == "Hosts (3)"
    assert [r["host"] for r in out.hosts] == ["edge-a", "edge-b", "this-host"]
    assert out.hosts[2] == {
        "host": "this-host",
        "state": "ok",
        "cpu": 0.35,
        "cpus": 8,
        "mem_used_gib": pytest.approx(6.8),
        "mem_total_gib": 16.0,
        "load1": 2.8,
        "age": "2 s ago",
        "panels": "[panels](?view=hosts&site=local&host=this-host)",  # the host's own page
    }
    assert out.hosts[1]["cpu"] is None  # no CPU sample yet: an empty cell, not a zero
    assert out.site_style == HIDDEN
    assert "local" in text(out.head) and "Collectors" in text(out.head)
    assert reader.history_calls == []  # the live part reads no history: it must stay quick every tick
    history = render_history(reader, "?site=local", now_s=NOW_S)
    assert {t.name for t in history.hosts_figure.data} == {"edge-a", "edge-b", "this-host"}
    assert reader.history_calls == [("node", "local", NOW_S - HOUR_S, NOW_S, 2000)]
    assert history.hosts_figure_title == "CPU and memory, last hour"
    assert not history.site_figure.data


def test_drill_down_into_a_batch_site_shows_load_and_jobs(reader: FakeReader) -> None:
    out = render_drilldown(reader, "?site=hpc1", now_s=NOW_S)
    assert out.hosts_style == HIDDEN and out.hosts == []
    assert out.site_style == SHOWN
    history = render_history(reader, "?site=hpc1", now_s=NOW_S)
    assert history.site_title == "Load and jobs, last hour"
    assert {t.name for t in history.site_figure.data} == {"CPU allocated", "jobs running", "jobs pending"}
    assert not history.hosts_figure.data


def test_a_replayed_site_shows_its_last_wall_hour_and_the_trace_instant(reader: FakeReader) -> None:
    out = render_history(reader, "?site=swf-replay", now_s=NOW_S)
    assert reader.history_calls == [("site", "swf-replay", NOW_S - HOUR_S, NOW_S, 2000)]
    assert out.site_title.endswith("(replay now at 2007-01-28 16:00 UTC)")


def test_drill_down_into_a_stale_site_shows_its_collectors_errors(reader: FakeReader) -> None:
    out = render_drilldown(reader, "?site=cloud-eu", now_s=NOW_S)
    head = text(out.head)
    assert "stale" in head and "kubelet" in head and "ReadTimeout" in head and "7 min ago" in head
    assert out.hosts_title == "Hosts (12)" and {r["state"] for r in out.hosts} == {"stale"}
    assert len(render_history(reader, "?site=cloud-eu", now_s=NOW_S).hosts_figure.data) == 6  # mean and band per metric


def test_drill_down_without_or_with_an_unknown_site(reader: FakeReader) -> None:
    nothing = render_drilldown(reader, None, now_s=NOW_S)
    assert "Click a site card" in text(nothing.head)
    assert nothing.hosts_style == HIDDEN and nothing.site_style == HIDDEN
    unknown = render_drilldown(reader, "?site=atlantis", now_s=NOW_S)
    assert "There is no site named 'atlantis'" in text(unknown.head)
    for search in (None, "?site=atlantis"):
        history = render_history(reader, search, now_s=NOW_S)
        assert not history.hosts_figure.data and not history.site_figure.data and not history.site_title
    assert reader.history_calls == []


def test_a_failing_history_read_is_shown_not_raised(reader: FakeReader) -> None:
    reader.history_error = OSError("store is closed")
    history = render_history(reader, "?site=local", now_s=NOW_S)
    assert "history unavailable: OSError: store is closed" in history.hosts_figure.layout.annotations[0].text
    assert len(render_drilldown(reader, "?site=local", now_s=NOW_S).hosts) == 3  # the live values still show


@pytest.mark.parametrize(
    ("search", "site"),
    [(None, None), ("", None), ("?site=", None), ("?site=hpc1", "hpc1"), ("?site=a%20b&x=1", "a b")],
)
def test_selected_site_from_the_query_string(search: str | None, site: str | None) -> None:
    assert selected_site(search) == site


def test_a_click_on_a_site_node_selects_it_and_other_clicks_do_not() -> None:
    assert render_click({"points": [{"customdata": "edge box"}]}) == "?site=edge+box"
    assert selected_site(render_click({"points": [{"customdata": "edge box"}]})) == "edge box"
    assert render_click({"points": [{"x": 0.1}]}) is dash.no_update
    assert render_click(None) is dash.no_update
    assert site_href("/", "a&b") == "/?site=a%26b"


# --- the drill-down's range ----------------------------------------------------------------------


def test_range_keys_windows_and_phrases_agree() -> None:
    assert tuple(RANGES) == get_args(RangeKey) == ("1h", "6h", "24h")
    assert set(RANGE_PHRASES) == set(RANGES) and DEFAULT_RANGE == "1h"
    assert [RANGES[k] for k in RANGES] == [3600.0, 6 * 3600.0, 86400.0]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (None, (None, "1h")),
        ("", (None, "1h")),
        ("?site=hpc1", ("hpc1", "1h")),
        ("?site=hpc1&range=6h", ("hpc1", "6h")),
        ("site=hpc1&range=24h", ("hpc1", "24h")),  # without the "?"
        ("?range=24h&site=a%20b", ("a b", "24h")),
        ("?site=hpc1&range=24H", ("hpc1", "24h")),
        ("?site=hpc1&range=7d", ("hpc1", "1h")),  # unknown: the default, not an error
        ("?site=hpc1&range=", ("hpc1", "1h")),
        ("?site=hpc1&range=86400", ("hpc1", "1h")),
        ("?site=hpc1&range=24h&range=6h", ("hpc1", "24h")),  # the first one wins
    ],
)
def test_site_and_range_from_the_query_string(search: str | None, expected: tuple[str | None, str]) -> None:
    assert parse(search) == expected
    assert selected_range(search) == expected[1]


@pytest.mark.parametrize("range_", list(RANGES))
@pytest.mark.parametrize("site_name", ["hpc1", "a b", "a&b=c", "ünï"])
def test_drill_query_round_trips(site_name: str, range_: RangeKey) -> None:
    query = drill_query(site_name, range_)
    assert parse(query) == (site_name, range_)
    assert ("range=" in query) == (range_ != DEFAULT_RANGE)  # the default stays out of the link


def test_drill_down_over_24_hours_reads_at_most_2000_points_and_says_so(reader: FakeReader) -> None:
    out = render_history(reader, "?site=local&range=24h", now_s=NOW_S)
    assert reader.history_calls == [("node", "local", NOW_S - DAY_S, NOW_S, MAX_POINTS)]
    assert out.hosts_figure_title == "CPU and memory, last 24 hours"
    assert max(len(t.x) for t in out.hosts_figure.data) <= MAX_POINTS
    assert out.hosts_figure.layout.uirevision == "nodes-local-24h"  # a new range resets the zoom


@pytest.mark.parametrize("site_name", ["local", "cloud-eu", "swf-replay"])
def test_no_trace_outgrows_2000_points_at_24_hours_even_from_a_reader_that_ignores_the_cap(
    reader: FakeReader, site_name: str
) -> None:
    """A reader that hands over 24 h at 10 s (8,640 points per host): the figures still cap."""
    reader.step_s, reader.ignore_max_points = 10.0, True
    out = render_history(reader, f"?site={site_name}&range=24h", now_s=NOW_S)
    assert all(call[-1] == MAX_POINTS for call in reader.history_calls)
    figures = [f for f in (out.hosts_figure, out.site_figure) if f.data]
    assert figures
    points = [len(t.x) for f in figures for t in f.data]
    assert max(points) <= MAX_POINTS and max(points) > 1000  # capped, not starved


def test_the_range_selector_marks_the_chosen_range_and_keeps_the_site(reader: FakeReader) -> None:
    out = render_drilldown(reader, "?site=a%20site&range=6h", now_s=NOW_S)
    assert out.ranges == []  # no such site: nothing to choose a range for
    out = render_drilldown(reader, "?site=hpc1&range=6h", now_s=NOW_S, prefix="/ui/")
    links = {text(link): link for link in out.ranges}
    assert list(links) == ["1 h", "6 h", "24 h"]
    assert [link.href for link in links.values()] == [
        "/ui/?site=hpc1",
        "/ui/?site=hpc1&range=6h",
        "/ui/?site=hpc1&range=24h",
    ]
    assert [("selected" in link.className) for link in links.values()] == [False, True, False]
    keys = [c.to_plotly_json()["props"].get(ids.RANGE_ATTR) for link in out.ranges for c in walk(link.children)]
    assert keys == ["1h", "6h", "24h"]
    assert render_history(reader, "?site=hpc1&range=6h", now_s=NOW_S).site_title == "Load and jobs, last 6 hours"
    assert render_drilldown(reader, None, now_s=NOW_S).ranges == []


def test_switching_site_keeps_the_range(reader: FakeReader) -> None:
    page = render_overview(reader, "?site=local&range=24h", now_s=NOW_S, prefix="/")
    hrefs = {c.children.to_plotly_json()["props"][ids.SITE_ATTR]: c.href for c in page.cards}
    assert hrefs["hpc1"] == "/?site=hpc1&range=24h"
    assert render_click({"points": [{"customdata": "hpc1"}]}, "?site=local&range=6h") == "?site=hpc1&range=6h"
    assert render_click({"points": [{"customdata": "hpc1"}]}, "?site=local") == "?site=hpc1"


def test_history_refreshes_on_a_clock_of_its_own_slower_for_longer_ranges(reader: FakeReader) -> None:
    """Dash drops an answer when the same callback is asked again first: a 24 h read of a thousand
    hosts on the 5 s tick would never land. The live part sets the history clock for the range."""
    periods = {r: render_drilldown(reader, f"?site=local&range={r}", now_s=NOW_S).history_refresh_ms for r in RANGES}
    assert periods == HISTORY_REFRESH_MS
    assert periods["1h"] == REFRESH_MS and periods["1h"] < periods["6h"] < periods["24h"]
    intervals = {c.id: c.interval for c in clocks() if getattr(c, "interval", None) is not None}
    assert intervals == {ids.TICK: REFRESH_MS, ids.HISTORY_TICK: max(HISTORY_REFRESH_MS.values())}


def test_many_hosts_are_drawn_from_the_band_the_store_aggregates(reader: FakeReader) -> None:
    """cloud-eu has 12 hosts (> MANY_HOSTS): one band query, never the per-host history."""
    out = render_history(reader, "?site=cloud-eu&range=24h", now_s=NOW_S)
    kinds = [call[0] for call in reader.history_calls]
    assert kinds == ["band"]
    names = {t.name for t in out.hosts_figure.data}
    assert "mean" in names and any(n and n.startswith("min–max of 12 hosts") for n in names)
    assert max(len(t.x) for t in out.hosts_figure.data) <= 2000


def test_the_advice_section_shows_each_hook_or_says_why_not() -> None:
    import polars as pl

    from dashboards.overview import render_advice
    from telemetry.advice import SUMMARY_SCHEMA

    row = {"hook": "k8s-extender", "answers": 12, "reported": 10, "followed": 9, "joined": 4,
           "abs_error_s": 610.0, "regret_s": 0.0, "last_s": 1000.0}  # fmt: skip
    frame = pl.DataFrame([row], schema=SUMMARY_SCHEMA)
    style, children = render_advice(lambda site: frame if site == "hpc1" else frame.clear(), "?site=hpc1", now_s=1030)
    text = str(children)
    assert style == {} or style.get("display") != "none"
    assert "kube-scheduler extender" in text and "'12'" in text and "10 min" in text and "30 s ago" in text
    _, empty = render_advice(lambda site: frame.clear(), "?site=grid", now_s=1030)
    assert "No advice has recommended this site yet" in str(empty)

    def broken(site: str) -> pl.DataFrame:
        raise OSError("store closed")

    _, failed = render_advice(broken, "?site=hpc1", now_s=1030)
    assert "advice log unavailable: store closed" in str(failed)
    assert render_advice(None, "?site=hpc1", now_s=1030)[1] == []


def test_a_replayed_sites_history_is_drawn_in_its_trace_clock_and_says_so(reader: FakeReader) -> None:
    """Clock rule: the range is wall time, the axis the replay's trace clock (as its card and queue)."""
    replay = render_history(reader, "?site=swf-replay&range=1h", now_s=NOW_S)
    x = replay.site_figure.data[0].x
    wall_last = reader.site_history("swf-replay", NOW_S - 3600, NOW_S)["ts_s"][-1]
    assert x[-1] == pytest.approx((TRACE_TIME_S - (NOW_S - wall_last) * REPLAY_SPEED) * 1000.0)  # in trace ms
    assert x[-1] - x[0] == pytest.approx(3600 * REPLAY_SPEED * 1000.0, rel=0.05)  # a wall hour: 600 trace hours
    assert replay.site_title.startswith("Load and jobs, last hour (600 trace hours)")
    axes = replay.site_figure.layout
    assert axes.xaxis2.title.text == "trace time (replay ×600)" and not axes.xaxis.title.text  # bottom axis only
    live = render_history(reader, "?site=local&range=1h", now_s=NOW_S)
    assert live.hosts_figure.data[0].x[-1] == pytest.approx(NOW_S * 1000.0)
    assert "UTC" in {
        a.title.text
        for k, a in live.hosts_figure.layout.to_plotly_json().items()
        if k.startswith("xaxis")
        for a in [live.hosts_figure.layout[k]]
    }
