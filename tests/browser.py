"""Headless Chromium for tests that must see what a page asks the network for.

Debian's `chromium` and `chromium-driver` through selenium, as tests/dashboards does; here with
Chromium's performance log on (every request the page makes) and optional extra flags, e.g. a
resolver that knows no host but 127.0.0.1, as on a machine without internet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import need_binary, servers_required

HINT = "apt-get install -y --no-install-recommends chromium chromium-driver"
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
"""Resolve no host but 127.0.0.1: a CDN is unreachable, as without internet."""


@contextmanager
def chromium(*extra_args: str, logging_prefs: dict[str, str] | None = None) -> Iterator[Any]:
    """A headless Chromium (skips without it, fails under CTWIN_REQUIRE_SERVERS); `logging_prefs`
    default: the performance log (every request) and the whole console."""
    chromium_path = need_binary("chromium", HINT)
    chromedriver = need_binary("chromedriver", HINT)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        msg = "selenium not installed (pip install selenium)"
        if servers_required():
            pytest.fail(msg + "; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
        pytest.skip(msg)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--disable-quic",
        "--no-proxy-server",
        "--window-size=1400,2000",
        *extra_args,
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", logging_prefs or {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def requested(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (Chromium's Network events)."""
    urls = []
    for entry in driver.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        if event.get("method") in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            params = event["params"]
            urls.append(params["request"]["url"] if "request" in params else params["url"])
    return urls
