"""Typed config: unknown or invalid keys are reported with file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    return [p.render("c.yaml") for p in info.value.problems]


def test_builtin_default_is_this_machine_two_replayed_hpc_sites_and_a_cloud_site() -> None:
    loaded = load_config(None)
    assert [(s.name, s.kind) for s in loaded.config.sites] == [
        ("local", "edge"),
        ("kth-sp2", "hpc"),
        ("sdsc-sp2", "hpc"),
        ("cloud-eu", "cloud"),
    ]
    assert [c.name for c in loaded.collectors] == [
        "local/node",
        "local/containers",
        "local/interconnect",
        "kth-sp2/replay",
        "sdsc-sp2/replay",
    ]
    assert [link.between for link in loaded.config.links] == [
        ("local", "kth-sp2"),
        ("local", "sdsc-sp2"),
        ("local", "cloud-eu"),
    ]
    assert loaded.store_path("/x") == Path("/x/ctwin.duckdb")
    cloud = loaded.config.sites[3]
    assert cloud.cloud is not None and cloud.cloud.quota_cores == 256 and cloud.pricing.core_hour > 0


def test_own_sites_start_without_the_default_links() -> None:
    loaded = parse_config("sites: [{name: a}]")
    assert loaded.config.links == []


def test_a_link_must_join_known_sites() -> None:
    text = "sites: [{name: a}, {name: b}]\nlinks:\n  - between: [a, c]\n    bandwidth_gbps: 10\n"
    assert problems(text) == ["c.yaml:3: links[0].between: no site named 'c' (sites: ['a', 'b'])"]


def test_example_config_in_deploy_is_valid() -> None:
    loaded = load_config(ROOT / "deploy" / "ctwin.example.yaml")
    assert loaded.collectors


def test_unknown_top_level_key_has_its_line() -> None:
    assert problems("data_dir: x\nstroe:\n  path: y\n") == ["c.yaml:2: stroe: unknown key"]


def test_unknown_collector_key_is_checked_by_the_collectors_own_model() -> None:
    text = """
sites:
  - name: a
    collectors:
      - type: node
        interval: 5s
        rooot: /host
"""
    assert problems(text) == ["c.yaml:7: sites[0].collectors[0].rooot: unknown key"]


def test_invalid_values_are_explained() -> None:
    text = "sites:\n  - name: a\n    kind: mainframe\n    collectors:\n      - type: node\n        interval: soon\n"
    got = problems(text)
    assert got[0].startswith("c.yaml:3: sites[0].kind: Input should be 'hpc', 'htc', 'cloud' or 'edge'")
    assert got[1].startswith("c.yaml:6: sites[0].collectors[0].interval: Value error, invalid duration 'soon'")


def test_unknown_collector_type_and_duplicate_names() -> None:
    text = "sites:\n  - name: a\n    collectors:\n      - type: nodee\n  - name: a\n"
    got = problems(text)
    assert got[0].startswith("c.yaml:4: sites[0].collectors[0].type: unknown collector 'nodee'; known:")
    assert got[1] == "c.yaml:5: sites[1].name: site 'a' is defined twice"


def test_not_yaml_and_not_a_mapping() -> None:
    assert problems("a: [1, 2\n")[0].startswith("c.yaml:2: (top level): not valid YAML")
    assert problems("- 1\n- 2\n") == ["c.yaml:1: (top level): the config must be a mapping of keys to values"]


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config("/nonexistent/ctwin.yaml")


def test_durations_accept_units() -> None:
    loaded = parse_config(
        "store:\n  retention: 7d\nsites:\n  - name: a\n    collectors:\n"
        "      - {type: node, interval: 500ms, timeout: 2s}\n"
    )
    assert loaded.config.store.retention == 7 * 86400
    assert loaded.collectors[0].entry.interval == 0.5
    assert loaded.collectors[0].entry.timeout == 2.0
