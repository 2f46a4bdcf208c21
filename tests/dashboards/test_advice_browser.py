"""The advice page in a real headless Chromium against `ctwin serve` itself (its Advisor, advice
log and store wired as a user gets them): fill the form, follow its link, see every site ranked as
stacked bars and in the table, change the objective and see the ranking follow the URL; the page's
previews stay out of the advice log, the answers the API hands out are listed there.
Set CTWIN_SCREENSHOT_DIR to keep a picture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dashboards import ids
from tests.conftest import free_port
from tests.dashboards.served import Served, served_twin
from tests.dashboards.test_overview_browser import (  # noqa: F401
    SERVE_CONFIG,
    _wait,
    click,
    driver,
    save_element_screenshot,
    severe_console_messages,
)

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_twin(SERVE_CONFIG.format(port=free_port()), tmp_path_factory.mktemp("advice")) as twin:
        yield twin


def _rows(d: Any, container: str, attr: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {e.get_attribute(attr): e.text for e in d.find_elements(By.CSS_SELECTOR, f"#{container} [{attr}]")}


def _bars(d: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, f"#{ids.ADVICE_GRAPH} .barlayer .point")


def _summary(d: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(d.find_element(By.ID, ids.ADVICE_SUMMARY).text)


def _query(d: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(d.current_url).query)


def test_the_form_asks_the_served_twin_and_the_ranking_follows_the_url(
    driver: Any,  # noqa: F811
    served: Served,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    driver.get(served.url + "?view=advice")
    _wait(driver, lambda d: "Fill in the job" in _summary(d), "the empty state before a job is asked", TIMEOUT_S)
    assert not driver.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed()
    assert "No advice handed out yet" in driver.find_element(By.ID, ids.ADVICE_LOG).text

    objective = driver.find_element(By.ID, f"{ids.ADVICE_FIELD}-objective")
    _wait(driver, lambda d: "turnaround" in objective.text, "the form filled from the URL (before typing)")
    for key, value in (("cores", "1"), ("walltime", "600"), ("input", "2")):
        box = driver.find_element(By.ID, f"{ids.ADVICE_FIELD}-{key}")
        box.clear()
        box.send_keys(value)
    submit = driver.find_element(By.ID, ids.ADVICE_SUBMIT)
    written = ("cores=1", "walltime=600", "input=2")
    _wait(driver, lambda d: all(w in str(submit.get_attribute("href")) for w in written), "the form in the link")
    submit.click()
    _wait(driver, lambda d: _query(d).get("cores") == ["1"], "the job in the URL")
    _wait(driver, lambda d: _summary(d).startswith("Recommended: "), "a recommendation", TIMEOUT_S)
    _wait(driver, lambda d: len(_bars(d)) >= 4, "stacked stage bars for the feasible sites", TIMEOUT_S)
    sites = _rows(driver, ids.ADVICE_RANKING, ids.ADVICE_SITE_ATTR)
    assert set(sites) == {"local", "kth-sp2", "broken"}, sites
    assert "excluded (down)" in sites["broken"] and list(sites)[-1] == "broken"  # feasible first
    assert "ranked by turnaround" in _summary(driver)
    assert "trace" in sites["kth-sp2"]  # the replay's predicted start also in its trace clock
    legend = driver.find_element(By.ID, ids.ADVICE_GRAPH).text
    assert all(stage in legend for stage in ("stage-in", "wait", "run", "stage-out", "p10–p90"))
    assert "No advice handed out yet" in driver.find_element(By.ID, ids.ADVICE_LOG).text  # a preview: not logged

    click(driver, f'#{ids.ADVICE_OBJECTIVES} [{ids.ADVICE_ATTR}="cost"]')
    _wait(driver, lambda d: _query(d).get("objective") == ["cost"], "the objective in the URL")
    _wait(driver, lambda d: "ranked by cost" in _summary(d), "the ranking by cost", TIMEOUT_S)
    assert _query(driver)["cores"] == ["1"] and _query(driver)["input"] == ["2"]  # the job kept
    _wait(driver, lambda d: "cost" in objective.text, "the form following the URL")

    job = {"cores": 1, "walltime": "10m", "objective": "cost"}  # what a scheduler hook hands out is logged
    for hook in ("sbatch", "api"):
        answer = httpx.post(f"{served.url}v1/advice", params={"hook": hook}, json=job, headers=served.auth, timeout=30)
        assert answer.status_code == 200, answer.text
    driver.refresh()
    _wait(driver, lambda d: len(_rows(d, ids.ADVICE_LOG, ids.ADVICE_ID_ATTR)) == 2, "the two answers in the log")
    newest, oldest = _rows(driver, ids.ADVICE_LOG, ids.ADVICE_ID_ATTR).values()
    assert "REST API" in newest and "cost" in newest and "ctwin sbatch" in oldest and "not reported" in oldest
    assert answer.json()["advice_id"] == next(iter(_rows(driver, ids.ADVICE_LOG, ids.ADVICE_ID_ATTR)))
    _wait(driver, lambda d: "ranked by cost" in _summary(d), "the ranking again after the reload", TIMEOUT_S)
    assert len(_rows(driver, ids.ADVICE_LOG, ids.ADVICE_ID_ATTR)) == 2  # the reload's preview added none

    shots = Path(os.environ.get("CTWIN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    save_element_screenshot(driver, ids.ADVICE_VIEW, shots / "advice-view.png")
    assert (shots / "advice-view.png").stat().st_size > 10_000

    driver.get(served.url + "?view=advice&cores=lots&walltime=600")  # a hand-edited link
    _wait(driver, lambda d: "cores must be a number" in _summary(d), "a message for bad input", TIMEOUT_S)
    assert severe_console_messages(driver) == []
