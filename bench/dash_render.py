"""Dash overview first render for 1,000 nodes × 24 h at 1-minute resolution, in headless Chromium:
from `driver.get` to the moment the site cards and the drill-down's CPU/memory figure have drawn.

- Store: a DuckDB store in a temporary directory, written through the real
  `DuckDBStore.append(Batch)`: 1,000 hosts of one site (`bench`, kind cloud) × 24 h at one sample
  a minute, ending now, of the two series the drill-down draws (`node_cpu_busy_ratio`,
  `node_memory_used_ratio`; labels site/host), each host with its own level, daily swing, phase
  and noise: 2.88 million samples.
- Server: the real service, `service.app.create_app(load_config(FILE), data_dir, collect=False,
  ui=True)` (config `sites: [{name: bench, kind: cloud}]`, no collectors), on uvicorn in a child
  process. No collector runs, so its lifespan is wrapped to hand the live twin each host's latest
  values once the store is open: the store's last sample of both series, plus CPU count, memory
  and load so the nodes table is full.
- Browser: Debian `chromium` + `chromedriver` via selenium, the options of
  tests/dashboards/test_overview_browser.py, a NEW browser with a FRESH profile for every run
  (empty HTTP and code caches: what a new user sees) opening `/?site=bench&range=24h`. "Rendered"
  is the tests' DOM waits (`check_overview` + `check_drilldown`): the bench card shows its load and
  data age, the continuum graph has drawn the site, the drill-down's title, nodes table and
  CPU/memory lines are in, and the figure spans the panel. A script installed before the page's
  own (CDP `Page.addScriptToEvaluateOnNewDocument`) stamps the moment each condition first holds,
  so the time is not inflated by WebDriver polling; the same waits polled from Python confirm it
  (`polled` column). Then a second load in the same browser gives the warm (cached) number.
- Points: every trace of both drill-down figures is read back from the page (`gd._fullData`), and
  the drill-down callback is also called over HTTP the way the browser calls it, its figure decoded
  (typed arrays included): no trace may carry more than 2,000 points.

One untimed load first warms the server (imports, DuckDB's caches); then `--runs` timed runs.

- Every other page (`dashboards.app.PAGES`: advice, what-if, hosts, models, export, containers…)
  over the same store and service, each opened as `/?view=NAME` plus the query in `PAGE_QUERY`
  (the hosts page on one of the 1,000 hosts over 24 h), `--runs` times in a new browser on a fresh
  profile. A page is "rendered" when its section is shown, the page has asked at least one
  callback and none is in flight, nothing is marked loading, and every graph on it has drawn at
  its full width; the time is the moment that last became true, once it has held for 1.5 s (so
  chained callbacks count). The hosts page's series for that host (CPU by mode, memory, disk,
  network, PSI: `HOST_SERIES`) are written for it too, 24 h at one a minute.

ratio = 2.5 s ÷ the slowest page's median cold render; target 1.0 (PASS when every page's median
cold render ≤ 2.5 s). There is no external peer for this one.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, machine_note, require_binary, result_line, stop_process, wait_http

NAME = "dash_render"
TARGET = 1.0
LIMIT_S = 2.5
MAX_POINTS = 2000
SITE = "bench"
RANGE = "24h"
CONFIG = f"sites: [{{name: {SITE}, kind: cloud, description: 'benchmark: 1,000 synthetic hosts'}}]\n"
CPU = "node_cpu_busy_ratio"
MEM = "node_memory_used_ratio"
CHROME_ARGS = (  # as tests/dashboards/test_overview_browser.py
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1400,2000",
)
# Component ids and attributes (dashboards/ids.py), spelled out so the bench reads on its own.
CARD_ATTR = "data-site"
CONTINUUM = "ctwin-continuum-graph"
DRILLDOWN = "ctwin-drilldown"
DRILL_HEAD = "ctwin-drilldown-head"
NODES_TABLE = "ctwin-nodes-table"
NODES_GRAPH = "ctwin-nodes-graph"
SITE_GRAPH = "ctwin-site-graph"

# Installed before the page's own scripts: records when each of the tests' DOM conditions first
# holds (performance.now(), ms since navigation start). Checked once per frame after DOM changes,
# just before that frame is painted, so the checks cost the page little and a mark is the frame
# that first showed it.
MARKS_JS = """
(() => {
  const site = %(site)s;
  const marks = {};
  window.__ctwinMarks = marks;
  const q = (s) => document.querySelector(s);
  const qa = (s) => Array.from(document.querySelectorAll(s));
  const checks = {
    cards: () => qa('[%(card)s]').some((e) => e.getAttribute('%(card)s') === site
      && e.textContent.includes('load') && (e.textContent.includes('ago') || e.textContent.includes('no data'))),
    continuum: () => qa('#%(continuum)s .scatterlayer .textpoint').some((e) => e.textContent.startsWith(site)),
    head: () => { const h = q('#%(head)s h2'); return !!h && h.textContent.includes(site); },
    table: () => qa('#%(table)s td[data-dash-column="host"]').length > 0,
    lines: () => qa('#%(graph)s .scatterlayer .trace path.js-line').length > 0,
    wide: () => {
      const svg = q('#%(graph)s .main-svg'), panel = document.getElementById('%(drill)s');
      return !!svg && !!panel && qa('#%(graph)s .scatterlayer .trace path.js-line').length > 0
        && svg.getBoundingClientRect().width > 0.8 * panel.getBoundingClientRect().width;
    },
  };
  const check = () => {
    const now = performance.now();
    for (const [name, ok] of Object.entries(checks)) {
      if (marks[name] === undefined && ok()) marks[name] = now;
    }
    if (Object.keys(checks).every((n) => marks[n] !== undefined)) {
      marks.done = Math.max(...Object.keys(checks).map((n) => marks[n]));
      observer.disconnect();
    }
  };
  let pending = false;
  const observer = new MutationObserver(() => {
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; check(); }); }
  });
  const start = () => observer.observe(document.documentElement, {childList: true, subtree: true,
    attributes: true, characterData: true});
  if (document.documentElement) start(); else document.addEventListener('readystatechange', start, {once: true});
})();
"""

# For the other pages: counts Dash's callback requests in flight (the renderer uses fetch) and
# stamps, once per frame after DOM changes, whether the page has settled; `settledAt` is when it
# last became settled, `since` how long it has held.
PAGE_MARKS_JS = """
(() => {
  const section = %(section)s;
  const state = {started: 0, inFlight: 0, settledAt: null};
  window.__ctwinPage = state;
  const realFetch = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = typeof input === 'string' ? input : (input && input.url) || '';
    if (!url.includes('_dash-update-component')) return realFetch(input, init);
    state.started += 1; state.inFlight += 1;
    const done = () => { state.inFlight -= 1; schedule(); };
    return realFetch(input, init).then((r) => { r.clone().text().then(done, done); return r; },
                                        (e) => { done(); throw e; });
  };
  const settled = () => {
    const root = document.getElementById(section);
    if (!root || getComputedStyle(root).display === 'none' || !root.getBoundingClientRect().width) return false;
    if (state.started === 0 || state.inFlight > 0) return false;
    if (document.querySelector('[data-dash-is-loading="true"]')) return false;
    const width = root.getBoundingClientRect().width;
    return Array.from(root.querySelectorAll('.js-plotly-plot')).every((g) => {
      const svg = g.querySelector('.main-svg');
      return g.getBoundingClientRect().width === 0 || (!!svg && svg.getBoundingClientRect().width > 0.5 * width);
    });
  };
  const check = () => {
    const ok = settled();
    if (ok && state.settledAt === null) state.settledAt = performance.now();
    if (!ok) state.settledAt = null;
  };
  let pending = false;
  const schedule = () => {
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; check(); }); }
  };
  const start = () => new MutationObserver(schedule).observe(document.documentElement,
    {childList: true, subtree: true, attributes: true, characterData: true});
  if (document.documentElement) start(); else document.addEventListener('readystatechange', start, {once: true});
})();
"""
PAGE_STATE_JS = """
const s = window.__ctwinPage;
return s ? {started: s.started, inFlight: s.inFlight, settledAt: s.settledAt, now: performance.now(),
            origin: performance.timeOrigin} : null;
