"""The overview page in a real headless Chromium (Debian `chromium` + `chromium-driver`, selenium).

The checks are functions of a base URL, so the same ones can run against `ctwin serve`; here the
server is uvicorn in a thread serving `create_dash` over the in-test reader. (The mounted and
host-app ways of serving it are checked over HTTP in test_app.py; a browser is the slow part.)
Set CTWIN_SCREENSHOT=/path.png to keep a picture of the drilled-down page, and
CTWIN_FORECAST_SCREENSHOT=/path.png for the served replay's queue and forecast (or CTWIN_SCREENSHOT_DIR
for both, as scripts/test.sh does).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from dashboards import ids
from dashboards.app import TITLE, create_dash
from tests.browser import chromium
from tests.conftest import free_port
from tests.dashboards.served import served_twin
from tests.dashboards.twin_double import continuum

TIMEOUT_S = 10.0

pytestmark = pytest.mark.integration


# --- checks, reusable against any server that shows the overview -------------------------------


def _wait(driver: Any, predicate: Any, what: str, timeout: float = TIMEOUT_S) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Dash re-renders on its 5 s refresh: an element found a moment ago may be replaced: look again
    wait = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(predicate, message=f"timed out waiting for {what}")


def click(driver: Any, css: str, what: str | None = None, timeout: float = TIMEOUT_S) -> None:
    """Click the element `css` selects, finding it again if Dash replaced it between the find and
    the click (a page re-renders its choice links after each choice)."""
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True, what or f"a click on {css}", timeout)


def _graph_label(element: Any) -> str:
    """A site node's label in the graph reads "NAME" then "load 63 %" (two SVG text lines)."""
    return str(element.text).rsplit("load", 1)[0].strip()


def _cards(driver: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {e.get_attribute(ids.SITE_ATTR): e.text for e in driver.find_elements(By.CSS_SELECTOR, f"[{ids.SITE_ATTR}]")}


def check_overview(driver: Any, base_url: str, sites: set[str]) -> dict[str, str]:
    """Load the page; wait until a card for each of `sites` shows a load and a data age, and the
    continuum graph has drawn them. Returns each card's text."""
    from selenium.webdriver.common.by import By

    driver.get(base_url)
    assert driver.title == TITLE

    def filled(d: Any) -> dict[str, str] | None:
        cards = _cards(d)
        done = sites <= cards.keys() and all(
            "load" in cards[s] and ("ago" in cards[s] or "no data" in cards[s]) for s in sites
        )
        return cards if done else None

    cards: dict[str, str] = _wait(driver, filled, f"site cards {sorted(sites)}")
    graph = f"#{ids.CONTINUUM} .scatterlayer .textpoint"
    _wait(driver, lambda d: sites <= {_graph_label(e) for e in d.find_elements(By.CSS_SELECTOR, graph)}, "graph nodes")
    return cards


def check_drilldown(driver: Any, base_url: str, site: str) -> list[str]:
    """Click `site`'s card; wait for its nodes table and its CPU/memory figure. Returns the hosts
    on the table's first page."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'[{ids.SITE_ATTR}="{site}"]').click()
    _wait(driver, lambda d: f"site={site}" in d.current_url, f"URL to name {site}")
    _wait(driver, lambda d: site in d.find_element(By.CSS_SELECTOR, f"#{ids.DRILL_HEAD} h2").text, f"{site}'s title")
    cells = f'#{ids.NODES_TABLE} td[data-dash-column="host"]'
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, cells), f"{site}'s nodes table")
    lines = f"#{ids.NODES_GRAPH} .scatterlayer .trace path.js-line"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, lines), f"{site}'s CPU/memory figure")
    panel = driver.find_element(By.ID, ids.DRILLDOWN).size["width"]
    _wait(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f"#{ids.NODES_GRAPH} .main-svg").size["width"] > 0.8 * panel,
        "the figure to span the panel",
    )
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, cells)]


def check_graph_click(driver: Any, site: str) -> None:
    """Click `site`'s node in the continuum graph; the drill-down switches to it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    points = driver.find_elements(By.CSS_SELECTOR, f"#{ids.CONTINUUM} .scatterlayer .trace")
    target = next(
        p
        for trace in points
        for p, t in zip(
            trace.find_elements(By.CSS_SELECTOR, "path.point"),
            trace.find_elements(By.CSS_SELECTOR, ".textpoint"),
            strict=False,
        )
        if _graph_label(t) == site
    )
    ActionChains(driver).move_to_element(target).pause(0.1).click().perform()
    _wait(driver, lambda d: f"site={site}" in d.current_url, f"URL to name {site}")
    _wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#{ids.SITE_GRAPH} .scatterlayer .trace path.js-line"),
        f"{site}'s load figure",
    )


