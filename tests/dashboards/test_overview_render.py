"""The overview's render functions against the in-test reader: what a callback would put on the page."""

from __future__ import annotations

import dash
import pytest

from dashboards import ids
from dashboards.overview import (
    HIDDEN,
    HISTORY_WINDOW_S,
    SHOWN,
    render_click,
    render_drilldown,
    render_overview,
    selected_site,
)
from dashboards.parts import site_href
from tests.dashboards.dom import text, with_attr
from tests.dashboards.twin_double import NOW_S, FakeReader


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
    }
    assert out.hosts[1]["cpu"] is None  # no CPU sample yet: an empty cell, not a zero
    assert {t.name for t in out.hosts_figure.data} == {"edge-a", "edge-b", "this-host"}
    assert out.site_style == HIDDEN
    assert reader.history_calls == [("node", "local", NOW_S - HISTORY_WINDOW_S, NOW_S, 2000)]
    assert "local" in text(out.head) and "Collectors" in text(out.head)


def test_drill_down_into_a_batch_site_shows_load_and_jobs(reader: FakeReader) -> None:
    out = render_drilldown(reader, "?site=hpc1", now_s=NOW_S)
    assert out.hosts_style == HIDDEN and out.hosts == []
    assert out.site_style == SHOWN and out.site_title == "Load and jobs, last hour"
    assert {t.name for t in out.site_figure.data} == {"CPU allocated", "jobs running", "jobs pending"}


def test_a_replayed_site_shows_its_last_wall_hour_and_the_trace_instant(reader: FakeReader) -> None:
    out = render_drilldown(reader, "?site=swf-replay", now_s=NOW_S)
    assert reader.history_calls == [("site", "swf-replay", NOW_S - HISTORY_WINDOW_S, NOW_S, 2000)]
    assert out.site_title.endswith("(replay now at 2007-01-28 16:00 UTC)")


def test_drill_down_into_a_stale_site_shows_its_collectors_errors(reader: FakeReader) -> None:
    out = render_drilldown(reader, "?site=cloud-eu", now_s=NOW_S)
    head = text(out.head)
    assert "stale" in head and "kubelet" in head and "ReadTimeout" in head and "7 min ago" in head
    assert out.hosts_title == "Hosts (12)" and {r["state"] for r in out.hosts} == {"stale"}
    assert len(out.hosts_figure.data) == 6  # twelve hosts: mean and band per metric


def test_drill_down_without_or_with_an_unknown_site(reader: FakeReader) -> None:
    nothing = render_drilldown(reader, None, now_s=NOW_S)
    assert "Click a site card" in text(nothing.head)
    assert nothing.hosts_style == HIDDEN and nothing.site_style == HIDDEN
    unknown = render_drilldown(reader, "?site=atlantis", now_s=NOW_S)
    assert "There is no site named 'atlantis'" in text(unknown.head)
    assert reader.history_calls == []


def test_a_failing_history_read_is_shown_not_raised(reader: FakeReader) -> None:
    reader.history_error = OSError("store is closed")
    out = render_drilldown(reader, "?site=local", now_s=NOW_S)
    assert "history unavailable: OSError: store is closed" in out.hosts_figure.layout.annotations[0].text
    assert len(out.hosts) == 3  # the live values still show


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
