"""The real Debian Prometheus server scrapes `ctwin serve`, and a node metric comes back through
Prometheus' HTTP query API with the value our own `/v1/nodes` reports.

`ctwin serve` runs as a subprocess (the README's run command, Dash UI included) on a free port with
a config holding only the `local` site's node collector at a 1 s interval; Prometheus 2.42 (Debian
`prometheus`) scrapes its `/metrics` every second, with its TSDB in the test's temporary directory.
Prometheus' discovery hands targets over in 5 s batches (no flag changes that), so the first sample
is queryable after about 5-6 s: every wait is a bounded poll, never a fixed sleep. Both processes
are stopped by their PID in `finally`; ctwin must exit 0 on SIGTERM after its final flush.
Skips without `prometheus` unless CTWIN_REQUIRE_SERVERS=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.auth import TokenStore
from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore
from tests.conftest import ROOT, free_port, need_binary

HINT = "apt-get install -y --no-install-recommends prometheus  (or: scripts/install-system-deps.sh test)"
JOB = "ctwin"
START_DEADLINE = 60.0  # ctwin imports the whole stack (dash, polars, duckdb...) before it answers
SCRAPE_DEADLINE = 20.0  # first sample after ~5-6 s (discovery batches targets every 5 s)
STOP_DEADLINE = 20.0  # uvicorn's graceful shutdown is 10 s, then the final flush

CONFIG = """\
sites:
  - name: local
    kind: edge
    collectors:
      - {type: node, interval: 1s}