def check_range(driver: Any, site: str, range_: str, phrase: str) -> None:
    """Click the drill-down's `range_` link (e.g. "24h"): the URL keeps the site and names the
    range, the link is marked, and the CPU/memory figure is redrawn over that range."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'#{ids.RANGE} [{ids.RANGE_ATTR}="{range_}"]').click()
    _wait(driver, lambda d: f"site={site}" in d.current_url and f"range={range_}" in d.current_url, "URL with range")
    check_range_shown(driver, range_, phrase)


def check_range_shown(driver: Any, range_: str, phrase: str) -> None:
    """The range selector marks `range_` and the CPU/memory figure shows that window."""
    from selenium.webdriver.common.by import By

    _wait(
        driver,
        lambda d: (
            [e.text for e in d.find_elements(By.CSS_SELECTOR, f"#{ids.RANGE} a.selected")]
            == [range_.removesuffix("h") + " h"]
        ),
        f"the {range_} link to be marked",
    )
    _wait(driver, lambda d: phrase in d.find_element(By.ID, ids.NODES_GRAPH_TITLE).text, f"the {phrase} title")
    lines = f"#{ids.NODES_GRAPH} .scatterlayer .trace path.js-line"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, lines), "the figure over the new range")


def check_forecast(driver: Any, site: str) -> dict[str, Any]:
    """The drilled-down batch `site` shows its queue and forecast: the section is open, the queue
    table lists jobs with a predicted start, the Gantt figure has drawn its bars and the accuracy
    part says something (figures or "no forecast scored yet"). Returns what it saw."""
    from selenium.webdriver.common.by import By

    def cells(d: Any, column: str) -> list[str]:
        return [e.text for e in d.find_elements(By.CSS_SELECTOR, f'#{ids.QUEUE_TABLE} td[data-dash-column="{column}"]')]

    _wait(driver, lambda d: d.find_element(By.ID, ids.FORECAST_SECTION).size["height"] > 100, f"{site}'s forecast")
    jobs = _wait(driver, lambda d: cells(d, "job"), f"{site}'s queue table")
    starts = cells(driver, "start")
    bars = _wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#{ids.FORECAST_GRAPH} .barlayer .point path"),
        f"{site}'s forecast bars",
    )
    accuracy = _wait(driver, lambda d: d.find_element(By.ID, ids.ACCURACY_STATS).text, f"{site}'s forecast accuracy")
    # The load figure above must end where the section begins, not spill over the table: plotly's
    # resize on a site switch once left it 0 px tall with its drawing overflowing (overview.sized).
    spill = (
        "const svg = document.querySelector(arguments[0]); const top = document.getElementById(arguments[1]);"
        "return svg ? svg.getBoundingClientRect().bottom - top.getBoundingClientRect().top : 0;"
    )
    _wait(
        driver,
        lambda d: d.execute_script(spill, f"#{ids.SITE_GRAPH} .main-svg", ids.FORECAST_SECTION) <= 1,
        "the load figure to end above the forecast section",
    )
    return {"jobs": jobs, "starts": starts, "bars": len(bars), "accuracy": accuracy}


def check_advice(driver: Any, hook: str) -> dict[str, str]:
    """The drilled-down site's "Advice handed out here" shows a row for `hook` (its label, e.g.
    "ctwin sbatch"); returns that row's cells by column."""
    from selenium.webdriver.common.by import By

    def row(d: Any) -> dict[str, str] | None:
        table = d.find_elements(By.ID, ids.ADVICE_TABLE)
        if not table:
            return None
        head = [th.text for th in table[0].find_elements(By.CSS_SELECTOR, "thead th")]
        for tr in table[0].find_elements(By.CSS_SELECTOR, "tbody tr"):
            cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            if cells and cells[0] == hook:
                return dict(zip(head, cells, strict=True))
        return None

    return dict(_wait(driver, row, f"the advice table's {hook} row"))


def plotly_on_the_page(driver: Any) -> tuple[str | None, list[str]]:
    """`window.Plotly`'s version and the plotly bundles the page fetched (the vendored basic one
    only: Dash's full plotly.min.js is fetched only when no bundle defined `window.Plotly`)."""
    version, fetched = driver.execute_script(
        "return [window.Plotly ? window.Plotly.version : null,"
        " performance.getEntriesByType('resource').map((r) => r.name).filter((n) => n.includes('plotly'))];"
    )
    return version, [str(n).rsplit("/", 1)[-1].split("?")[0] for n in fetched]


