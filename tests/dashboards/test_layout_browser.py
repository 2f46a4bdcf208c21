"""Accessibility and layout in a real headless Chromium, at a phone's width and a desktop's: the
page never scrolls sideways (wide tables scroll inside their panel), the continuum graph fits, no
site label lies on a link's line, and no two labels cover each other. Set CTWIN_SCREENSHOT_DIR to
keep the pictures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards import ids
from dashboards.app import create_dash
from tests.browser import chromium
from tests.dashboards.test_overview_browser import _wait, save_element_screenshot, serving
from tests.dashboards.twin_double import continuum

pytestmark = pytest.mark.integration

GEOMETRY = """
const graph = document.getElementById(arguments[0]);
if (!graph || !graph.querySelector('.main-svg')) return null;
const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
const segments = [];
for (const path of graph.querySelectorAll('.scatterlayer .js-line')) {
  const pts = (path.getAttribute('d') || '').match(/-?[0-9.]+,-?[0-9.]+/g) || [];
  const m = path.getScreenCTM();
  const xy = pts.map(p => p.split(',').map(Number)).map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
  for (let i = 1; i < xy.length; i++) segments.push([...xy[i - 1], ...xy[i]]);
}
const sites = [...graph.querySelectorAll('.scatterlayer .trace text')].filter(t => t.textContent).map(box);
const links = [...graph.querySelectorAll('.annotation')].map(a => box(a.querySelector('rect.bg') || a));
return {sites, links, segments, plot: box(graph.querySelector('.main-svg')),
        page: [document.documentElement.scrollWidth, window.innerWidth]};
"""


def _crosses(seg: list[float], rect: list[float], pad: float = 1.0) -> bool:
    """Whether a line segment passes through a rectangle (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = seg
    left, top, right, bottom = rect[0] + pad, rect[1] + pad, rect[2] - pad, rect[3] - pad
    t0, t1, dx, dy = 0.0, 1.0, x1 - x0, y1 - y0
    for p, q in ((-dx, x0 - left), (dx, right - x0), (-dy, y0 - top), (dy, bottom - y0)):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving(create_dash(continuum()).server) as url:
        yield url + "/"


@pytest.mark.parametrize("width", [400, 1400])
def test_the_overview_fits_and_its_labels_stay_clear(base_url: str, width: int, tmp_path: Path) -> None:
    with chromium(f"--window-size={width},1800", logging_prefs={"browser": "SEVERE"}) as driver:
        driver.set_window_size(width, 1800)
        driver.get(base_url + "?site=swf-replay")
        _wait(
            driver,
            lambda d: len((d.execute_script(GEOMETRY, ids.CONTINUUM) or {"sites": []})["sites"]) >= 5,
            "the continuum graph's site labels",
            timeout=30,
        )
        geometry = driver.execute_script(GEOMETRY, ids.CONTINUUM)
        scroll_width, inner_width = geometry["page"]
        assert scroll_width <= inner_width, f"the page scrolls sideways at {width} px: {scroll_width} > {inner_width}"
        plot = geometry["plot"]
        assert plot[2] - plot[0] <= inner_width
        labels = geometry["sites"] + geometry["links"]
        links = len(continuum().links())
        assert len(geometry["links"]) == links and len(geometry["segments"]) >= links
        for label in geometry["sites"]:
            assert not any(_crosses(seg, label) for seg in geometry["segments"]), f"a site label on a line: {label}"
            assert plot[0] <= label[0] and label[2] <= plot[2] + 1, f"a site label cut at the edge: {label}"
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                assert not _overlap(a, b), f"labels cover each other at {width} px: {a} {b}"
        shots = Path(os.environ.get("CTWIN_SCREENSHOT_DIR") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        save_element_screenshot(driver, ids.CONTINUUM, shots / f"continuum-{width}px.png")
        assert (shots / f"continuum-{width}px.png").stat().st_size > 5_000


def test_the_crossing_check_sees_a_line_through_a_label() -> None:
    assert _crosses([0, 5, 20, 5], [5, 0, 10, 10]) and not _crosses([0, 20, 20, 20], [5, 0, 10, 10])
    assert _overlap([0, 0, 10, 10], [5, 5, 15, 15]) and not _overlap([0, 0, 10, 10], [11, 0, 20, 10])
