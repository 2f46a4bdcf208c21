"""The container-configuration view in a real headless Chromium: the what-if for one application
(bars with p10-p90 whiskers, choices in the URL) and predicted vs measured effects per factor.
Set CTWIN_SCREENSHOT_DIR to keep a picture of the view."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards import ids
from dashboards.app import create_dash
from dashboards.containers import render_whatif
from tests.dashboards.test_overview_browser import _wait, driver, save_element_screenshot, serving  # noqa: F401
from tests.dashboards.twin_double import continuum
from twin.advice.containers import ContainerEffects

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def effects() -> ContainerEffects:
    return ContainerEffects(None)


@pytest.fixture(scope="module")
def url(effects: ContainerEffects) -> Iterator[str]:
    with serving(create_dash(continuum(), containers=effects).server) as base:
        yield base + "/"


def _bars(d: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, f"#{ids.CONTAINERS_WHATIF} .barlayer .point")


def _labels(d: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in d.find_elements(By.CSS_SELECTOR, f"#{ids.CONTAINERS_WHATIF} .ytick text")]


def test_the_view_ranks_alternatives_and_follows_the_url(driver: Any, url: str, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.get(url + "?view=containers")
    _wait(driver, lambda d: len(_bars(d)) == 18, "18 what-if bars (6 container counts x 3 affinities)", timeout=60)
    assert not driver.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed()
    note = driver.find_element(By.ID, ids.CONTAINERS_WHATIF_NOTE).text
    assert note.startswith("Best:") and "built-in" in note
    assert any(label.endswith("(now)") and label.startswith("1 container/node") for label in _labels(driver))
    points = f"#{ids.CONTAINERS_FACTORS} .scatterlayer .point"
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, points)) > 10, "the factor chart", timeout=60)

    driver.find_element(By.CSS_SELECTOR, f'[{ids.CONTAINERS_ATTR}="containers per node now=8"]').click()
    _wait(driver, lambda d: "containers=8" in d.current_url, "the URL to carry the choice")
    _wait(
        driver,
        lambda d: any(t.startswith("8 containers/node") and t.endswith("(now)") for t in _labels(d)),
        "8 containers per node marked as now",
    )
    shots = Path(os.environ.get("CTWIN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    save_element_screenshot(driver, ids.CONTAINERS_VIEW, shots / "containers-view.png")
    assert (shots / "containers-view.png").stat().st_size > 10_000

    driver.find_element(By.CSS_SELECTOR, f"#{ids.VIEWS} a[href='?']").click()
    _wait(driver, lambda d: d.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed(), "the overview back")
    assert not driver.find_element(By.ID, ids.CONTAINERS_VIEW).is_displayed()


def test_a_hand_edited_link_falls_back_to_the_defaults(effects: ContainerEffects) -> None:
    _form, note, fig = render_whatif(effects, "?view=containers&containers=7&affinity=numa&batch=x")
    now = [t for t in fig.data[0].y if t.endswith("(now)")]
    assert now == ["1 container/node, affinity none (now)"] and note.startswith("Best:")


def test_served_twin_shows_the_view_from_its_own_model(
    driver: Any,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`ctwin serve` as a user starts it: the view ranks the alternatives with the service's own
    container-effect model (fitted from the shipped runs on first use) and marks the URL's choice."""
    from tests.conftest import free_port
    from tests.dashboards.served import served_twin
    from tests.dashboards.test_overview_browser import SERVE_CONFIG

    with served_twin(SERVE_CONFIG.format(port=free_port()), tmp_path_factory.mktemp("containers-serve")) as served:
        driver.get(served.url + "?view=containers&containers=4&affinity=cpu&batch=8")
        _wait(driver, lambda d: len(_bars(d)) == 18, "18 what-if bars from the served model", timeout=90)
        assert any(t.startswith("4 containers/node") and t.endswith("(now)") for t in _labels(driver))