def check_shared_link(driver: Any, base_url: str, site: str) -> None:
    """Open `?site=NAME` directly (a link someone shared): the page starts drilled down."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}?site={site}")
    _wait(
        driver, lambda d: site in d.find_element(By.CSS_SELECTOR, f"#{ids.DRILLDOWN} h2").text, f"{site}'s drill-down"
    )


def save_element_screenshot(driver: Any, element_id: str, path: Path) -> None:
    """A PNG of the whole element, however far it reaches below the window (Chrome's DevTools
    capture), once the figures have settled after the last refresh."""
    import base64

    time.sleep(1.0)  # a site switch re-lays out every figure; a shot taken meanwhile overlaps them
    x, y, width, height = driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];",
        element_id,
    )
    clip = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(png["data"]))


def severe_console_messages(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chromium(logging_prefs={"browser": "SEVERE"}) as browser:
        yield browser


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` on uvicorn in a thread, on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="dash-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """`create_dash(reader)` served on its own, at the root."""
    with serving(create_dash(continuum()).server) as url:
        yield url + "/"


# --- tests ---------------------------------------------------------------------------------------

SITES = {"hpc1", "local", "cloud-eu", "grid", "swf-replay"}


def test_overview_shows_every_site_and_drills_down(driver: Any, base_url: str) -> None:
    cards = check_overview(driver, base_url, SITES)
    assert "63 %" in cards["hpc1"] and "120 running · 45 pending" in cards["hpc1"]
    assert "stale" in cards["cloud-eu"] and "7 min ago" in cards["cloud-eu"] and "ReadTimeout" in cards["cloud-eu"]
    assert "down" in cards["grid"] and "no data yet" in cards["grid"] and "Connection refused" in cards["grid"]

    hosts = check_drilldown(driver, base_url, "local")
    assert hosts == ["edge-a", "edge-b", "this-host"]
    check_range_shown(driver, "1h", "last hour")
    check_range(driver, "local", "24h", "last 24 hours")
    shot = os.environ.get("CTWIN_SCREENSHOT")
    if shot:
        driver.save_screenshot(str(Path(shot)))
    if shots := os.environ.get("CTWIN_SCREENSHOT_DIR"):
        Path(shots).mkdir(parents=True, exist_ok=True)
        save_element_screenshot(driver, ids.OVERVIEW_VIEW, Path(shots) / "overview-drilldown.png")
    version, fetched = plotly_on_the_page(driver)
    assert version is not None and fetched == [f"plotly-basic-{version}.min.js"]

    check_graph_click(driver, "hpc1")
    forecast = check_forecast(driver, "hpc1")
    assert len(forecast["jobs"]) == 25 and forecast["bars"] == 45  # a page of the table, every job drawn
    assert forecast["starts"][:2] == ["now", "in 15 min"]  # next to start first
    assert "No forecast scored yet" in forecast["accuracy"]
    assert severe_console_messages(driver) == []


def test_a_shared_link_opens_drilled_down(driver: Any, base_url: str) -> None:
    check_shared_link(driver, base_url, "swf-replay")
    driver.get(f"{base_url}?site=local&range=6h")
    check_range_shown(driver, "6h", "last 6 hours")
    assert severe_console_messages(driver) == []


# --- the real service ----------------------------------------------------------------------------

SERVE_CONFIG = """
sites:
  - name: local
    kind: edge
    collectors: [{{type: node, interval: 1s}}]
  - name: kth-sp2
    kind: hpc
    collectors: [{{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 1s, speed: 600, start_offset: 30d}}]
  - name: broken
    kind: cloud
    collectors: [{{type: prometheus, url: "http://127.0.0.1:{port}/metrics", interval: 1s, timeout: 1s}}]
links:
  - {{between: [local, kth-sp2], bandwidth_gbps: 10, latency_ms: 30}}
"""


SERVED_TOKEN: list[str] = []


@pytest.fixture(scope="module")
def served_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ctwin serve` itself, as a user starts it; its first admin token is in `SERVED_TOKEN[0]`."""
    with served_twin(SERVE_CONFIG.format(port=free_port()), tmp_path_factory.mktemp("serve")) as served:
        SERVED_TOKEN[:] = [served.token]
        yield served.url


