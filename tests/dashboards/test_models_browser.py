"""The models page in a real headless Chromium: the trained artefact's card, drift badges, the
accuracy line per kind and predicted vs realised on log axes, the choices in the URL. The twin,
Advisor, advice log and model registry are real (tests/dashboards/model_data.py); the realised
runtimes shift in the last quarter of the day, so the runtime alarm is up.
Set CTWIN_SCREENSHOT_DIR to keep a picture of the page."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards import ids
from dashboards.app import create_dash
from tests.dashboards.model_data import advised, trained_registry
from tests.dashboards.test_overview_browser import _wait, click, driver, save_element_screenshot, serving  # noqa: F401
from tests.dashboards.twin_double import continuum

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    now = time.time()
    t0 = now - 20 * 3600
    outcomes = [(t0 + 60 + i * 1700, 30.0, 7000.0 if t0 + i * 1700 < now - 6 * 3600 else 900.0) for i in range(40)]
    advisor, _ = advised(t0, outcomes)
    registry = trained_registry(tmp_path_factory.mktemp("models"))
    with serving(create_dash(continuum(), advisor=advisor, models=registry).server) as base:
        yield base + "/"


def _points(d: Any, graph: str) -> int:
    from selenium.webdriver.common.by import By

    return len(d.find_elements(By.CSS_SELECTOR, f"#{graph} .scatterlayer .point"))


def test_the_page_shows_cards_drift_and_accuracy_and_follows_the_url(driver: Any, url: str, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.get(url + "?view=models&kind=runtime&range=24h")
    _wait(driver, lambda d: _points(d, ids.MODELS_SCATTER) >= 40, "40 runtime pairs on the scatter", timeout=60)
    assert not driver.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed()
    card = driver.find_element(By.CSS_SELECTOR, f'#{ids.MODELS_CARDS} [{ids.MODELS_ATTR}="runtime"]').text
    assert "RuntimeQuantileRegressor" in card and "3,000 jobs of KTH-SP2" in card
    assert "No wait model trained yet" in driver.find_element(By.ID, ids.MODELS_CARDS).text
    badge = driver.find_element(By.CSS_SELECTOR, f'#{ids.MODELS_ALARMS} [{ids.MODELS_ATTR}="runtime"]').text
    assert badge.startswith("DRIFT")
    assert _points(driver, ids.MODELS_ACCURACY) > 3
    axis = driver.find_element(By.CSS_SELECTOR, f"#{ids.MODELS_SCATTER} .xtitle").text
    assert "log" in axis
    shots = Path(os.environ.get("CTWIN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    save_element_screenshot(driver, ids.MODELS_VIEW, shots / "models-view.png")
    assert (shots / "models-view.png").stat().st_size > 10_000

    click(driver, f'[{ids.MODELS_ATTR}="kind=wait"]')
    _wait(driver, lambda d: "kind=wait" in d.current_url, "the URL to carry the kind")
    _wait(driver, lambda d: "wait model predictions" in d.find_element(By.ID, ids.MODELS_SCATTER_NOTE).text, "wait")
    click(driver, f'[{ids.MODELS_ATTR}="range=6h"]')
    _wait(driver, lambda d: "range=6h" in d.current_url and "kind=wait" in d.current_url, "range kept with kind")
    _wait(driver, lambda d: "last 6h" in d.find_element(By.ID, ids.MODELS_ACCURACY_NOTE).text, "the 6 h window")

    driver.find_element(By.CSS_SELECTOR, f"#{ids.VIEWS} a[href='?']").click()
    _wait(driver, lambda d: d.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed(), "the overview back")
    assert not driver.find_element(By.ID, ids.MODELS_VIEW).is_displayed()


SERVE_CONFIG = """
sites:
  - name: kth-sp2
    kind: hpc
    collectors: [{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 1s, speed: 600, start_offset: 30d}]
"""


def test_served_page_says_no_model_then_shows_the_one_ctwin_models_train_wrote(
    driver: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`ctwin serve` as a user starts it: the page says no model is trained, then `ctwin models
    train` writes one into the service's model directory and the page shows its card (hot reload)."""
    import gzip
    import subprocess
    import sys

    from selenium.webdriver.common.by import By

    from tests.dashboards.served import served_twin

    lines = gzip.decompress((ROOT / "collectors" / "traces" / "KTH-SP2-1996-2.1-cln.swf.gz").read_bytes()).decode()
    body = [line for line in lines.splitlines() if line.strip() and not line.startswith(";")][:3000]
    log = tmp_path / "KTH-SP2-1996-2.1-cln.swf"
    log.write_text("\n".join([line for line in lines.splitlines() if line.startswith(";")] + body) + "\n")
    (tmp_path / "work").mkdir()
    with served_twin(SERVE_CONFIG, tmp_path / "work", settle_s=0.5) as served:
        driver.get(served.url + "?view=models")
        cards = lambda d: d.find_element(By.ID, ids.MODELS_CARDS).text  # noqa: E731
        _wait(driver, lambda d: "No runtime model trained yet" in cards(d), "the no-model empty state", timeout=60)
        assert "ctwin train" in cards(driver)
        scatter = driver.find_element(By.ID, ids.MODELS_SCATTER).text
        assert "no finished job joined yet" in scatter
        out = tmp_path / "work" / "data" / "models"
        train = [sys.executable, "-m", "service.cli", "train", "--log", str(log), "--out", str(out), "--json"]
        subprocess.run(train, check=True, capture_output=True, timeout=240)
        time.sleep(2.5)  # the registry looks again at most every 2 s
        driver.get(served.url + "?view=models&kind=runtime")
        _wait(driver, lambda d: "jobs of KTH-SP2" in cards(d), "the trained model's card", timeout=60)
        assert "RuntimeQuantileRegressor" in cards(driver) and "WaitQuantileRegressor" in cards(driver)
