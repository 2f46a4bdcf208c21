"""`/docs` without the internet (issue 13, item 11), in a real headless Chromium.

FastAPI's own pages load Swagger UI from a CDN, so offline `/docs` was a blank page. Here Chromium
resolves no host but 127.0.0.1 (`--host-resolver-rules`), as on a machine without internet, and
records every request the page makes (its performance log): the operations must render, and no
request may go anywhere but the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from service.app import create_app
from service.config import parse_config
from tests.browser import OFFLINE, chromium, requested
from tests.conftest import free_port

CONFIG = """
sites:
  - {name: local, kind: edge, collectors: []}
"""

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def offline_browser() -> Iterator[Any]:
    """Headless Chromium that can reach 127.0.0.1 only, with its requests logged."""
    with chromium(OFFLINE) as driver:
        yield driver


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole app (API and the mounted Dash twin) on uvicorn in a thread, on a free port."""
    data: Path = tmp_path_factory.mktemp("docs")
    app = create_app(parse_config(CONFIG), data, collect=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait(driver: Any, css: str, timeout: float = 20.0) -> list[Any]:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found:
            return list(found)
        if time.monotonic() > deadline:
            shown = driver.find_element(By.TAG_NAME, "body").text[:300]
            raise AssertionError(f"no {css!r} on {driver.current_url} after {timeout:g}s; the page shows: {shown!r}")
        time.sleep(0.1)


def _offsite(urls: list[str], base: str) -> list[str]:
    return [u for u in urls if not u.startswith((base + "/", "data:", "blob:", "about:"))]


def test_swagger_ui_renders_every_operation_offline(offline_browser: Any, service_url: str) -> None:
    driver = offline_browser
    requested(driver)
    driver.get(f"{service_url}/docs")
    _wait(driver, ".swagger-ui .info .title")
    paths = {e.text.replace("\u200b", "") for e in _wait(driver, ".opblock .opblock-summary-path")}
    assert {"/v1/sites", "/v1/query", "/readyz"} <= paths, paths
    assert len(paths) >= 15
    assert "Continuum Twin" in driver.title
    urls = requested(driver)
    assert f"{service_url}/openapi.json" in urls
    assert _offsite(urls, service_url) == []


def test_the_oauth2_redirect_page_is_served_and_redoc_is_not(service_url: str) -> None:
    """ReDoc always loads its logo from cdn.redoc.ly: /redoc is gone rather than half offline."""
    import httpx

    page = httpx.get(f"{service_url}/docs/oauth2-redirect")
    assert page.status_code == 200 and "oauth2" in page.text.lower()
    assert httpx.get(f"{service_url}/redoc").status_code == 404