"""
SETTLE_S = 1.5
PAGE_QUERY = {
    "hosts": f"&site={SITE}&host=n0000&range={RANGE}",
    "advice": "&cores=64&walltime=2h",
    "export": f"&site={SITE}&range={RANGE}",
    "whatif": f"&change=down&site={SITE}",  # a scenario run: both rankings, today and with the site down
    "models": f"&kind=advice&range={RANGE}",
}
"""What each page is opened with (its own URL state); a page not listed opens as `?view=NAME`."""


def host_series() -> list[tuple[str, dict[str, str], str]]:
    """One host's Node-Exporter-Full-style series for the hosts page, named by the catalog: (metric,
    labels, kind); kind "counter" grows, "total" is a constant, "gauge" moves under its total."""
    from telemetry.catalog import network as netm
    from telemetry.catalog import node as nm

    fs = {"mountpoint": "/", "device": "/dev/sda1", "fstype": "ext4"}
    return [
        *(
            (nm.CPU_SECONDS.name, {"cpu": str(c), "mode": m}, "counter")
            for c in range(4)
            for m in ("user", "system", "iowait", "idle")
        ),
        (nm.MEM_TOTAL.name, {}, "total"),
        *((m.name, {}, "gauge") for m in (nm.MEM_AVAILABLE, nm.MEM_CACHED, nm.MEM_BUFFERS, nm.MEM_FREE)),
        *(
            (m.name, {"device": d}, "counter")
            for d in ("sda", "nvme0n1")
            for m in (nm.DISK_READ_BYTES, nm.DISK_WRITTEN_BYTES, nm.DISK_IO_TIME)
        ),
        *((m.name, {"device": d}, "counter") for d in ("eth0", "ib0") for m in (netm.NET_RX_BYTES, netm.NET_TX_BYTES)),
        *((m.name, {}, "counter") for m in (nm.PSI_CPU_WAITING, nm.PSI_MEM_WAITING, nm.PSI_IO_WAITING)),
        (nm.FS_SIZE.name, fs, "total"),
        (nm.FS_AVAIL.name, fs, "gauge"),
    ]


# After the render: navigation and resource timings, and the points of every drill-down trace.
REPORT_JS = """
const nav = performance.getEntriesByType('navigation')[0];
const resources = performance.getEntriesByType('resource').map((r) => ({
  name: r.name, start: r.startTime, end: r.responseEnd, bytes: r.transferSize, body: r.decodedBodySize}));
