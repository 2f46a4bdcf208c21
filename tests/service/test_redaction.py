"""Credentials in collector URLs never leave the process: a collector failing against
`http://user:secret@127.0.0.1:<closed port>/metrics?token=abc` leaves neither `secret` nor `abc` in
the log, the pipeline's stats, `/v1/sites`, the Dash collectors table, `ctwin collect` or
`ctwin config check`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from collectors.base import CollectorError
from collectors.prometheus_scrape import PrometheusScrapeCollector, PrometheusScrapeConfig
from collectors.slurm_transport import RestTransport
from dashboards.parts import collectors_table
from service.app import create_app
from service.auth import TokenStore
from service.config import ConfigError, parse_config
from telemetry.pipeline import RunningCollector
from tests.conftest import free_port

SECRETS = ("secret", "abc")


def leaky_url(port: int) -> str:
    return f"http://user:secret@127.0.0.1:{port}/metrics?token=abc"


def assert_clean(text: str) -> None:
    assert "127.0.0.1" in text or "***" in text, text  # the message still says what failed...
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in: {text}"  # ...but not with what


def test_a_failing_collector_leaves_no_credential_in_stats_or_log(caplog: pytest.LogCaptureFixture) -> None:
    url = leaky_url(free_port())
    collector = PrometheusScrapeCollector(PrometheusScrapeConfig(url=url, timeout_s=1.0))
    rc = RunningCollector("edge/prometheus", collector, interval_s=1, timeout_s=2, labels={"site": "edge"})
    with pytest.raises(CollectorError) as raised:
        collector.gather(lambda *a, **k: None)
    assert raised.value.__cause__ is None  # httpx's exception holds the request, and so the URL
    with caplog.at_level(logging.WARNING):
        rc.collect()
    rc.close()
    assert rc.stats.errors == 1 and rc.stats.last_error is not None
    assert "ConnectError" in rc.stats.last_error
    assert "user:***@127.0.0.1" in rc.stats.last_error and "token=***" in rc.stats.last_error
    assert_clean(rc.stats.last_error)
    assert caplog.records and "ConnectError" in caplog.text
    assert_clean(caplog.text)


class _Leaky:
    """Any collector (a third-party plugin) whose error quotes its URL and headers verbatim."""

    def gather(self, emit: object) -> None:
        raise CollectorError(
            "GET https://admin:secret@exporter.example/metrics?api_key=abc failed; "
            "headers {'Authorization': 'Bearer abc'}"
        )


def test_the_pipeline_redacts_whatever_a_collector_says(caplog: pytest.LogCaptureFixture) -> None:
    rc = RunningCollector("x", _Leaky(), interval_s=1, timeout_s=1, labels={})
    with caplog.at_level(logging.WARNING, logger="telemetry.pipeline"):
        rc.collect()
    rc.close()
    assert rc.stats.last_error == (
        "CollectorError: GET https://admin:***@exporter.example/metrics?api_key=*** failed; "
        "headers {'Authorization': 'Bearer ***'}"
    )
    assert_clean(caplog.text)


def test_slurmrestd_errors_name_the_url_without_its_credentials() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    transport = RestTransport(
        url="http://slurm:secret@127.0.0.1:6820/?token=abc",
        api_version="v0.0.40",
        user="ctwin",
        token="not-the-secret-under-test",
        token_file=None,
        timeout_s=1,
        verify_tls=True,
        accounting_window_s=None,
        client=httpx.Client(transport=httpx.MockTransport(refuse)),
    )
    with pytest.raises(CollectorError) as caught:
        transport.fetch("nodes")
    assert "slurmrestd GET http://slurm:***@127.0.0.1:6820" in str(caught.value)
    assert_clean(str(caught.value))
    assert_clean(" ".join(transport.requests().values()))


CONFIG = """
sites:
  - name: edge
    kind: edge
    collectors:
      - {{type: prometheus, url: "{url}", interval: 0.3s, timeout: 1s}}
"""


def test_v1_sites_and_the_dash_collectors_table_show_no_credential(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = parse_config(CONFIG.format(url=leaky_url(free_port())))
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    app = create_app(loaded, tmp_path, ui=False)
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        deadline = time.monotonic() + 20
        while True:
            res = client.get("/v1/sites", headers={"Authorization": f"Bearer {token}"})
            collectors = res.json()["items"][0]["collectors"]
            if collectors and collectors[0]["last_error"]:
                break
            assert time.monotonic() < deadline, res.text
            time.sleep(0.1)
        one = client.get("/v1/sites/edge", headers={"Authorization": f"Bearer {token}"})
        view = app.state.service.twin.site("edge")
    assert "ConnectError" in collectors[0]["last_error"]
    assert_clean(res.text)
    assert_clean(one.text)
    table = json.dumps(collectors_table(view.collectors).to_plotly_json(), default=str)
    assert "ConnectError" in table
    assert_clean(table)
    assert "ConnectError" in caplog.text
    assert_clean(caplog.text)


def test_config_errors_never_echo_a_credential() -> None:
    config = CONFIG.format(url="ftp://user:secret@127.0.0.1/metrics?token=abc")
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    message = str(caught.value)
    assert "url must be http(s)://host[:port][/path], got 'ftp://user:***@127.0.0.1/metrics?token=***'" in message
    assert_clean(message)


def ctwin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_cli_prints_no_credential(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(CONFIG.format(url=leaky_url(free_port())))
    collected = ctwin("collect", "--once", "--json", "--config", str(good))
    assert collected.returncode == 1  # its only collector failed
    errors = json.loads(collected.stdout)["errors"]
    assert "ConnectError" in errors["edge/prometheus"]
    assert_clean(collected.stdout + collected.stderr)
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.format(url="ftp://user:secret@127.0.0.1/metrics?token=abc"))
    for args in (("config", "check"), ("config", "check", "--json")):
        checked = ctwin(*args, "--config", str(bad))
        assert checked.returncode == 1 and "url must be http(s)" in checked.stdout + checked.stderr
        assert_clean(checked.stdout + checked.stderr)
