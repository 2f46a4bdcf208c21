"""The page shell: one nav link per page, the URL's `?view=` picks the page shown, and the clock
rule's wall ↔ trace mapping."""

from __future__ import annotations

import dataclasses

import pytest

from dashboards import ids
from dashboards.app import PAGES, create_dash
from dashboards.clocks import WALL, clock_of
from dashboards.pages import HIDDEN, SHOWN, shell, view_of
from tests.dashboards.dom import walk
from tests.dashboards.twin_double import continuum


def test_every_page_has_a_nav_link_and_a_section_and_only_the_overview_starts_shown() -> None:
    tree = list(walk(shell(PAGES)))
    links = {
        c.id: c.href
        for c in tree
        if getattr(c, "href", None) is not None and str(getattr(c, "id", "")).startswith(ids.VIEWS)
    }
    assert len(links) == len(PAGES) and "?" in links.values() and "?view=containers" in links.values()
    sections = {c.id: c.style for c in tree if getattr(c, "id", None) in {p.section_id for p in PAGES}}
    assert sections == {p.section_id: (SHOWN if not p.view else HIDDEN) for p in PAGES}
    assert len({p.view for p in PAGES}) == len(PAGES)  # one page per view name


def test_the_url_picks_the_page_and_an_unknown_view_falls_back_to_the_overview() -> None:
    app = create_dash(continuum())
    show = next(cb for key, cb in app.callback_map.items() if f"{ids.VIEWS}-overview.className" in key)
    outputs = show["callback"].__wrapped__
    assert view_of("?view=containers&x=1") == "containers" and view_of(None) == ""
    for search, chosen in (("?view=containers", "containers"), ("?site=local", ""), ("?view=nonsense", "")):
        answer = outputs(search)
        styles, marks = answer[: len(PAGES)], answer[len(PAGES) :]
        assert [p.view for p, s in zip(PAGES, styles, strict=True) if s == SHOWN] == [chosen]
        assert [p.view for p, m in zip(PAGES, marks, strict=True) if m == "current"] == [chosen]


def test_a_replayed_site_is_shown_in_its_trace_clock() -> None:
    site = next(s for s in continuum().sites() if s.is_replay)
    assert clock_of(None) is WALL and WALL.at(123.0) == 123.0 and WALL.name == "UTC"
    unknown = clock_of(dataclasses.replace(site, trace_wall_s=None))
    assert unknown.replay and not unknown.mapped and "not yet known" in unknown.name
    clock = clock_of(dataclasses.replace(site, trace_wall_s=1_000_000.0, trace_time_s=820_000_000.0, trace_speed=600.0))
    assert clock.at(1_000_000.0) == 820_000_000.0
    assert clock.at(1_000_060.0) == pytest.approx(820_036_000.0)  # a wall minute is ten trace hours
    assert clock.name == "trace time (replay ×600)" and clock.span_phrase(3600) == "600 trace hours"
