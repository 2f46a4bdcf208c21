"""Prometheus scrape collector: real expositions served through httpx.MockTransport (only the
transport is fake), the real Debian prometheus-node-exporter, and the failure paths."""

from __future__ import annotations

import gzip
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from collectors.base import CollectorError, Recorder
from collectors.prometheus_scrape import PrometheusScrapeCollector, PrometheusScrapeConfig
from telemetry.catalog import Metric
from tests.conftest import FIXTURES, free_port, need_binary

E2E = FIXTURES / "prometheus" / "e2e-output.txt.gz"
COREDNS = FIXTURES / "prometheus" / "coredns-1.1.0-excerpt.txt"


@dataclass
class Captured:
    """What the collector emitted, with the Metric objects (Recorder keeps only names)."""

    metric: Metric
    value: float
    labels: dict[str, str]
    ts_ns: int | None


class Capture:
    def __init__(self) -> None:
        self.items: list[Captured] = []

    def __call__(
        self, metric: Metric, value: float, labels: Mapping[str, str] | None = None, ts_ns: int | None = None
    ) -> None:
        self.items.append(Captured(metric, value, dict(labels or {}), ts_ns))

    def one(self, name: str, **labels: str) -> Captured:
        found = [i for i in self.items if i.metric.name == name and i.labels == labels]
        assert len(found) == 1, f"{len(found)} samples match {name} {labels}"
        return found[0]

    def names(self) -> set[str]:
        return {i.metric.name for i in self.items}


def served(body: bytes, status: int = 200, seen: list[httpx.Request] | None = None) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    return httpx.Client(transport=httpx.MockTransport(handler))


def scrape(body: bytes, **options: object) -> Capture:
    config = PrometheusScrapeConfig.model_validate({"url": "http://exporter.example:9100", **options})
    cap = Capture()
    PrometheusScrapeCollector(config, client=served(body)).gather(cap)
    return cap


# -- (a) real expositions through a mock transport --------------------------------------------------------


def test_node_exporter_e2e_exposition() -> None:
    seen: list[httpx.Request] = []
    config = PrometheusScrapeConfig(url="http://exporter.example:9100")
    cap = Capture()
    PrometheusScrapeCollector(config, client=served(gzip.decompress(E2E.read_bytes()), seen=seen)).gather(cap)

    assert str(seen[0].url) == "http://exporter.example:9100/metrics"
    assert seen[0].headers["Accept"].startswith("text/plain;version=0.0.4")
    assert len(cap.items) == 3027  # every sample in the file; the sample-less summary adds none

    cpu = cap.one("node_cpu_seconds_total", cpu="0", mode="idle")  # parser family: node_cpu_seconds
    assert (cpu.value, cpu.metric.type, cpu.metric.external) == (10870.69, "counter", True)
    assert cpu.metric.help == "Seconds the CPUs spent in each mode."
    assert cpu.ts_ns is None  # no exposition timestamp: the pipeline stamps it
    assert cap.one("node_context_switches_total").value == 3.8014093e07
    assert cap.one("node_disk_read_bytes_total", device="dm-0").value == 5.13708655616e11
    boot = cap.one("node_boot_time_seconds")
    assert (boot.value, boot.metric.type) == (1.418183276e09, "gauge")
    assert cap.one("node_memory_MemTotal_bytes").value == 3.831959552e09
    assert cap.one("node_load1").value == 0.21
    untyped = cap.one("testmetric1_1", foo="bar")  # no TYPE line: "unknown" → gauge
    assert (untyped.value, untyped.metric.type) == (10, "gauge")
    assert cap.one("node_scrape_collector_success", collector="cpu").value == 1


