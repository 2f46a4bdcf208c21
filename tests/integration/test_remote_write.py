"""Prometheus remote write out: a real Prometheus (Debian 2.42, `--web.enable-remote-write-receiver`)
receives our samples through RemoteWriteTarget behind the spooled forwarder; it is stopped mid-run
and started again on the same TSDB, and every sample written, acknowledged or spooled, is there
with its labels and value. Skips without `prometheus` unless CTWIN_REQUIRE_SERVERS=1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from telemetry.forwarder import SpooledForwarder
from telemetry.remote_write import RemoteWriteTarget, encode_write_request
from telemetry.schema import Batch, Sample
from telemetry.spool import Spool
from tests.conftest import free_port, need_binary
from tests.integration.test_prometheus_scrape import HINT, answers, poll, started, tail

pytestmark = pytest.mark.integration

METRIC = "ctwin_rw_test_value"


@contextmanager
def prometheus(tmp_path: Path, port: int) -> Iterator[str]:
    binary = need_binary("prometheus", HINT)
    home = tmp_path / "prometheus"
    home.mkdir(exist_ok=True)
    (home / "prometheus.yml").write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    argv = [
        binary,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
        "--log.level=warn",
    ]
    log = home / f"prometheus-{time.monotonic_ns()}.log"
    url = f"http://127.0.0.1:{port}"
    with started(argv, log) as proc:
        poll("prometheus /-/ready", lambda: answers(f"{url}/-/ready", proc, log), 20)
        yield url


def _batch(i: int, now_ms: int) -> Batch:
    return Batch.from_samples(
        Sample(METRIC, float(i * 10 + k), {"site": "edge-1", "host": f"h{k}", "path": 'a "quoted" / path'}, ts_ns)
        for k in range(3)
        for ts_ns in [(now_ms - 600_000 + i * 1000) * 1_000_000]
    )


def _stored(url: str) -> dict[tuple[str, int], float]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": f"{METRIC}[1h]"}, timeout=10)
    r.raise_for_status()
    out = {}
    for series in r.json()["data"]["result"]:
        assert series["metric"]["path"] == 'a "quoted" / path' and series["metric"]["site"] == "edge-1"
        for ts, value in series["values"]:
            out[(series["metric"]["host"], round(float(ts) * 1000))] = float(value)
    return out


def test_samples_reach_prometheus_through_an_outage(tmp_path: Path) -> None:
    port = free_port()
    target = RemoteWriteTarget(f"http://127.0.0.1:{port}/api/v1/write", timeout_s=2.0)
    forwarder = SpooledForwarder(target, Spool(tmp_path / "spool", max_bytes=1 << 26), retry_min_s=0.2, retry_max_s=1.0)
    now_ms = int(time.time() * 1000)
    expected: dict[tuple[str, int], float] = {}

    def write(i: int) -> None:
        batch = _batch(i, now_ms)
        forwarder.write(batch)
        for row in batch.frame.iter_rows(named=True):
            expected[(json.loads(row["labels"])["host"], row["ts_ns"] // 1_000_000)] = row["value"]

    with prometheus(tmp_path, port) as url:
        forwarder.start()
        for i in range(20):
            write(i)
        assert target.written_samples == 60 and forwarder.connected
    # the receiver is down: batches go to the spool, in order
    for i in range(20, 40):
        write(i)
    assert not forwarder.connected and forwarder.spool.pending_samples == 60
    with prometheus(tmp_path, port) as url:
        poll("the spool replayed", lambda: forwarder.connected and forwarder.spool.pending_samples == 0, 30)
        for i in range(40, 50):
            write(i)
        try:
            stored = poll("every sample in Prometheus", lambda: s if len(s := _stored(url)) >= 150 else None, 30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{tail(next((tmp_path / 'prometheus').glob('*.log')))}") from None
        forwarder.close()
    assert stored == expected and target.rejected_bodies == 0


def test_a_refused_body_is_counted_not_retried(tmp_path: Path) -> None:
    port = free_port()
    with prometheus(tmp_path, port):
        target = RemoteWriteTarget(f"http://127.0.0.1:{port}/api/v1/write")
        now_ms = int(time.time() * 1000)
        target.send(_batch(5, now_ms))
        target.send(_batch(1, now_ms))  # older than what the series holds: out of order, a 400
        assert target.rejected_bodies == 1 and target.written_samples == 3


def test_the_request_is_the_spec_s_wire_format() -> None:
    """Decoded with the protobuf runtime's generic wire reader: the fields the spec numbers."""
    from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

    body = encode_write_request(Batch.from_samples([Sample("m", 1.5, {"b": "2", "a": "1"}, 3_000_000)]))
    assert body[0] == 0x0A  # field 1 (timeseries), length-delimited
    length, pos = _DecodeVarint(body, 1)
    series = body[pos : pos + length]
    # labels sorted with __name__ first, then a, b; one sample (value 1.5, timestamp 3 ms)
    assert series.count(b"\x0a") >= 3 and series.index(b"__name__") < series.index(b"a") < series.index(b"b\x12")
    assert series.endswith(b"\x12\x0b\x09" + bytes.fromhex("000000000000f83f") + b"\x10\x03")


def test_serve_with_remote_write_sends_every_sample_and_says_so_on_metrics(tmp_path: Path) -> None:
    """The composed service (store.remote_write beside the DuckDB store): samples reach Prometheus,
    /metrics counts them, and a stopped receiver is reported by the connected gauge."""
    import yaml

    from service.compose import build_service
    from service.config import load_config
    from service.metrics import TwinMetrics

    port = free_port()
    config = {
        "data_dir": str(tmp_path / "data"),
        "store": {"remote_write": {"url": f"http://127.0.0.1:{port}/api/v1/write", "retry_min": "0.2s"}},
        "sites": [{"name": "edge-1", "kind": "edge", "collectors": []}],
    }
    path = tmp_path / "ctwin.yaml"
    path.write_text(yaml.safe_dump(config))
    service = build_service(load_config(path), collect=False)
    now_ms = int(time.time() * 1000)

    def exposed() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (family.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in TwinMetrics(service).collect()
            if family.name.startswith("ctwin_remote_write")
            for sample in family.samples
        }

    with prometheus(tmp_path, port) as url:
        service.start()
        try:
            for i in range(5):
                assert service.pipeline.submit(_batch(i, now_ms))
            stored = poll("15 samples in Prometheus", lambda: s if len(s := _stored(url)) >= 15 else None, 30)
            assert len(stored) == 15
            assert exposed()[("ctwin_remote_write_connected", ())] == 1.0
            assert exposed()[("ctwin_remote_write_samples", (("outcome", "sent"),))] == 15
        except BaseException:
            service.stop()
            raise
    try:  # the receiver is gone: the next batch is spooled, the gauge says so
        assert service.pipeline.submit(_batch(6, now_ms))
        poll("the gauge to drop", lambda: exposed()[("ctwin_remote_write_connected", ())] == 0.0, 20)
        assert exposed()[("ctwin_remote_write_spool_samples", ())] == 3
    finally:
        service.stop()