const points = {};
for (const id of ['%(nodes)s', '%(site)s']) {
  const gd = document.querySelector('#' + id + ' .js-plotly-plot');
  const size = (t) => (t._length !== undefined && t._length !== null ? t._length : (t.x || []).length);
  points[id] = gd && gd._fullData
    ? gd._fullData.filter((t) => t.visible !== false).map((t) => ({type: t.type, n: size(t)})) : null;
}
return {origin: performance.timeOrigin, marks: window.__ctwinMarks || {}, resources, points,
  nav: nav ? {response: nav.responseEnd, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd} : null,
  plotly: window.Plotly ? window.Plotly.version : null};
"""


# ------------------------------------------------------------------------------ the store
def build_store(store_path: Path, hosts: int, hours: float, end_s: int, seed: int = 7) -> int:
    """Write `hosts` × `hours` of one-minute CPU and memory samples ending at `end_s` through
    `DuckDBStore.append`; returns the number of samples. Values are vectorised (numpy): per host a
    level, a daily swing with its own phase, and noise, so hosts and minutes all differ."""
    import numpy as np
    import polars as pl

    from telemetry.schema import Batch, canonical_labels
    from telemetry.stores.duckdb_store import DuckDBStore

    rng = np.random.default_rng(seed)
    minutes = int(hours * 60)
    ts_s = end_s - 60 * np.arange(minutes - 1, -1, -1, dtype=np.int64)  # oldest first, last = end_s
    day = 2 * np.pi * (ts_s % 86400) / 86400.0
    cpu_level, cpu_swing = rng.uniform(0.1, 0.7, hosts), rng.uniform(0.05, 0.3, hosts)
    mem_level, mem_swing = rng.uniform(0.2, 0.8, hosts), rng.uniform(0.02, 0.1, hosts)
    phase = rng.uniform(0, 2 * np.pi, hosts)
    cpu = cpu_level[:, None] + cpu_swing[:, None] * np.sin(day[None, :] + phase[:, None])
    cpu = np.clip(cpu + rng.normal(0, 0.05, (hosts, minutes)), 0.0, 1.0)
    mem = mem_level[:, None] + mem_swing[:, None] * np.cos(day[None, :] / 2 + phase[:, None])
    mem = np.clip(mem + np.cumsum(rng.normal(0, 0.002, (hosts, minutes)), axis=1), 0.02, 0.99)
    labels = np.array([canonical_labels({"site": SITE, "host": host_name(i)}) for i in range(hosts)])
    stamps = np.tile(ts_s * 1_000_000_000, hosts)
    frames = [
        pl.DataFrame(
            {
                "metric": pl.Series([metric], dtype=pl.String).new_from_index(0, hosts * minutes),
                "labels": np.repeat(labels, minutes),
                "value": values.ravel(),
                "ts_ns": stamps,
            }
        )
        for metric, values in ((CPU, cpu), (MEM, mem))
    ]
    batch = Batch(pl.concat(frames))
    store = DuckDBStore(store_path)
    try:
        store.append(batch)
    finally:
        store.close()
    return len(batch)


def add_host_series(store_path: Path, host: str, hours: float, end_s: int, seed: int = 11) -> int:
    """Write `host_series()` for one host, one sample a minute over `hours` ending at `end_s`."""
    import numpy as np
    import polars as pl

    from telemetry.schema import Batch, canonical_labels
    from telemetry.stores.duckdb_store import DuckDBStore

    rng = np.random.default_rng(seed)
    minutes = int(hours * 60)
    ts_ns = (end_s - 60 * np.arange(minutes - 1, -1, -1, dtype=np.int64)) * 1_000_000_000
    frames = []
    for metric, labels, kind in host_series():
        if kind == "counter":  # grows by a random rate each minute
            values = np.cumsum(rng.uniform(0.0, 60.0, minutes)) * rng.uniform(0.1, 1e6)
        elif kind == "total":
            values = np.full(minutes, 256.0 * 2**30)
        else:
            values = np.clip(rng.uniform(0.1, 0.9) + np.cumsum(rng.normal(0, 0.002, minutes)), 0.01, 0.99) * 256 * 2**30
        frames.append(
            pl.DataFrame(
                {
                    "metric": [metric] * minutes,
                    "labels": [canonical_labels({"site": SITE, "host": host, **labels})] * minutes,
                    "value": values,
                    "ts_ns": ts_ns,
                }
            )
        )
    batch = Batch(pl.concat(frames))
    store = DuckDBStore(store_path)
    try:
        store.append(batch)
    finally:
        store.close()
    return len(batch)


def host_name(i: int) -> str:
    return f"n{i:04d}"


# ------------------------------------------------------------------------------ the server (child)
def fill_twin(twin: Any, store: Any) -> int:
    """Hand the live twin each host's latest CPU and memory share from the store (as a collector's
    last batch would), with a CPU count, memory size and load derived from the host's number."""
    import polars as pl

    from telemetry.schema import Batch
    from telemetry.stores.base import Selection

    latest = store.latest(Selection(metrics=(CPU, MEM), labels={"site": SITE}))
    wide = (
        latest.with_columns(pl.col("labels").str.json_path_match("$.host").alias("host"))
        .pivot(on="metric", index=["labels", "host"], values="value")
        .join(latest.group_by("labels").agg(pl.col("ts_ns").max()), on="labels")
    )
    k = pl.col("host").str.slice(1).cast(pl.Int64)
    cpus = pl.when(k % 3 == 0).then(32.0).when(k % 3 == 1).then(64.0).otherwise(128.0)
    total = pl.when(k % 4 == 0).then(128.0).when(k % 4 == 1).then(256.0).otherwise(512.0) * 2.0**30
    extra = wide.with_columns(
        node_cpu_count=cpus,
        node_load1=pl.col(CPU) * cpus,
        node_memory_MemTotal_bytes=total,
        node_memory_MemAvailable_bytes=total * (1 - pl.col(MEM)),
    )
    metrics = [CPU, MEM, "node_cpu_count", "node_load1", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"]
    frame = extra.unpivot(on=metrics, index=["labels", "ts_ns"], variable_name="metric", value_name="value")
    twin.write(Batch(frame))
    return wide.height


def serve_child(args: argparse.Namespace) -> None:
    """Child-process mode: the real service app over the prepared store, until SIGTERM."""
    import uvicorn

    from service.app import create_app
    from service.config import load_config

    app = create_app(load_config(args.config), Path(args.data_dir), collect=False, ui=True)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            n = fill_twin(a.state.service.twin.state, a.state.service.store)
            print(f"twin: latest values of {n} hosts", flush=True)
            yield state

    app.router.lifespan_context = lifespan
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


@contextlib.contextmanager
def service(workdir: Path, config: Path, data_dir: Path) -> Iterator[str]:
    """The child server on a free port (its output in `workdir/serve.log`); yields its base URL."""
    port = free_port()
    log = workdir / "serve.log"
    argv = [sys.executable, __file__, "--serve", "--port", str(port), "--config", str(config)]
    argv += ["--data-dir", str(data_dir)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(url + "/readyz", 120.0, proc)
        except Exception:
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        yield url
    finally:
        stop_process(proc)


# ------------------------------------------------------------------------------ points on the wire
def _trace_points(trace: dict[str, Any]) -> int:
    """Points of one trace as sent: x is a list or a typed-array spec {dtype, bdata (base64)}."""
    x = trace.get("x")
    if isinstance(x, dict) and "bdata" in x:
        size = {"f8": 8, "f4": 4, "i4": 4, "u4": 4, "i2": 2, "u2": 2, "i1": 1, "u1": 1}[x["dtype"]]
        return len(base64.b64decode(x["bdata"])) // size
    return len(x) if isinstance(x, list) else 0


def wire_points(url: str, search: str) -> tuple[dict[str, list[int]], int, float]:
    """Call the callback that draws the drill-down's figures as the browser does (its inputs: the
    URL's query and the history clock); points per trace of each figure, the answer's size in
    bytes, and its time."""
    deps = httpx.get(url + "/_dash-dependencies", timeout=30).json()
    spec = next(d for d in deps if f"{NODES_GRAPH}.figure" in d["output"])
    outputs = [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True)) for o in spec["output"][2:-2].split("...")]
    inputs = [{**i, "value": search if i["property"] == "search" else None} for i in spec["inputs"]]
    body = {"output": spec["output"], "outputs": outputs, "inputs": inputs, "changedPropIds": [], "state": []}
    started = time.perf_counter()
    r = httpx.post(url + "/_dash-update-component", json=body, timeout=120)
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    answer = r.json()["response"]
    points = {
        graph: [_trace_points(t) for t in answer[graph]["figure"].get("data", [])]
        for graph in (NODES_GRAPH, SITE_GRAPH)
        if graph in answer
    }
    return points, len(r.content), elapsed