def test_a_scraped_node_exporter_lands_under_our_own_memory_names() -> None:
    """Our catalog's memory names are node_exporter's: a scrape and our node collector write the
    same series, so one query (and the hosts page) reads both."""
    from telemetry.catalog import node as nm

    cap = Capture()
    config = PrometheusScrapeConfig(url="http://exporter.example:9100")
    PrometheusScrapeCollector(config, client=served(gzip.decompress(E2E.read_bytes()))).gather(cap)
    scraped = {i.metric.name for i in cap.items}
    ours = {
        m.name
        for m in (nm.MEM_TOTAL, nm.MEM_FREE, nm.MEM_BUFFERS, nm.MEM_CACHED, nm.MEM_SHMEM, nm.SWAP_TOTAL, nm.SWAP_FREE)
    }
    assert ours <= scraped  # MemAvailable: the fixture's kernel predates it (PROVENANCE.md)
    assert cap.one(nm.MEM_TOTAL.name).value == 3.831959552e09
    assert len([i for i in cap.items if i.metric.name == "node_cpu_seconds_total"]) == 64
    assert not any(n.startswith("go_gc_duration_seconds") for n in cap.names())


def test_histogram_and_summary_keep_sample_names_and_labels() -> None:
    cap = scrape(COREDNS.read_bytes())
    bucket = cap.one("coredns_dns_request_duration_seconds_bucket", zone=".", le="0.00025")
    assert (bucket.value, bucket.metric.type) == (7.794767e06, "counter")
    assert cap.one("coredns_dns_request_duration_seconds_bucket", zone=".", le="+Inf").value == 8.219674e06
    total = cap.one("coredns_dns_request_duration_seconds_sum", zone=".")
    assert (total.value, total.metric.type) == (1440.4034843871038, "counter")
    assert cap.one("coredns_dns_request_duration_seconds_count", zone=".").value == 8.219674e06
    median = cap.one("go_gc_duration_seconds", quantile="0.5")
    assert (median.value, median.metric.type) == (0.000112345, "gauge")
    assert cap.one("go_gc_duration_seconds_sum").value == 2.738122256
    count = cap.one("go_gc_duration_seconds_count")
    assert (count.value, count.metric.type) == (14800, "counter")
    hits = cap.one("coredns_cache_hits_total", type="denial")
    assert (hits.value, hits.metric.type) == (8.051403e06, "counter")
    assert cap.one("coredns_build_info", goversion="go1.10", revision="c8d91500", version="1.1.0").value == 1
    assert len(cap.items) == 37  # every sample line of the excerpt


def test_prefix_include_exclude() -> None:
    body = gzip.decompress(E2E.read_bytes())
    cap = scrape(body, metric_prefix="ne_", include=["^node_cpu_"], exclude=["guest", "_info$"])
    # Counted in the file: 14 node_cpu_* names, 140 samples; minus guest (16) and 4 *_info names (21).
    assert cap.names() == {
        "ne_node_cpu_core_throttles_total",
        "ne_node_cpu_frequency_hertz",
        "ne_node_cpu_isolated",
        "ne_node_cpu_package_throttles_total",
        "ne_node_cpu_scaling_frequency_hertz",
        "ne_node_cpu_scaling_frequency_max_hertz",
        "ne_node_cpu_scaling_frequency_min_hertz",
        "ne_node_cpu_scaling_governor",
        "ne_node_cpu_seconds_total",
    }
    assert len(cap.items) == 140 - 16 - 21
    assert cap.one("ne_node_cpu_seconds_total", cpu="0", mode="idle").value == 10870.69


def test_exposition_timestamps_are_kept() -> None:
    # The example of the Prometheus "Exposition formats" documentation (text format section).
    body = (
        b"# HELP http_requests_total The total number of HTTP requests.\n"
        b"# TYPE http_requests_total counter\n"
        b'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
        b'http_requests_total{method="post",code="400"}    3 1395066363000\n'
    )
    cap = scrape(body)
    ok = cap.one("http_requests_total", method="post", code="200")
    assert (ok.value, ok.ts_ns) == (1027, 1395066363000 * 1_000_000)
    assert cap.one("http_requests_total", method="post", code="400").ts_ns == 1395066363000 * 1_000_000