"""

PROMETHEUS_YML = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {job}
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""

SERVE_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

pytestmark = pytest.mark.integration


def serve_argv(port: int, config: Path, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "-c", str(config), "-d", str(data_dir)]


def poll(what: str, step: Callable[[], Any], deadline_s: float, interval_s: float = 0.2) -> Any:
    """Call `step` until it returns something truthy (returned); fail after `deadline_s`."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = step()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {deadline_s:g}s waiting for {what} (last: {last!r})")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """SIGTERM this one process, wait; SIGKILL only if it hangs. Its exit code (None if killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


@contextlib.contextmanager
def started(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent, env=env)
    try:
        yield proc
    finally:
        stop(proc, STOP_DEADLINE)


def answers(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"{proc.args!r} exited with {proc.returncode} before {url} answered:\n{tail(log)}")
    try:
        return httpx.get(url, timeout=2.0).is_success
    except httpx.HTTPError:
        return False


def promql(base: str, query: str) -> list[dict[str, Any]]:
    """The instant-vector result of `query` (empty while nothing matches)."""
    r = httpx.get(f"{base}/api/v1/query", params={"query": query}, timeout=5.0)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    assert body["data"]["resultType"] == "vector", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_ctwin_serve(tmp_path: Path) -> None:
    prometheus = need_binary("prometheus", HINT)
    data_dir = tmp_path / "data"
    config = tmp_path / "ctwin.yaml"
    config.write_text(CONFIG)
    _, token = TokenStore(data_dir / "tokens.json").create("prom-test", ["read"])
    port, prom_port = free_port(), free_port()
    ctwin_url, prom_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}"
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    (prom_dir / "prometheus.yml").write_text(PROMETHEUS_YML.format(job=JOB, port=port))
    ctwin_log, prom_log = tmp_path / "ctwin.log", prom_dir / "prometheus.log"
    ctwin_exit: int | None = None
    t0 = time.monotonic()
    with started(serve_argv(port, config, data_dir), ctwin_log, SERVE_ENV) as ctwin:
        try:
            poll("ctwin /readyz", lambda: answers(f"{ctwin_url}/readyz", ctwin, ctwin_log), START_DEADLINE)
            ready_s = time.monotonic() - t0
            argv = [
                prometheus,
                f"--config.file={prom_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ]
            with started(argv, prom_log) as prom:
                poll("prometheus /-/ready", lambda: answers(f"{prom_url}/-/ready", prom, prom_log), 15)
                t1 = time.monotonic()
                try:
                    found = poll(
                        "node_memory_MemTotal_bytes{site=local} in Prometheus",
                        lambda: promql(prom_url, 'node_memory_MemTotal_bytes{site="local"}'),
                        SCRAPE_DEADLINE,
                    )
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}\nprometheus log:\n{tail(prom_log)}\nctwin log:\n{tail(ctwin_log)}"
                    ) from None
                print(f"ctwin ready after {ready_s:.1f}s; first scraped sample after {time.monotonic() - t1:.1f}s")
                assert len(found) == 1, found
                series = found[0]
                assert series["metric"]["job"] == JOB
                assert series["metric"]["instance"] == f"127.0.0.1:{port}"
                host = series["metric"]["host"]
                in_prometheus = float(series["value"][1])

                r = httpx.get(
                    f"{ctwin_url}/v1/nodes",
                    params={"site": "local"},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5.0,
                )
                assert r.status_code == 200, r.text
                nodes = {(n["site"], n["host"]): n for n in r.json()["items"]}
                assert ("local", host) in nodes, (host, list(nodes))
                in_api = nodes["local", host]["mem_total_bytes"]
                assert in_api is not None and in_api > 0
                assert in_prometheus == pytest.approx(in_api, rel=1e-9)

                up = promql(prom_url, f'up{{job="{JOB}"}}')
                assert [float(s["value"][1]) for s in up] == [1.0], up
                duration = promql(prom_url, f'ctwin_collector_duration_seconds{{job="{JOB}"}}')
                assert [(s["metric"]["collector"], s["metric"]["site"]) for s in duration] == [("local/node", "local")]
                assert float(duration[0]["value"][1]) >= 0.0
                site_up = promql(prom_url, f'ctwin_site_up{{job="{JOB}",site="local"}}')
                assert [s["metric"]["kind"] for s in site_up] == ["edge"], site_up
                # ctwin's request histogram has seen Prometheus' own scrapes of /metrics
                scrapes = poll(
                    "ctwin's request histogram for /metrics",
                    lambda: promql(
                        prom_url,
                        f'ctwin_http_request_duration_seconds_count{{job="{JOB}",route="/metrics",status="200"}} > 0',
                    ),
                    10,
                )
                assert scrapes[0]["metric"]["method"] == "GET"
                assert stop(prom, STOP_DEADLINE) == 0, f"prometheus did not exit cleanly:\n{tail(prom_log)}"
        finally:
            ctwin_exit = stop(ctwin, STOP_DEADLINE)
    assert ctwin_exit == 0, f"ctwin serve exited with {ctwin_exit} on SIGTERM:\n{tail(ctwin_log)}"
    assert_flushed(ctwin_log, data_dir)


def test_serve_exits_zero_on_sigint_after_flushing(tmp_path: Path) -> None:
    """Ctrl-C: the same clean stop as SIGTERM (no Prometheus needed; API only, to be quick)."""
    data_dir, config, log = tmp_path / "data", tmp_path / "ctwin.yaml", tmp_path / "ctwin.log"
    config.write_text(CONFIG)
    port = free_port()
    with started([*serve_argv(port, config, data_dir), "--no-ui"], log, SERVE_ENV) as ctwin:
        poll("ctwin /readyz", lambda: answers(f"http://127.0.0.1:{port}/readyz", ctwin, log), START_DEADLINE)
        poll("a first node sample", lambda: b"node_memory_MemTotal_bytes{" in _metrics(port), 10)
        ctwin.send_signal(signal.SIGINT)
        try:
            code = ctwin.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            code = None
    assert code == 0, f"ctwin serve exited with {code} on SIGINT:\n{tail(log)}"
    assert_flushed(log, data_dir)


def _metrics(port: int) -> bytes:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0).content
    except httpx.HTTPError:
        return b""


def assert_flushed(log: Path, data_dir: Path) -> None:
    """The shutdown log line counts written samples, and the store (reopened) holds them."""
    flushed = re.search(r"stopped: (\d+) samples", log.read_text(errors="replace"))
    assert flushed and int(flushed.group(1)) > 0, f"no final flush in the log:\n{tail(log)}"
    store = DuckDBStore(data_dir / "ctwin.duckdb", read_only=True)
    try:
        assert store.count(Selection(metrics=("node_memory_MemTotal_bytes",), labels={"site": "local"})) > 0
    finally:
        store.close()
