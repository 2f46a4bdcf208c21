"""The what-if view in a real headless Chromium over a real twin (two sites replaying KTH SP2, a
cloud site) and its Advisor: a job moved by clicking the choices (the URL carries them), the
affected jobs and both rankings shown, a bad link answered with a message. Set
CTWIN_SCREENSHOT_DIR to keep a picture of the view."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards import ids
from dashboards.app import create_dash
from tests.dashboards.served import LOCAL_AND_KTH, served_twin
from tests.dashboards.test_overview_browser import _wait, click, driver, save_element_screenshot, serving  # noqa: F401
from tests.twin.whatif_helpers import Replayed, replayed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def twin() -> Replayed:
    return replayed()


@pytest.fixture(scope="module")
def url(twin: Replayed) -> Iterator[str]:
    with serving(create_dash(twin.twin, advisor=twin.advisor).server) as base:
        yield base + "/"


def _click(browser: Any, key: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'[{ids.WHATIF_ATTR}="{key}"]'), f"the choice {key}")
    click(browser, f'[{ids.WHATIF_ATTR}="{key}"]')


def _ranked(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        e.get_attribute(ids.WHATIF_SITE_ATTR)
        for e in browser.find_elements(By.CSS_SELECTOR, f"[{ids.WHATIF_SITE_ATTR}]")
    ]


def test_moving_a_job_by_clicking_shows_the_shifts_and_both_rankings(
    driver: Any,  # noqa: F811
    url: str,
    twin: Replayed,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "?view=whatif")
    _wait(
        driver, lambda d: {"today:kth", "today:kth2", "today:cloud"} <= set(_ranked(d)), "today's ranking", timeout=60
    )
    assert not driver.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed()
    assert driver.find_element(By.ID, ids.WHATIF_SUMMARY).text == "Choose a change above."

    _click(driver, "change=move")
    _click(driver, "from=kth")
    base = twin.twin.queues.base("kth")
    job = str(base.forecast.jobs.sort("predicted_wait_s", descending=True, nulls_last=True)["job_id"][0])
    _click(driver, f"job={job}")
    _click(driver, "to=kth2")
    _wait(driver, lambda d: f"job={job}" in d.current_url and "to=kth2" in d.current_url, "the URL to carry the move")
    table = f"#{ids.WHATIF_JOBS_TABLE} tr[{ids.WHATIF_JOB_ATTR}]"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, table), "the affected jobs", timeout=60)
    summary = driver.find_element(By.ID, ids.WHATIF_SUMMARY).text
    assert (
        summary.startswith(f"Scenario: move queued job {job} from kth to kth2.")
        and "job(s) affected at kth, kth2" in summary
    )
    moved = driver.find_element(By.CSS_SELECTOR, f'#{ids.WHATIF_JOBS_TABLE} tr[{ids.WHATIF_JOB_ATTR}="{job}"]').text
    assert "kth → kth2" in moved and "trace time" in moved
    _wait(driver, lambda d: any(k.startswith("scenario:") for k in _ranked(d)), "the scenario's ranking")
    today = driver.find_element(By.ID, f"{ids.WHATIF_RANKING}-today")
    scenario = driver.find_element(By.ID, f"{ids.WHATIF_RANKING}-scenario")
    assert today.location["y"] == scenario.location["y"]  # side by side
    assert today.location["x"] < scenario.location["x"]

    shots = Path(os.environ.get("CTWIN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    save_element_screenshot(driver, ids.WHATIF_VIEW, shots / "whatif-view.png")
    assert (shots / "whatif-view.png").stat().st_size > 10_000

    driver.get(url + "?view=whatif&change=nodes&site=kth&drain=5000")
    _wait(driver, lambda d: d.find_elements(By.ID, ids.WHATIF_ERROR), "the refusal")
    assert "leaves kth no CPU" in driver.find_element(By.ID, ids.WHATIF_ERROR).text


def test_the_served_page_drains_a_replayed_site_and_takes_it_down(
    driver: Any,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`ctwin serve` itself: the page gets the service's own Advisor (service/app.py)."""
    from selenium.webdriver.common.by import By

    with served_twin(LOCAL_AND_KTH, tmp_path_factory.mktemp("whatif-serve")) as served:
        driver.get(served.url + "?view=whatif&change=nodes&site=kth-sp2&drain=40")
        table = f"#{ids.WHATIF_JOBS_TABLE} tr[{ids.WHATIF_JOB_ATTR}]"
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, table), "the drained site's delayed jobs", timeout=60)
        rows = [e.text for e in driver.find_elements(By.CSS_SELECTOR, table)]
        # jobs wider than the 60 CPUs left never start (and no longer hold back the small ones behind them)
        assert sum("later" in row or "never starts" in row for row in rows) > len(rows) / 2, rows
        assert all("trace time (replay ×600)" in row for row in rows), rows
        driver.get(served.url + "?view=whatif&change=down&site=kth-sp2")
        cell = f'[{ids.WHATIF_SITE_ATTR}="scenario:kth-sp2"]'
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, cell), "the scenario's ranking", timeout=60)
        assert "excluded: down: taken down in this what-if" in driver.find_element(By.CSS_SELECTOR, cell).text
        today = driver.find_element(By.CSS_SELECTOR, f'[{ids.WHATIF_SITE_ATTR}="today:kth-sp2"]').text
        assert "taken down" not in today


def test_on_a_narrow_screen_the_view_never_scrolls_sideways(url: str, twin: Replayed) -> None:
    from selenium.webdriver.common.by import By

    from tests.browser import chromium

    job = str(twin.twin.queues.base("kth").forecast.jobs["job_id"][0])
    with chromium("--window-size=400,1800", logging_prefs={"browser": "SEVERE"}) as narrow:
        narrow.set_window_size(400, 1800)
        narrow.get(url + f"?view=whatif&change=move&from=kth&job={job}&to=kth2")
        cell = f'[{ids.WHATIF_SITE_ATTR}="scenario:kth2"]'
        _wait(narrow, lambda d: d.find_elements(By.CSS_SELECTOR, cell), "the scenario's ranking", timeout=60)
        scroll, inner = narrow.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"the what-if view scrolls sideways at 400 px: {scroll} > {inner}"