# -- config ---------------------------------------------------------------------------------------------


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="url"):
        PrometheusScrapeConfig.model_validate({})
    with pytest.raises(ValidationError, match="timeout"):
        PrometheusScrapeConfig.model_validate({"url": "http://h:1", "timeout": 3})
    with pytest.raises(ValidationError, match="http"):
        PrometheusScrapeConfig.model_validate({"url": "ftp://h/metrics"})
    with pytest.raises(ValidationError, match="metric_prefix"):
        PrometheusScrapeConfig.model_validate({"url": "http://h:1", "metric_prefix": "9x"})
    config = PrometheusScrapeConfig.model_validate({"url": "http://h:1/custom", "timeout_s": "500ms"})
    assert (config.url, config.timeout_s) == ("http://h:1/custom", 0.5)
    assert PrometheusScrapeConfig(url="https://h:1/").url == "https://h:1/metrics"


def test_registered_under_its_name() -> None:
    from collectors import registry

    assert registry.get("prometheus") is PrometheusScrapeCollector


# -- (c) failures ----------------------------------------------------------------------------------------


def test_connection_refused_names_url_and_cause() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"  # bound then released: nothing listens
    collector = PrometheusScrapeCollector(PrometheusScrapeConfig(url=url, timeout_s=2))
    try:
        with pytest.raises(CollectorError, match=rf"^{url}: ConnectError: .*refused"):
            collector.gather(Recorder())
    finally:
        collector.close()


def test_http_500_names_url_and_status() -> None:
    url = "http://exporter.example:9100/metrics"
    client = served(b"collector failed: boom", status=500)
    collector = PrometheusScrapeCollector(PrometheusScrapeConfig(url=url), client=client)
    with pytest.raises(CollectorError, match=rf"^{url}: HTTP 500 Internal Server Error: .*boom"):
        collector.gather(Recorder())


def test_unparsable_text_emits_nothing() -> None:
    rec = Recorder()
    body = gzip.decompress(E2E.read_bytes())[:20000] + b"\n<html>502 Bad Gateway</html>\n"
    collector = PrometheusScrapeCollector(PrometheusScrapeConfig(url="http://x:1"), client=served(body))
    with pytest.raises(CollectorError, match=r"^http://x:1/metrics: unparsable exposition text"):
        collector.gather(rec)
    assert rec.samples == []