# ------------------------------------------------------------------------------ the browser
@dataclass
class Load:
    """One page load: seconds from the `driver.get` call to each milestone, and what was drawn."""

    render_s: float
    polled_s: float
    get_s: float
    milestones: dict[str, float]
    points: dict[str, list[int]]
    plotly: str | None
    script_s: float
    layout_s: float
    transferred: int
    fetched: list[tuple[str, float, int]]
    """Every fetch: file name, seconds, bytes over the wire; slowest first."""


def new_browser(profile: Path, performance_log: bool) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = require_binary("chromium")
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    prefs = {"browser": "SEVERE", **({"performance": "ALL"} if performance_log else {})}
    options.set_capability("goog:loggingPrefs", prefs)
    return webdriver.Chrome(service=Service(executable_path=require_binary("chromedriver")), options=options)


def _rendered(driver: Any) -> bool:
    """The tests' DOM waits (check_overview + check_drilldown), as one predicate."""
    from selenium.webdriver.common.by import By

    cards = [e for e in driver.find_elements(By.CSS_SELECTOR, f"[{CARD_ATTR}]") if e.get_attribute(CARD_ATTR) == SITE]
    if not cards or "load" not in cards[0].text or not ("ago" in cards[0].text or "no data" in cards[0].text):
        return False
    labels = driver.find_elements(By.CSS_SELECTOR, f"#{CONTINUUM} .scatterlayer .textpoint")
    if not any(e.text.startswith(SITE) for e in labels):
        return False
    heads = driver.find_elements(By.CSS_SELECTOR, f"#{DRILL_HEAD} h2")
    if not heads or SITE not in heads[0].text:
        return False
    if not driver.find_elements(By.CSS_SELECTOR, f'#{NODES_TABLE} td[data-dash-column="host"]'):
        return False
    if not driver.find_elements(By.CSS_SELECTOR, f"#{NODES_GRAPH} .scatterlayer .trace path.js-line"):
        return False
    panel = driver.find_element(By.ID, DRILLDOWN).size["width"]
    return bool(driver.find_element(By.CSS_SELECTOR, f"#{NODES_GRAPH} .main-svg").size["width"] > 0.8 * panel)


