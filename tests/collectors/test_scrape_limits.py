"""Per-scrape limits of the Prometheus scraper (issue 13, item 9), against a real HTTP server.

The incident: an exporter sent 480k series in 40 s, 64 KB label values, NUL bytes and 500 labels
on one sample, and everything went into the store. Here a local server (http.server, real
sockets, chunked and gzip bodies) serves each of those, and the scraper must refuse the scrape
with an error that names the limit and the numbers, count the refusal by limit, read no more
of a huge body than the limit, and still take the real node_exporter capture under the defaults.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from collectors.base import CollectorError, Recorder
from collectors.prometheus_scrape import PrometheusScrapeCollector, PrometheusScrapeConfig, ScrapeLimitError
from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from telemetry.pipeline import RunningCollector
from tests.conftest import FIXTURES

NODE_EXPORTER = gzip.decompress((FIXTURES / "prometheus" / "e2e-output.txt.gz").read_bytes())
GIB = 1 << 30


def _series(n: int) -> bytes:
    return ("# TYPE exploding gauge\n" + "".join(f'exploding{{id="{i}"}} 1\n' for i in range(n))).encode()


BODIES: dict[str, bytes] = {
    "/node": NODE_EXPORTER,
    "/480k": _series(480_000),
    "/2001": _series(2_001),
    "/500-labels": ("wide{" + ",".join(f'l{i}="v"' for i in range(500)) + "} 1\n").encode(),
    "/64k-value": b'ok 1\nlong{v="' + b"x" * 65_536 + b'"} 1\n',
    "/long-name": b"ok 1\nlong{" + b"n" * 300 + b'="v"} 1\n',
    "/nul": b'ok 1\nnul{v="a\x00b"} 1\n',
    "/latin-1": b'ok 1\nlatin{city="K\xf6ln"} 1\n',
}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a scraper hanging up is the point
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Exporter:
    """A hostile exporter on 127.0.0.1: fixed bodies, a 1 GiB stream, a 1 GiB Content-Length, a
    gzip bomb. `sent[path]` counts the body bytes it managed to send before the client hung up."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                exporter.sent[self.path] = 0
                try:
                    if self.path == "/1g-stream":
                        self._headers({"Transfer-Encoding": "chunked"})
                        line = b'filler{i="0"} 1\n' * 4096
                        chunk = b"%x\r\n%s\r\n" % (len(line), line)
                        while exporter.sent[self.path] < GIB:
                            self.wfile.write(chunk)
                            exporter.sent[self.path] += len(line)
                    elif self.path == "/1g-declared":
                        self._headers({"Content-Length": str(GIB)})
                        for _ in range(GIB // 65_536):
                            self.wfile.write(b"#" * 65_536)
                            exporter.sent[self.path] += 65_536
                    elif self.path == "/gzip-bomb":  # 100 MiB of zeros in about 100 KB
                        body = gzip.compress(b"# " + b"0" * (100 << 20) + b"\n", compresslevel=9)
                        self._headers({"Content-Length": str(len(body)), "Content-Encoding": "gzip"})
                        self.wfile.write(body)
                        exporter.sent[self.path] += len(body)
                    else:
                        body = BODIES[self.path]
                        self._headers({"Content-Length": str(len(body))})
                        self.wfile.write(body)
                        exporter.sent[self.path] += len(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scraper stopped reading: what these tests want

            def _headers(self, extra: dict[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    ex = Exporter()
    thread = threading.Thread(target=ex.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ex
    finally:
        ex.server.shutdown()
        ex.server.server_close()


def collector(exporter: Exporter, path: str, **options: object) -> PrometheusScrapeCollector:
    return PrometheusScrapeCollector(
        PrometheusScrapeConfig.model_validate({"url": exporter.url + path, "timeout_s": 30, **options})
    )


def refused(exporter: Exporter, path: str, **options: object) -> ScrapeLimitError:
    recorder = Recorder(strict=False)
    c = collector(exporter, path, **options)
    try:
        with pytest.raises(ScrapeLimitError) as info:
            c.gather(recorder)
    finally:
        c.close()
    assert recorder.samples == []  # the whole scrape fails, as in Prometheus
    assert str(info.value).startswith(exporter.url + path + ": "), str(info.value)
    return info.value


def test_the_real_node_exporter_capture_passes_the_defaults(exporter: Exporter) -> None:
    recorder = Recorder(strict=False)
    collector(exporter, "/node").gather(recorder)
    assert len(recorder.samples) > 500
    assert "node_cpu_seconds_total" in recorder.names()


def test_480k_series_fail_the_scrape_on_the_default_sample_limit_before_parsing(exporter: Exporter) -> None:
    started = time.perf_counter()
    err = refused(exporter, "/480k")
    assert err.limit == "sample_limit"
    assert "sample_limit exceeded: 480000 samples, the limit 100000" in str(err)
    assert time.perf_counter() - started < 3  # counted, not parsed (parsing them takes 5 s here)


def test_sample_limit_counts_what_include_keeps_and_0_means_none(exporter: Exporter) -> None:
    err = refused(exporter, "/2001", sample_limit=2000, include=["^exploding$"])
    assert "2001 samples, the limit 2000" in str(err)
    recorder = Recorder(strict=False)
    collector(exporter, "/2001", sample_limit=2000, exclude=["^exploding$"]).gather(recorder)
    assert recorder.samples == []  # excluded samples do not count
    collector(exporter, "/2001", sample_limit=0).gather(recorder)
    assert len(recorder.samples) == 2001


@pytest.mark.parametrize(
    ("path", "limit", "says"),
    [
        ("/500-labels", "label_limit", "label_limit exceeded: sample wide has 500 labels, the limit 64"),
        (
            "/64k-value",
            "label_value_length_limit",
            "label_value_length_limit exceeded: sample long label v has a value of 65536 bytes, the limit 4096",
        ),
        ("/long-name", "label_name_length_limit", "has a label name of 300 bytes (nnnn"),
    ],
)
def test_label_limits_fail_the_scrape_with_the_numbers(exporter: Exporter, path: str, limit: str, says: str) -> None:
    err = refused(exporter, path)
    assert err.limit == limit
    assert says in str(err)
    assert len(str(err)) < 400  # a 64 KB label stays out of the message


def test_label_limits_of_0_accept_what_the_defaults_refuse(exporter: Exporter) -> None:
    recorder = Recorder(strict=False)
    options = {"label_limit": 0, "label_value_length_limit": 0, "label_name_length_limit": 0}
    for path in ("/500-labels", "/64k-value", "/long-name"):
        collector(exporter, path, **options).gather(recorder)
    assert {s.metric for s in recorder.samples} == {"wide", "ok", "long"}


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/nul", "a NUL byte at line 2: 'nul{v=\"a\\x00b\"} 1'"),
        ("/latin-1", "response is not UTF-8 text: byte 0xf6 at line 2 is invalid (invalid start byte)"),
    ],
)
def test_nul_bytes_and_invalid_utf8_are_refused_with_their_line(exporter: Exporter, path: str, says: str) -> None:
    recorder = Recorder(strict=False)
    with pytest.raises(CollectorError) as info:
        collector(exporter, path).gather(recorder)
    assert says in str(info.value), str(info.value)
    assert recorder.samples == []


def test_a_1gib_stream_is_cut_at_the_body_size_limit(exporter: Exporter) -> None:
    started = time.perf_counter()
    err = refused(exporter, "/1g-stream", body_size_limit="8MiB")
    assert err.limit == "body_size_limit"
    assert f"body_size_limit exceeded: more than {8 << 20} bytes" in str(err)
    time.sleep(0.2)  # the server notices the closed socket
    assert exporter.sent["/1g-stream"] < 64 << 20  # nowhere near the gigabyte
    assert time.perf_counter() - started < 10


def test_a_declared_1gib_body_is_refused_before_reading_it(exporter: Exporter) -> None:
    err = refused(exporter, "/1g-declared")  # the default, 32 MiB
    assert f"body_size_limit exceeded: the body is {GIB} bytes, the limit {32 << 20}" in str(err)
    time.sleep(0.2)
    assert exporter.sent["/1g-declared"] < 16 << 20


def test_a_gzip_bomb_is_measured_after_decompression(exporter: Exporter) -> None:
    err = refused(exporter, "/gzip-bomb", body_size_limit="1MiB")
    assert err.limit == "body_size_limit" and f"more than {1 << 20} bytes" in str(err)


def test_refusals_are_the_collectors_error_and_counted_by_limit(exporter: Exporter) -> None:
    rc = RunningCollector(
        "edge/prometheus",
        collector(exporter, "/500-labels"),
        interval_s=1,
        timeout_s=10,
        labels={"site": "edge", "host": "h"},
    )
    rc.collect()
    batch = rc.collect()
    assert rc.stats.errors == 2 and rc.stats.limits_exceeded == {"label_limit": 2}
    assert "label_limit exceeded" in (rc.stats.last_error or "")
    counted = [s for s in batch.samples() if s.metric == "ctwin_scrape_limit_exceeded_total"]
    assert [(s.labels["collector"], s.labels["limit"], s.value) for s in counted] == [
        ("edge/prometheus", "label_limit", 2.0)
    ]
    rc.close()


SERVICE = """
sites:
  - name: edge
    kind: edge
    collectors:
      - {{type: prometheus, url: "{url}/500-labels", interval: 0.2s, timeout: 5s}}
"""


def test_the_service_shows_the_refusal_in_v1_sites_and_metrics(exporter: Exporter, tmp_path: object) -> None:
    loaded = parse_config(SERVICE.format(url=exporter.url))
    data = tmp_path
    _, token = TokenStore(loaded.tokens_path(data)).create("t", ["read"])  # type: ignore[arg-type]
    with TestClient(create_app(loaded, data, ui=False)) as client:  # type: ignore[arg-type]
        _until(lambda: "ctwin_scrape_limit_exceeded_total{" in client.get("/metrics").text)
        metrics = client.get("/metrics").text
        site = client.get("/v1/sites/edge", headers={"Authorization": f"Bearer {token}"}).json()
    line = next(ln for ln in metrics.splitlines() if ln.startswith("ctwin_scrape_limit_exceeded_total{"))
    assert 'collector="edge/prometheus"' in line and 'limit="label_limit"' in line and 'site="edge"' in line
    errors = [c["last_error"] for c in site["collectors"]]
    assert any("label_limit exceeded: sample wide has 500 labels, the limit 64" in (e or "") for e in errors), site


def _until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