def test_headers_are_sent_but_not_in_errors() -> None:
    seen: list[httpx.Request] = []
    config = PrometheusScrapeConfig(url="http://x:1", headers={"Authorization": "Bearer s3cret"})
    collector = PrometheusScrapeCollector(config, client=served(b"oops", status=401, seen=seen))
    with pytest.raises(CollectorError) as info:
        collector.gather(Recorder())
    assert seen[0].headers["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in str(info.value)


def test_basic_auth_password_comes_from_a_file_reread_on_every_scrape(tmp_path: Path) -> None:
    import base64

    secret = tmp_path / "exporter.pass"
    secret.write_text("first-pass\n")
    seen: list[httpx.Request] = []
    config = PrometheusScrapeConfig.model_validate(
        {"url": "http://x:1", "basic_auth": {"username": "scraper", "password_file": str(secret)}}
    )
    collector = PrometheusScrapeCollector(config, client=served(b"up 1\n", seen=seen))
    collector.gather(Recorder())
    secret.write_text("rotated-pass")
    collector.gather(Recorder())
    sent = [base64.b64decode(r.headers["Authorization"].removeprefix("Basic ")).decode() for r in seen]
    assert sent == ["scraper:first-pass", "scraper:rotated-pass"]
    secret.unlink()
    with pytest.raises(CollectorError, match=rf"^basic_auth.password_file {secret}: cannot read: No such file"):
        collector.gather(Recorder())


def test_bearer_token_from_an_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    config = PrometheusScrapeConfig.model_validate({"url": "http://x:1", "bearer_token_env": "CTWIN_TEST_EXPORTER"})
    collector = PrometheusScrapeCollector(config, client=served(b"up 1\n", seen=seen))
    with pytest.raises(CollectorError, match=r"^bearer_token_env: environment variable CTWIN_TEST_EXPORTER is not set"):
        collector.gather(Recorder())
    assert seen == []  # never scraped anonymously
    monkeypatch.setenv("CTWIN_TEST_EXPORTER", "tok-from-env")
    collector.gather(Recorder())
    assert seen[0].headers["Authorization"] == "Bearer tok-from-env"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"basic_auth": {"username": "u"}}, "exactly one of password_file and password_env"),
        ({"basic_auth": {"username": "u", "password_file": "/f", "password_env": "E"}}, "exactly one"),
        ({"basic_auth": {"username": "u", "password": "inline"}}, "password"),  # no inline password
        ({"bearer_token_env": "not a name"}, "bearer_token_env"),
        ({"bearer_token_file": "/f", "bearer_token_env": "E"}, "not bearer_token_file and bearer_token_env"),
        ({"url": "http://u:p@x:1", "bearer_token_file": "/f"}, "not bearer_token_file and a user in the url"),
        ({"headers": {"authorization": "x"}, "bearer_token_env": "E"}, "an Authorization header"),
    ],
)
def test_one_way_to_authenticate(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        PrometheusScrapeConfig.model_validate({"url": "http://x:1", **options})


def test_a_password_in_the_url_still_works_but_never_shows(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    url = "http://scraper:hunter2@x:1/metrics?token=abc"
    collector = PrometheusScrapeCollector(PrometheusScrapeConfig(url=url), client=served(b"no", 503, seen))
    with pytest.raises(CollectorError) as info:
        collector.gather(Recorder())
    assert seen[0].headers["Authorization"].startswith("Basic ")  # httpx sends the URL's userinfo
    assert str(info.value).startswith("http://scraper:***@x:1/metrics?token=***: HTTP 503")


# -- (b) the real node exporter ---------------------------------------------------------------------------

TEXTFILE = (
    "# HELP ctwin_fake_gpu_temp_celsius Fake GPU temperature.\n"
    "# TYPE ctwin_fake_gpu_temp_celsius gauge\n"
    'ctwin_fake_gpu_temp_celsius{gpu="0"} 61.5\n'
    "# TYPE ctwin_fake_restarts counter\n"
    'ctwin_fake_restarts{host="gpu-node-7"} 3\n'
)


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"node exporter exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"node exporter did not answer {url} within {deadline_s}s: {log.read_text()[-2000:]}")


@pytest.fixture
def node_exporter(tmp_path: Path) -> Iterator[str]:
    binary = need_binary("prometheus-node-exporter", "apt-get install prometheus-node-exporter")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (textfiles / "fake.prom").write_text(TEXTFILE)
    port = free_port()
    log = tmp_path / "node_exporter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}", "--no-collector.systemd",
             f"--collector.textfile.directory={textfiles}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        _wait_until_up(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.integration
def test_real_node_exporter(node_exporter: str) -> None:
    def scrape_live(**options: object) -> Capture:
        config = PrometheusScrapeConfig.model_validate({"url": node_exporter, **options})
        collector = PrometheusScrapeCollector(config)
        cap = Capture()
        try:
            collector.gather(cap)
        finally:
            collector.close()
        return cap

    cap = scrape_live()
    temp = cap.one("ctwin_fake_gpu_temp_celsius", gpu="0")
    assert (temp.value, temp.metric.type) == (61.5, "gauge")
    # Declared without _total: the exporter's name is kept (the parser alone would say _total).
    restarts = cap.one("ctwin_fake_restarts", exported_host="gpu-node-7")
    assert (restarts.value, restarts.metric.type) == (3, "counter")
    cpu = [i for i in cap.items if i.metric.name == "node_cpu_seconds_total"]
    assert cpu and all(i.metric.type == "counter" and {"cpu", "mode"} <= set(i.labels) for i in cpu)
    assert {i.labels["quantile"] for i in cap.items if i.metric.name == "go_gc_duration_seconds"} == {
        "0",
        "0.25",
        "0.5",
        "0.75",
        "1",
    }
    assert cap.one("go_gc_duration_seconds_count").metric.type == "counter"

    honored = scrape_live(honor_labels=True, include=["^ctwin_"])
    assert honored.one("ctwin_fake_restarts", host="gpu-node-7").value == 3
    assert honored.names() == {"ctwin_fake_gpu_temp_celsius", "ctwin_fake_restarts"}
