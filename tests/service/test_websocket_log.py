"""No "No supported WebSocket library detected" flood (issue 13, item 11).

Dash 4.4's FastAPI backend advertises a WebSocket callback endpoint, so every page opened the
twin's renderer tries `ws://…/_dash-ws-callback` and retries it. uvicorn, finding neither
`websockets` nor `wsproto` (what `run.sh` installs has neither), logged two warnings per try: 99
pairs in 13 minutes. Here `ctwin serve` runs as `run.sh` installs it (both libraries hidden from
it), gets raw WebSocket upgrade requests and a real Chromium on the twin, and its log is read.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import chromium, requested
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.integration

CONFIG = """
sites:
  - {name: local, kind: edge, collectors: []}
"""
FLOOD = "No supported WebSocket library detected"


class Served:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`ctwin serve` in a subprocess that cannot import websockets or wsproto (as in run.sh's venv)."""
    work = tmp_path_factory.mktemp("ws")
    hide = work / "hide"
    for name in ("websockets", "wsproto"):
        (hide / name).mkdir(parents=True)
        (hide / name / "__init__.py").write_text(f"raise ImportError('{name} is hidden by the test')\n")
    config = work / "ctwin.yaml"
    config.write_text(CONFIG)
    port = free_port()
    log = work / "serve.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(ROOT)])}
    command = [sys.executable, "-m", "service.cli", "serve", "-c", str(config), "-d", str(work / "data")]
    with log.open("w") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], stdout=out, stderr=out, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, f"ctwin serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"ctwin serve did not get ready: {log.read_text()}"
            time.sleep(0.1)
        yield Served(url, log)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()


def _upgrade(url: str, path: str) -> bytes:
    """A WebSocket handshake as a browser sends it; returns the status line of the answer."""
    host, port = url.removeprefix("http://").split(":")
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {url}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).split(b"\r\n", 1)[0]


def test_the_twin_page_asks_for_no_websocket(served: Served) -> None:
    from selenium.webdriver.common.by import By

    before = served.text()
    with chromium() as driver:
        driver.get(served.url + "/")
        deadline = time.monotonic() + 20
        while not driver.find_elements(By.CSS_SELECTOR, "[data-site]"):
            assert time.monotonic() < deadline, "the twin did not render"
            time.sleep(0.1)
        time.sleep(3)  # the renderer's WebSocket worker starts after the first render, and retries
        urls = requested(driver)
    assert [u for u in urls if u.startswith("ws") or "_dash-ws" in u] == [], urls
    logged = served.text()[len(before) :]
    assert "WebSocket" not in logged and "upgrade" not in logged, logged


def test_upgrade_requests_are_answered_as_http_and_logged_once(served: Served) -> None:
    statuses = [_upgrade(served.url, path) for path in ["/_dash-ws-callback"] * 5 + ["/v1/sites", "/"]]
    assert all(s.startswith(b"HTTP/1.1 ") and b" 101 " not in s for s in statuses), statuses  # no switch
    time.sleep(0.5)
    log = served.text()
    assert FLOOD not in log, log
    assert log.count("Unsupported upgrade request") == 1, log
    assert "the service has no WebSocket endpoint" in log
