"""The hosts page in a real headless Chromium over a real twin whose store holds node_exporter's
e2e capture read by our collectors (tests/dashboards/host_capture.py): every panel drawn or saying
why not, the host chosen from the dropdown lands in the URL. Set CTWIN_SCREENSHOT_DIR to keep a
picture of the page."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards import ids
from dashboards.app import create_dash
from dashboards.hosts import host_query
from tests.dashboards.host_capture import HOST, SITE, capture_twin
from tests.dashboards.test_overview_browser import (  # noqa: F401
    _wait,
    click,
    driver,
    save_element_screenshot,
    serving,
    severe_console_messages,
)

pytestmark = pytest.mark.integration
OTHER = "n0001"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    twin, store = capture_twin(tmp_path_factory.mktemp("hosts"), time.time(), hosts=(HOST, OTHER), gpu=True)
    with serving(create_dash(twin).server) as base:
        yield base + "/"
    store.close()


def _traces(d: Any, graph: str) -> int:
    from selenium.webdriver.common.by import By

    return len(d.find_elements(By.CSS_SELECTOR, f"#{graph} .scatterlayer .trace"))


def _text(d: Any, element: str) -> str:
    from selenium.webdriver.common.by import By

    return str(d.find_element(By.ID, element).text)


def test_the_page_draws_every_panel_of_the_host(driver: Any, url: str, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.get(url + host_query(SITE, HOST))
    _wait(driver, lambda d: _traces(d, ids.HOSTS_CPU) == 8, "CPU by mode: 8 modes stacked", timeout=60)
    assert not driver.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed()
    assert _text(driver, ids.HOSTS_NOTE) == f"{HOST} at {SITE}, last hour; times in UTC."
    _wait(driver, lambda d: _traces(d, ids.HOSTS_MEMORY) == 4, "memory: used, buffers, cached, free")
    for graph in (ids.HOSTS_DISK, ids.HOSTS_NETWORK, ids.HOSTS_PSI, ids.HOSTS_FABRIC):
        _wait(driver, lambda d, g=graph: _traces(d, g) >= 2, f"{graph} drawn")
    _wait(driver, lambda d: _traces(d, ids.HOSTS_GPU) == 2, "the GPU busy and its memory used")
    assert "no containers reported on this host" in _text(driver, ids.HOSTS_CONTAINERS)
    mounts = driver.find_elements(By.CSS_SELECTOR, f"#{ids.HOSTS_FS} tr[{ids.HOSTS_ATTR}]")
    assert {m.get_attribute(ids.HOSTS_ATTR) for m in mounts} >= {"mount=/", "mount=/boot"}
    shots = Path(os.environ.get("CTWIN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    save_element_screenshot(driver, ids.HOSTS_VIEW, shots / "hosts-view.png")
    assert (shots / "hosts-view.png").stat().st_size > 20_000
    assert severe_console_messages(driver) == []


def test_choices_rewrite_the_url_and_the_panels_follow(driver: Any, url: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.get(url + host_query(SITE, HOST))
    _wait(driver, lambda d: _traces(d, ids.HOSTS_CPU) == 8, "CPU by mode", timeout=60)
    click(driver, f'[{ids.HOSTS_ATTR}="range=6h"]')
    _wait(driver, lambda d: "range=6h" in d.current_url, "the range in the URL")
    _wait(driver, lambda d: "last 6 hours" in _text(d, ids.HOSTS_NOTE), "the note on 6 h")
    driver.find_element(By.ID, ids.HOSTS_HOST).click()

    def option(d: Any) -> Any:
        return next((o for o in d.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == OTHER), None)

    _wait(driver, option, "the other host listed in the dropdown").click()
    _wait(driver, lambda d: f"host={OTHER}" in d.current_url and "range=6h" in d.current_url, "the host in the URL")
    _wait(driver, lambda d: _text(d, ids.HOSTS_NOTE).startswith(f"{OTHER} at {SITE}"), "the panels on the other host")
    _wait(driver, lambda d: "no GPU on this host" in _text(d, ids.HOSTS_GPU), "the other host has no GPU")


def test_the_overview_host_table_links_to_the_host_page(driver: Any, url: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver.get(url + f"?site={SITE}")
    link = f'#{ids.NODES_TABLE} a[href="{host_query(SITE, OTHER)}"]'
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, link), "the host's panels link in the hosts table")
    click(driver, link)
    _wait(driver, lambda d: d.find_element(By.ID, ids.HOSTS_VIEW).is_displayed(), "the hosts page")
    _wait(driver, lambda d: _text(d, ids.HOSTS_NOTE).startswith(f"{OTHER} at {SITE}"), "the linked host's panels")


def test_served_twin_draws_this_machine_from_its_own_node_collector(
    driver: Any,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`ctwin serve` as a user starts it, its `local` site collecting this machine every second: the
    page draws the host's CPU by mode and memory from what the service itself stored, and the
    panels it has no collector for say so."""
    from tests.conftest import free_port
    from tests.dashboards.served import served_twin
    from tests.dashboards.test_overview_browser import SERVE_CONFIG

    with served_twin(SERVE_CONFIG.format(port=free_port()), tmp_path_factory.mktemp("hosts-serve")) as served:
        driver.get(served.url + "?view=hosts&site=local&range=1h")
        _wait(driver, lambda d: _traces(d, ids.HOSTS_CPU) >= 3, "CPU by mode (user, system, idle at least)", timeout=60)
        _wait(driver, lambda d: _traces(d, ids.HOSTS_MEMORY) == 4, "memory: used, buffers, cached, free")
        assert _text(driver, ids.HOSTS_NOTE).endswith("at local, last hour; times in UTC.")
        assert "no GPU collector at this site" in _text(driver, ids.HOSTS_VIEW)
        assert severe_console_messages(driver) == []
