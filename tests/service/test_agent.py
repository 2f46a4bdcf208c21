"""`ctwin agent`'s config (typed, unknown keys refused with their line) and its runtime in-process:
while the target is unreachable everything is spooled on disk, kept across a restart, and a
later agent replays it to a real `ctwin serve` app, which stores it once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.agent import build_agent
from service.app import create_app
from service.auth import TokenStore
from service.config import ConfigError, parse_config
from service.config_agent import parse_agent_config
from telemetry.serve_target import ServeTarget
from telemetry.stores.base import Selection

AGENT = """
site: edge
host: edge-1
data_dir: {data}
target: {{kind: serve, url: "http://127.0.0.1:9", timeout: 1s}}
spool: {{retry_min: 0.1s, retry_max: 0.2s, final_replay: 0.5s}}
status: {{every: 0.2s}}
collectors:
  - {{type: node, interval: 0.2s}}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_agent_config(text, "agent.yaml")
    return [p.render("agent.yaml") for p in caught.value.problems]


def test_agent_config_is_typed_and_refuses_unknown_keys_with_their_line() -> None:
    loaded = parse_agent_config(AGENT.format(data="/tmp/x"))
    assert loaded.config.site == "edge" and loaded.config.agent_name() == "edge/edge-1"
    assert [s.name for s in loaded.collectors] == ["edge/node"]
    (typo,) = _problems(AGENT.format(data="/tmp/x").replace("status:", "statsu:"))
    assert typo == "agent.yaml:7: statsu: unknown key"
    (kind,) = _problems(AGENT.format(data="/tmp/x").replace("kind: serve", "kind: kafka"))
    assert "target" in kind and "'kafka'" in kind
    (collector,) = _problems(AGENT.format(data="/tmp/x").replace("interval: 0.2s}", "interval: 0.2s, root: 3}"))
    assert collector.startswith("agent.yaml:9: collectors[0].root")
    assert any("required key is missing" in p for p in _problems("site: edge\ncollectors: [{type: node}]\n"))


def test_a_missing_token_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTWIN_TOKEN", raising=False)
    loaded = parse_agent_config(AGENT.format(data=tmp_path))
    with pytest.raises(ValueError, match="ctwin token create NAME --scope ingest"):
        build_agent(loaded)


def test_spooled_while_unreachable_kept_across_a_restart_then_replayed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTWIN_TOKEN", "ctw_0000_unreachable-target-token")
    loaded = parse_agent_config(AGENT.format(data=tmp_path / "agent"))
    offline = build_agent(loaded)
    offline.start()
    time.sleep(1.5)
    first = offline.stop()
    assert not first["connected"] and "unreachable" in str(first["problem"])
    assert first["produced_samples"] > 0 and first["spooled_samples"] == first["produced_samples"]
    assert first["sent_samples"] == 0 and sum(first["dropped_samples"].values()) == 0

    central = parse_config("sites:\n  - name: edge\n    push: {tokens: [edge-agent]}\n")
    data = tmp_path / "central"
    token = TokenStore(central.tokens_path(data)).create("edge-agent", ["ingest"])[1]
    with TestClient(create_app(central, data, ui=False)) as client:
        target = ServeTarget("http://testserver", token, "edge/edge-1", client=client)
        online = build_agent(loaded, target=target)  # the same spool directory: what the first left
        online.start()
        deadline = time.monotonic() + 15
        while online.forwarder.spool.pending_samples and time.monotonic() < deadline:
            time.sleep(0.05)
        second = online.stop()
        assert second["spooled_samples"] == 0 and second["connected"]
        assert second["replayed_samples"] >= first["produced_samples"]
        produced = first["produced_samples"] + second["produced_samples"]
        store = client.app.state.service.store  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while store.count(Selection(labels={"site": "edge"})) < produced and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert store.count(Selection(labels={"site": "edge"})) == produced


def test_the_documented_example_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "deploy" / "agent.example.yaml").read_text()
    loaded = parse_agent_config(text, "deploy/agent.example.yaml")
    assert loaded.config.target.kind == "serve" and [s.entry.type for s in loaded.collectors] == ["node", "containers"]


def test_target_kind_influx_writes_straight_to_influxdb_with_the_agents_own_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.agent import build_target
    from telemetry.influx import InfluxTarget

    influx = 'target: {kind: influx, url: "http://127.0.0.1:8086", org: o, bucket: b, token_env: AGENT_INFLUX_TOKEN}'
    text = AGENT.format(data=tmp_path).replace('target: {kind: serve, url: "http://127.0.0.1:9", timeout: 1s}', influx)
    loaded = parse_agent_config(text)
    monkeypatch.setenv("AGENT_INFLUX_TOKEN", "secret")
    target = build_target(loaded.config.target, loaded.config.agent_name())
    assert isinstance(target, InfluxTarget) and target.bucket == "b"
    (twice,) = _problems(text.replace("token_env: AGENT_INFLUX_TOKEN", "token_env: T, spool_dir: /tmp/s"))
    assert "spool_dir: set these in the agent's `spool:` block" in twice
