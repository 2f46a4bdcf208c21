"""Fuzzing the config loader: any text gives a LoadedConfig or a ConfigError.

"A clear error" here: ConfigError, whose every problem renders as `source[:line]: key.path: reason`.
Nothing else may escape. (Which values are refused, NaN durations or repeated keys for instance,
is the config's own tests' business; this test only checks that the loader answers.) Inputs: the
documented example config and the test suite's configs with values replaced by odd YAML scalars,
truncated, byte-flipped and spliced; arbitrary text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.config import ConfigError, LoadedConfig, parse_config
from tests.conftest import ROOT
from tests.fuzzing import FUZZ, text_mutations

EXAMPLE = (ROOT / "deploy" / "ctwin.example.yaml").read_text()
SMALL = """
sites:
  - name: local
    kind: edge
    collectors:
      - {type: node, interval: 5s, timeout: 3s}
      - {type: prometheus, url: "http://127.0.0.1:9100/metrics", interval: 15s, include: ["^node_"]}
  - name: cluster1
    kind: hpc
    collectors:
      - {type: slurm, transport: rest, url: "http://h:6820", api_version: v0.0.40, user: u, token_file: /t}
links:
  - {between: [local, cluster1], bandwidth_gbps: 10, latency_ms: 30}
"""
TEXTS = [EXAMPLE, SMALL]
ODD_SCALARS = [
    "~", "''", "-1", "0", "1e400", ".nan", "-.inf", "9" * 30, "9" * 5000, "[]", "{}", "[[[[]]]]", "!!binary aGk=",
    "&a x", "*a", "'a{99999999999}'", "'('", "http://[::1", "http://h:99999999999/", "yes", "2001-12-14", "0x10",
    "\"\\u00ff\"", "|\n  x", "[" * 60 + "]" * 60,
]  # fmt: skip
_SCALAR = re.compile(r"(?<=: )[^\s,{}\[\]]+")


@st.composite
def value_mutations(draw: Callable[..., Any]) -> str:
    """A real config with a few `key: value` values replaced by odd YAML."""
    text = draw(st.sampled_from(TEXTS))
    spots = [m.span() for m in _SCALAR.finditer(text)]
    for _ in range(draw(st.integers(1, 3))):
        start, end = draw(st.sampled_from(spots))
        odd = draw(st.sampled_from(ODD_SCALARS))
        text = text[:start] + odd + text[end:]
        spots = [m.span() for m in _SCALAR.finditer(text)]
    return text


def loads_or_says_why(text: str) -> None:
    try:
        loaded = parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.problems and str(exc).startswith("fuzz.yaml"), str(exc)
        return
    assert isinstance(loaded, LoadedConfig)


@settings(FUZZ, max_examples=100)  # YAML parses slowly: about 30 ms a config
@given(value_mutations() | text_mutations(TEXTS) | st.text(max_size=300))
# found by this test (each escaped parse_config before its fix):
@example("sites: [[[" + "[" * 2000)  # RecursionError in PyYAML's composer
@example("serve: {port: " + "9" * 5000 + "}")  # ValueError: PyYAML's int() of 4,300+ digits
@example("sites: [{name: a, collectors: [{type: prometheus, url: 'http://h/', include: ['a{99999999999}']}]}]")
def test_mutated_configs(text: str) -> None:  # (the last: OverflowError from re.compile inside pydantic)
    loads_or_says_why(text)


def test_a_scrape_port_past_65535_is_a_config_error() -> None:
    """Found while fuzzing: httpx.URL takes any digits as a port, so the config loaded and every
    scrape failed later with an OverflowError from the socket layer."""
    text = "sites: [{name: a, collectors: [{type: prometheus, url: 'http://h:99999999999999999999/'}]}]"
    try:
        parse_config(text, "x.yaml")
    except ConfigError as exc:
        assert "x.yaml:1: sites[0].collectors[0].url: Value error, url port must be 1-65535" in str(exc)
    else:
        raise AssertionError("the port was accepted")


def test_the_example_config_still_loads() -> None:
    assert parse_config(EXAMPLE, str(Path("deploy/ctwin.example.yaml"))).collectors