def test_served_page_shows_this_host_live_and_drills_down(driver: Any, served_url: str) -> None:
    import socket

    cards = check_overview(driver, served_url, {"local", "kth-sp2", "broken"})
    assert "%" in cards["local"].split("load")[0], cards["local"]  # a live CPU load, not a dash
    assert "down" in cards["broken"] and "Connection refused" in cards["broken"]
    assert "running" in cards["kth-sp2"] and "replay at" in cards["kth-sp2"]
    assert check_drilldown(driver, served_url, "local") == [socket.gethostname()]
    check_range(driver, "local", "24h", "last 24 hours")  # the real store, asked for a day
    check_graph_click(driver, "kth-sp2")
    forecast = check_forecast(driver, "kth-sp2")  # the replayed log's queue, simulated forward
    from selenium.webdriver.common.by import By

    _wait(  # the clock rule: a replayed site's history in its trace clock, named under the axis
        driver,
        lambda d: "trace time (replay ×600)" in d.find_element(By.ID, ids.SITE_GRAPH).text,
        "the replay's history labelled in its trace clock",
    )
    assert forecast["bars"] > 0 and all(s == "now" or s.startswith("in ") for s in forecast["starts"]), forecast
    assert "within ±1 h" in forecast["accuracy"] or "No forecast scored yet" in forecast["accuracy"]
    import httpx  # two answers through the Slurm wrapper's hook, one through the API: counted per hook

    auth = {"Authorization": f"Bearer {SERVED_TOKEN[0]}"}
    job = {"cores": 1, "walltime": "10m", "constraints": {"allowed_sites": ["kth-sp2"]}}
    for hook in ("sbatch", "sbatch", "api"):
        answer = httpx.post(f"{served_url}v1/advice", params={"hook": hook}, json=job, headers=auth, timeout=30)
        assert answer.status_code == 200 and answer.json()["recommended"] == "kth-sp2", answer.text
    sbatch = check_advice(driver, "ctwin sbatch")
    assert (sbatch["answers"], sbatch["submitted"], sbatch["ended"]) == ("2", "0", "0"), sbatch
    assert check_advice(driver, "REST API")["answers"] == "1"
    shot = os.environ.get("CTWIN_FORECAST_SCREENSHOT")
    if shot:
        save_element_screenshot(driver, ids.DRILLDOWN, Path(shot))
    if shots := os.environ.get("CTWIN_SCREENSHOT_DIR"):
        Path(shots).mkdir(parents=True, exist_ok=True)
        save_element_screenshot(driver, ids.DRILLDOWN, Path(shots) / "overview-served-forecast.png")
    assert severe_console_messages(driver) == []


# --- signing in ----------------------------------------------------------------------------------

SIGN_IN_CONFIG = """
auth: {open_endpoints: ["/healthz", "/readyz"]}
sites:
  - {name: local, kind: edge, collectors: []}
"""


def test_a_signed_in_browser_sends_no_token_to_another_local_server(
    driver: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Sign in at /login with an admin token, then open another server on 127.0.0.1: Chromium sends
    it the service's cookies (they are not kept apart by port), and they hold no token."""
    import httpx
    from selenium.webdriver.common.by import By

    from service.app import create_app
    from service.auth import TokenStore
    from service.config import parse_config
    from tests.service.test_sessions import cookie_recorder

    data = tmp_path_factory.mktemp("sign-in")
    loaded = parse_config(SIGN_IN_CONFIG)
    _, token = TokenStore(loaded.tokens_path(data)).create("root", ["admin"])
    app = create_app(loaded, data, collect=False)
    with serving(app) as service, cookie_recorder() as (other, received):
        driver.get(f"{service}/")
        _wait(driver, lambda d: "/login" in d.current_url, "the redirect to /login")
        field = driver.find_element(By.NAME, "token")
        field.send_keys(token)
        field.submit()
        _wait(driver, lambda d: d.title == TITLE, "the dashboard after signing in")
        driver.get(f"{other}/")
        _wait(driver, lambda d: received, "the other server to be visited")
        sent = received[0]
        try:
            assert sent, "the browser sent no cookie to the other port"
            assert token not in sent and token.split("_", 2)[2] not in sent, sent
            name = app.state.sessions.cookie_name
            assert sent.startswith(f"{name}="), sent  # what it sent is the service's session cookie
            value = sent.split(";")[0].partition("=")[2]
            assert httpx.get(f"{service}/v1/sites", headers={"Authorization": f"Bearer {value}"}).status_code == 401
            assert httpx.get(f"{service}/v1/export/jobs", cookies={name: value}).status_code == 401
        finally:
            driver.delete_all_cookies()
