"""Link probes inside the service: `ctwin serve`'s optional probe endpoint (probe.listen), a
link_probe collector in the pipeline measuring against it, the probed figures in GET /v1/links,
and advice whose stage-in uses them instead of the configured link. On loopback, so the numbers
are only "much faster than configured"; the shaped-link figures are in
tests/integration/test_link_probe_netns.py."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collectors.base import CollectorError
from collectors.link_probe import transfer
from service.app import create_app
from service.auth import TokenStore
from service.compose import build_service
from service.config import ConfigError, parse_config
from tests.conftest import free_port

CONFIG = """
probe: {{listen: "127.0.0.1:{port}", max_bytes: 4MB, max_clients: 2}}
sites:
  - name: local
    kind: edge
    collectors:
      - {{type: node, interval: 0.3s}}
      - {{type: link_probe, peer: "127.0.0.1:{port}", between: [local, cloud], max_bytes: 2MB, max_seconds: 1s,
         rtt_probes: 3, interval: 0.5s, timeout: 5s}}
  - name: cloud
    kind: cloud
    cloud: {{quota_cores: 64}}
links:
  - {{between: [local, cloud], bandwidth_gbps: 0.001, latency_ms: 500, description: "configured far too slow"}}
"""


def test_serve_runs_the_probe_endpoint_and_advice_uses_the_probed_link(tmp_path: Path) -> None:
    port = free_port()
    loaded = parse_config(CONFIG.format(port=port))
    tokens = TokenStore(loaded.tokens_path(tmp_path))
    read = {"Authorization": f"Bearer {tokens.create('r', ['read'])[1]}"}
    advise = {"Authorization": f"Bearer {tokens.create('a', ['advise'])[1]}"}
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        deadline = time.monotonic() + 30
        link: dict = {}
        while time.monotonic() < deadline:
            (link,) = client.get("/v1/links", headers=read).json()["items"]
            if link["probe_throughput_bps"] is not None and link["probe_rtt_s"] is not None:
                break
            time.sleep(0.2)
        assert link["bandwidth_bps"] == 1e6 and link["latency_s"] == 0.5  # configured, still shown
        assert link["probe_throughput_bps"] > 1e8  # loopback, far above the configured 1 Mb/s
        assert 0 < link["probe_rtt_s"] < 0.1 and link["probe_throughput_age_s"] < 30
        job = {"cores": 1, "walltime": "10m", "input": {"size": "1GB", "site": "local"}}
        answer = client.post("/v1/advice", json=job, headers=advise)
        assert answer.status_code == 200, answer.text
        cloud = next(s for s in answer.json()["sites"] if s["site"] == "cloud")
        # configured: 8000 s for 1 GB at 1 Mb/s; probed: about a second
        assert cloud["stage_in_s"]["p50"] < 60, cloud
        assert "probed" in cloud["reason"] and "instead of the configured" in cloud["reason"]
    with socket.socket() as s:  # the endpoint stopped with the service
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_no_probe_endpoint_unless_configured(tmp_path: Path) -> None:
    service = build_service(parse_config(""), tmp_path, collect=False)
    try:
        assert service.probe_endpoint is None
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("yaml_text", "where", "message"),
    [
        (
            "sites: [{name: a, kind: edge, collectors: [{type: link_probe, peer: 'h:1', between: [a, b]}]},"
            " {name: b, kind: edge}]",
            "sites[0].collectors[0].between",
            "no `links:` entry between a and b",
        ),
        ("probe: {listen: 'nowhere'}", "probe", "HOST:PORT"),
        ("probe: {listen: '0.0.0.0:7300', max_clients: 0}", "probe.max_clients", "greater than or equal to 1"),
        ("probe: {listen: '0.0.0.0:7300', port: 1}", "probe.port", "unknown key"),
    ],
)
def test_probe_config_errors_name_their_place(yaml_text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text)
    problems = {p.location: p.message for p in info.value.problems}
    assert where in problems and message in problems[where], problems


def _ctwin(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_probe_endpoint_cli_serves_until_sigterm_and_explains_bad_options() -> None:
    assert "pass --listen ADDR:PORT" in _ctwin("probe-endpoint").stderr
    bad = _ctwin("probe-endpoint", "--listen", "nowhere")
    assert bad.returncode == 2 and "is not HOST:PORT" in bad.stderr
    zero = _ctwin("probe-endpoint", "--listen", "127.0.0.1:1", "--max-seconds", "0")
    assert zero.returncode == 2 and "duration must be positive" in zero.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "probe-endpoint", "--listen", f"127.0.0.1:{port}", "--max-bytes", "1MB"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                moved = transfer("127.0.0.1", port, "download", 10**9, 5.0, connect_timeout_s=1.0)
                break
            except CollectorError:
                time.sleep(0.2)
        assert moved.total_bytes == 10**6  # the --max-bytes cap
        taken = _ctwin("probe-endpoint", "--listen", f"127.0.0.1:{port}")
        assert taken.returncode == 2 and "Address already in use" in taken.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "probe endpoint stopped: 1 transfers" in stderr