def load_page(driver: Any, page: str, timeout_s: float = 60.0) -> Load:
    """Open `page`, wait for the render, and collect its milestones, points and costs."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_cdp_cmd("Performance.enable", {})
    before = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
    called = time.time()
    driver.get(page)
    got = time.time()
    wait = WebDriverWait(driver, timeout_s, 0.02, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(_rendered, message="the page did not render")
    polled = time.time()
    after = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
    report = driver.execute_script(REPORT_JS % {"nodes": NODES_GRAPH, "site": SITE_GRAPH})
    marks: dict[str, float] = report["marks"]
    if "done" not in marks:  # the observer missed it (should not happen): fall back to the poll
        marks = {**marks, "done": (polled - report["origin"] / 1000) * 1000}

    def since_call(ms: float) -> float:
        return (report["origin"] + ms) / 1000 - called

    milestones = {name: since_call(ms) for name, ms in marks.items()}
    if report["nav"]:
        milestones.update({f"nav_{k}": since_call(v) for k, v in report["nav"].items()})
    callbacks = [r for r in report["resources"] if "_dash-update-component" in r["name"]]
    answered = [r["end"] for r in callbacks if r["end"] <= marks["done"]]
    if answered:  # the last callback answer before the render: the rest is the browser's own work
        milestones["answered"] = since_call(max(answered))
        milestones["first_sent"] = since_call(min(r["start"] for r in callbacks))
    resources = sorted(report["resources"], key=lambda r: r["end"] - r["start"], reverse=True)
    slowest = [
        (r["name"].rsplit("/", 1)[-1].split("?")[0], (r["end"] - r["start"]) / 1000, r["bytes"]) for r in resources
    ]
    points = {k: [p["n"] for p in v] for k, v in (report["points"] or {}).items() if v is not None}
    return Load(
        render_s=milestones["done"],
        polled_s=polled - called,
        get_s=got - called,
        milestones=milestones,
        points=points,
        plotly=report["plotly"],
        script_s=after.get("ScriptDuration", 0.0) - before.get("ScriptDuration", 0.0),
        layout_s=(after.get("LayoutDuration", 0.0) - before.get("LayoutDuration", 0.0))
        + (after.get("RecalcStyleDuration", 0.0) - before.get("RecalcStyleDuration", 0.0)),
        transferred=sum(int(r["bytes"] or 0) for r in report["resources"]),
        fetched=slowest,
    )


def measure(page: str, workdir: Path, run: int, performance_log: Path | None) -> tuple[Load, Load]:
    """A new browser on a fresh profile: one cold load, then one warm load of the same page."""
    profile = Path(tempfile.mkdtemp(prefix=f"profile-{run}-", dir=workdir))
    driver = new_browser(profile, performance_log is not None)
    try:
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {
                "source": MARKS_JS
                % {
                    "site": json.dumps(SITE),
                    "card": CARD_ATTR,
                    "continuum": CONTINUUM,
                    "head": DRILL_HEAD,
                    "table": NODES_TABLE,
                    "graph": NODES_GRAPH,
                    "drill": DRILLDOWN,
                }
            },
        )
        cold = load_page(driver, page)
        if performance_log is not None:
            performance_log.write_text("\n".join(json.dumps(e) for e in driver.get_log("performance")))
        driver.get("about:blank")
        warm = load_page(driver, page)
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if severe:
            raise SystemExit("the page logged errors:\n" + "\n".join(severe))
        return cold, warm
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class PageLoad:
    """One load of another page: seconds from `driver.get` to settled, and its callback count."""

    render_s: float
    callbacks: int


def load_other_page(driver: Any, page: str, timeout_s: float = 60.0) -> PageLoad:
    """Open `page` and wait until it has settled for SETTLE_S (PAGE_MARKS_JS)."""
    called = time.time()
    driver.get(page)
    deadline = time.monotonic() + timeout_s
    while True:
        state = driver.execute_script(PAGE_STATE_JS)
        if state and state["settledAt"] is not None and state["now"] - state["settledAt"] >= SETTLE_S * 1000:
            return PageLoad((state["origin"] + state["settledAt"]) / 1000 - called, int(state["started"]))
        if time.monotonic() > deadline:
            raise SystemExit(f"{page} did not settle in {timeout_s:.0f} s: {state}")
        time.sleep(0.05)


def measure_other(page: str, section: str, workdir: Path, run: int) -> PageLoad:
    """A new browser on a fresh profile, one cold load of another page."""
    profile = Path(tempfile.mkdtemp(prefix=f"profile-page-{run}-", dir=workdir))
    driver = new_browser(profile, False)
    try:
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": PAGE_MARKS_JS % {"section": json.dumps(section)}}
        )
        load = load_other_page(driver, page)
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if severe:
            raise SystemExit(f"{page} logged errors:\n" + "\n".join(severe))
        return load
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def describe(label: str, load: Load) -> str:
    m = load.milestones
    parts = [
        f"{label} {load.render_s:5.2f} s (polled {load.polled_s:.2f})",
        f"load event {m.get('nav_load', math.nan):.2f}",
        f"first callback sent {m.get('first_sent', math.nan):.2f}",
        f"last answered {m.get('answered', math.nan):.2f}",
        f"cards {m.get('cards', math.nan):.2f}",
        f"figure {m.get('lines', math.nan):.2f}",
        f"script {load.script_s:.2f} s, layout+style {load.layout_s:.2f} s",
        f"{load.transferred / 1e6:.2f} MB over the wire",
    ]
    return "; ".join(parts)


# ------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--runs", type=int, default=5, help="timed runs, each in a new browser with a fresh profile")
    ap.add_argument("--performance-log", type=Path, help="write the first cold run's DevTools log here (JSON lines)")
    ap.add_argument("--pages", help="comma-separated views of the other pages to time (default: all); '' for none")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_child(args)
        return
    require_binary("chromium")
    require_binary("chromedriver")
    print(machine_note())
    print(
        f"workload: /?site={SITE}&range={RANGE}, {args.hosts:,} hosts × {args.hours:g} h at 1 min "
        f"({args.hosts * int(args.hours * 60) * 2:,} samples of 2 series); headless Chromium, "
        f"{args.runs} runs, each a new browser on a fresh profile (cold, then warm)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ctwin-bench-dash-") as d:
        tmp = Path(d)
        config = tmp / "ctwin.yaml"
        config.write_text(CONFIG)
        data_dir = tmp / "data"
        from service.config import load_config

        store_path = load_config(config).store_path(data_dir)
        started = time.perf_counter()
        n = build_store(store_path, args.hosts, args.hours, int(time.time()) // 60 * 60)
        took = time.perf_counter() - started
        n_host = add_host_series(store_path, host_name(0), args.hours, int(time.time()) // 60 * 60)
        print(
            f"  store: {n:,} samples written in {took:.1f} s, and {n_host:,} of {host_name(0)}'s hosts-page series "
            f"({store_path.stat().st_size / 1e6:.0f} MB)"
        )
        with service(tmp, config, data_dir) as url:
            page = f"{url}/?site={SITE}&range={RANGE}"
            points, size, took = wire_points(url, f"?site={SITE}&range={RANGE}")
            print(f"  drill-down callback over HTTP: {size / 1e6:.2f} MB in {took:.2f} s; points per trace {points}")
            over = {g: p for g, p in points.items() if p and max(p) > MAX_POINTS}
            if over or not points.get(NODES_GRAPH):
                raise SystemExit(f"a trace carries more than {MAX_POINTS} points (or none was sent): {points}")
            first, _ = measure(page, tmp, 0, None)
            bundles = sorted({n for n, _, _ in first.fetched if "plotly" in n})
            print(
                f"  untimed warm-up (server's first page): {first.render_s:.2f} s; plotly.js {first.plotly} {bundles}"
            )
            colds: list[Load] = []
            warms: list[Load] = []
            for run in range(1, args.runs + 1):
                cold, warm = measure(page, tmp, run, args.performance_log if run == 1 else None)
                colds.append(cold)
                warms.append(warm)
                for load in (cold, warm):
                    drawn = {g: max(p) for g, p in load.points.items() if p}
                    if not drawn.get(NODES_GRAPH) or max(drawn.values()) > MAX_POINTS:
                        raise SystemExit(f"run {run}: points per trace in the page {load.points}")
                print(f"  run {run}: {describe('cold', cold)}", flush=True)
                print(f"         {describe('warm', warm)}", flush=True)
                fetches = ", ".join(f"{n} {s:.2f} s ({b / 1e3:,.0f} kB)" for n, s, b in cold.fetched[:4])
                print(f"         cold, slowest fetches: {fetches}")
            in_page = {g: max(p) for g, p in colds[0].points.items() if p}
            print(f"  largest trace drawn in the page: {in_page} points (cap {MAX_POINTS})")
            others = other_pages(args.pages)
            pages: dict[str, list[PageLoad]] = {}
            for view, section in others:
                link = f"{url}/?view={view}{PAGE_QUERY.get(view, '')}"
                measure_other(link, section, tmp, 0)  # untimed: the page's first request warms its code paths
                pages[view] = [measure_other(link, section, tmp, run) for run in range(1, args.runs + 1)]
                times = " ".join(f"{x.render_s:.2f}" for x in pages[view])
                print(f"  page {view}: cold {times} s ({pages[view][0].callbacks} callbacks)", flush=True)
    cold_s = statistics.median(x.render_s for x in colds)
    warm_s = statistics.median(x.render_s for x in warms)

    def med(loads: list[Load], key: str) -> float:
        return statistics.median(x.milestones.get(key, math.nan) for x in loads)

    print("\nresults (median of runs, seconds from driver.get):")
    for label, loads, total in (("cold", colds, cold_s), ("warm", warms, warm_s)):
        after = statistics.median(x.render_s - x.milestones.get("answered", math.nan) for x in loads)
        print(
            f"  {label}: rendered {total:.2f} (page load event {med(loads, 'nav_load'):.2f}, "
            f"cards {med(loads, 'cards'):.2f}, last callback answered {med(loads, 'answered'):.2f}, "
            f"figure {med(loads, 'lines'):.2f}: {after:.2f} s of browser work after the last answer); "
            f"script {statistics.median(x.script_s for x in loads):.2f} s"
        )
    print(f"  per-run cold: {' '.join(f'{x.render_s:.2f}' for x in colds)}")
    print(f"  per-run warm: {' '.join(f'{x.render_s:.2f}' for x in warms)}")
    slowest = cold_s
    print(f"\nfirst render per page (median cold, seconds; limit {LIMIT_S}):\n  overview: {cold_s:.2f}")
    for view, page_loads in pages.items():
        median = statistics.median(x.render_s for x in page_loads)
        slowest = max(slowest, median)
        print(f"  {view}: {median:.2f}")
    print(machine_note())
    print(result_line(NAME, LIMIT_S / slowest, TARGET))


def other_pages(chosen: str | None) -> list[tuple[str, str]]:
    """(view, section id) of every page but the overview, or of the `--pages` chosen."""
    from dashboards.app import PAGES

    known = {p.view: p.section_id for p in PAGES if p.view}
    if chosen is None:
        return list(known.items())
    views = [v.strip() for v in chosen.split(",") if v.strip()]
    unknown = [v for v in views if v not in known]
    if unknown:
        raise SystemExit(f"--pages: unknown {unknown}; the pages are {sorted(known)}")
    return [(v, known[v]) for v in views]


if __name__ == "__main__":
    main()
