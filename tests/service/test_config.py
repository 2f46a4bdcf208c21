"""Typed config: unknown or invalid keys are reported with file, line and key path."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from collectors import registry
from service.config import Config, ConfigError, load_config, parse_config

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


def _collector(line: str) -> str:
    """A config whose one collector entry is a replay and ends with `line` (line 6 of the file)."""
    return (
        "sites:\n  - name: a\n    collectors:\n      - type: replay\n        trace: KTH-SP2-1996-2.1-cln.swf.gz\n"
        + line
        + "\n"
    )


_LINK = "sites: [{name: a}, {name: b}]\nlinks:\n  - between: [a, b]\n"
_SCRAPE = "sites:\n  - name: a\n    collectors:\n      - type: prometheus\n        url: http://127.0.0.1:9/m\n"
_SLURM = "sites:\n  - name: a\n    collectors:\n      - type: slurm\n        transport: cli\n"
NON_FINITE = {
    "interval-nan": (_collector("        interval: .nan"), "c.yaml:6: sites[0].collectors[0].interval: "),
    "interval-inf": (_collector("        interval: .inf"), "c.yaml:6: sites[0].collectors[0].interval: "),
    "interval-overflow": (
        _collector("        interval: " + "9" * 400 + "d"),
        "c.yaml:6: sites[0].collectors[0].interval: ",
    ),
    "timeout-inf": (_collector("        timeout: .inf"), "c.yaml:6: sites[0].collectors[0].timeout: "),
    "speed-inf": (_collector("        speed: .inf"), "c.yaml:6: sites[0].collectors[0].speed: "),
    "start-offset-inf": (_collector("        start_offset: .inf"), "c.yaml:6: sites[0].collectors[0].start_offset: "),
    "retention-nan": ("store:\n  retention: .nan\n", "c.yaml:2: store.retention: "),
    "bandwidth-inf": (_LINK + "    bandwidth_gbps: .inf\n", "c.yaml:4: links[0].bandwidth_gbps: "),
    "latency-nan": (_LINK + "    latency_ms: .NaN\n", "c.yaml:4: links[0].latency_ms: "),
    "scrape-timeout-nan": (_SCRAPE + "        timeout_s: .nan\n", "c.yaml:6: sites[0].collectors[0].timeout_s: "),
    "slurm-window-inf": (
        _SLURM + "        accounting_window: .inf\n",
        "c.yaml:6: sites[0].collectors[0].accounting_window: ",
    ),
}


@pytest.mark.parametrize(("text", "where"), NON_FINITE.values(), ids=NON_FINITE.keys())
def test_non_finite_numbers_are_refused_wherever_a_number_is_configured(text: str, where: str) -> None:
    (got,) = problems(text)
    assert got.startswith(where) and "finite" in got, got


def test_a_duration_too_long_to_wait_for_is_refused() -> None:
    """threading's waits overflow beyond ~292 years: such an interval killed its collector's thread."""
    (got,) = problems(_collector("        interval: 1.0e+12"))
    assert got.startswith("c.yaml:6: sites[0].collectors[0].interval: ") and "at most 100 years" in got, got
    assert parse_config(_collector("        interval: 3650d")).collectors[0].entry.interval == 3650 * 86400


def _models_reachable(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        for arg in _type_args(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _models_reachable(arg, seen)
    return seen


def _type_args(annotation: object) -> list[object]:
    args = [annotation]
    for arg in typing.get_args(annotation):
        args += _type_args(arg)
    return args


def test_every_config_model_refuses_non_finite_numbers() -> None:
    """Once, at the type level: a model added later (a new collector's) inherits the rule."""
    models: set[type[BaseModel]] = set()
    _models_reachable(Config, models)
    for name in registry.names():
        _models_reachable(registry.get(name).config_model, models)
    assert len(models) > 10
    allowed = sorted(m.__name__ for m in models if m.model_config.get("allow_inf_nan", True))
    assert allowed == []


def test_duplicate_keys_are_refused_at_any_depth_with_the_line_of_the_repeat() -> None:
    text = """\
auth:
  open_endpoints: ["/healthz"]
sites:
  - name: a
    collectors:
      - {type: node, interval: 5s, interval: 1s}
auth:
  open_endpoints: ["/healthz", "/readyz", "/metrics", "/"]
"""
    assert problems(text) == [
        "c.yaml:6: sites[0].collectors[0].interval: duplicate key (first given at line 6); remove one",
        "c.yaml:7: auth: duplicate key (first given at line 1); remove one",
    ]
    # keys are compared as YAML reads them, not as they are spelled
    assert problems("store: {retention: 1d, 'retention': 2d}\n") == [
        "c.yaml:1: store.retention: duplicate key (first given at line 1); remove one"
    ]
    # a merge key (<<) is no duplicate: overriding a merged key is what it is for
    merged = "x-base: &base {type: node, interval: 5s}\n"
    assert problems(merged + "sites: [{name: a, collectors: [{<<: *base, interval: 1s}]}]\n") == [
        "c.yaml:1: x-base: unknown key"
    ]


def test_an_alias_inside_itself_is_a_problem_not_a_crash() -> None:
    assert problems("sites: &s\n  - *s\n") == ["c.yaml:1: sites[0]: an alias refers to a block that contains it"]
