"""The disk fills while the service ingests (issue 13, item 7).

Before: 12,190 samples the store refused were counted as written, `/readyz` stayed 200 and 275
tracebacks flooded the log. Here the real service (`create_app` with the lifespan `ctwin serve`
runs) keeps its data dir on a real 16 MB tmpfs and scrapes a local exporter ten times a second;
the test fills the disk, checks the counts, `/readyz`, `/metrics` and the log while the store
refuses, frees the space, and checks that the service recovered by itself and that every sample
it counted as written is in the store, once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import parse_config
from tests.conftest import fill_disk, small_tmpfs

SERIES = 1_000
RETRY_SAMPLES = 30_000
CONFIG = """
data_dir: {data}
pipeline: {{retry_samples: {retry}}}
sites:
  - name: local
    kind: edge
    collectors:
      - {{type: prometheus, url: "http://127.0.0.1:{port}/metrics", interval: 0.1s, timeout: 1s}}
"""


@pytest.fixture
def exporter() -> Iterator[int]:
    """A local exporter of SERIES gauges, new values on every scrape."""
    counter = iter(range(10**9))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            n = next(counter)
            body = "# TYPE ctwin_test_value gauge\n" + "".join(
                f'ctwin_test_value{{i="{i}"}} {n + i / SERIES}\n' for i in range(SERIES)
            )
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _until(what: str, predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_a_full_disk_is_counted_honestly_reported_once_and_recovered_from(
    tmp_path: Path, exporter: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with small_tmpfs(tmp_path / "disk", "16m") as disk:
        data = disk / "data"
        loaded = parse_config(CONFIG.format(data=data, retry=RETRY_SAMPLES, port=exporter))
        with TestClient(create_app(loaded, data, ui=False)) as client:
            pipeline = client.app.state.service.pipeline  # type: ignore[attr-defined]
            _until("the first samples written", lambda: pipeline.written_samples > 3 * SERIES)
            assert client.get("/readyz").status_code == 200
            caplog.clear()  # what starting up logged (e.g. the tmpfs's file modes tightened)

            ballast = disk / "ballast"
            fill_disk(ballast)  # the service keeps ingesting
            _until("/readyz to turn 503", lambda: client.get("/readyz").status_code == 503)
            body = client.get("/readyz").json()["error"]
            assert body["code"] == "not_ready"
            assert body["message"].startswith("store writes failing since "), body
            assert "No space left on device" in body["message"], body

            # while it lasts: several refused writes, nothing counted as written, memory bounded
            errors, written = pipeline.sink_errors, pipeline.written_samples
            _until("refused retries", lambda: pipeline.sink_errors >= errors + 2)
            _until("the retry backlog to overflow", lambda: pipeline.dropped_store > 0)
            assert pipeline.written_samples == written
            assert pipeline.durable.backlog_samples <= RETRY_SAMPLES
            metrics = client.get("/metrics").text
            assert _metric(metrics, "ctwin_store_healthy") == 0
            assert 0 < _metric(metrics, "ctwin_pipeline_retry_samples") <= RETRY_SAMPLES
            assert _metric(metrics, 'ctwin_pipeline_dropped_samples_total{reason="store_failed"}') > 0
            assert _metric(metrics, "ctwin_store_failing_since_timestamp_seconds") > time.time() - 60
            assert _metric(metrics, "ctwin_pipeline_written_samples_total") == written

            warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "store writes failing" in warnings[0].getMessage()
            assert "No space left on device" in warnings[0].getMessage()
            assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"

            ballast.unlink()  # an operator frees space; nobody restarts anything
            _until("/readyz to turn 200 again", lambda: client.get("/readyz").status_code == 200)
            _until("new samples written", lambda: pipeline.written_samples > written + 3 * SERIES)
            metrics = client.get("/metrics").text
            assert _metric(metrics, "ctwin_store_healthy") == 1
            assert _metric(metrics, "ctwin_pipeline_retry_samples") == 0
            recovered = [r.getMessage() for r in caplog.records if "succeed again" in r.getMessage()]
            assert len(recovered) == 1, recovered
            assert re.search(r"\d+ batches \(\d+ samples\) were held back; \d+ samples written on retry, \d+ dropped",
                             recovered[0]), recovered  # fmt: skip

        health = pipeline.health()  # after the final flush
        assert health["buffered_samples"] == 0 and health["store"]["retry_samples"] == 0
        # every sample taken in is either written or counted as dropped, and the store agrees
        assert pipeline.accepted_samples == pipeline.written_samples + pipeline.dropped_store
        con = duckdb.connect(str(data / "ctwin.duckdb"), read_only=True)
        try:
            stored, distinct = con.execute(
                "SELECT count(*), count(DISTINCT (series_id, ts_ns)) FROM samples"
            ).fetchone() or (0, 0)
        finally:
            con.close()
        assert stored == pipeline.written_samples == distinct  # all of it, once
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
