"""The store.influx block: selected by backend: influx, typed, its token never inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, parse_config
from service.influx_mirror import MirrorConfigError, influx_mirror_of

SITES = "sites: [{name: edge-1, kind: edge, collectors: []}]\n"


def test_backend_influx_takes_the_block_with_defaults() -> None:
    loaded = parse_config("store: {backend: influx, influx: {url: 'http://127.0.0.1:8428'}}\n" + SITES)
    cfg = loaded.config.store.influx
    assert cfg is not None
    assert (cfg.org, cfg.bucket, cfg.precision, cfg.batch_size, cfg.resend_window) == (
        "ctwin",
        "telemetry",
        "ns",
        5000,
        30.0,
    )


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("{backend: influx}", "needs a store.influx block"),
        ("{influx: {url: 'http://x'}}", "backend is not influx"),
        ("{backend: influx, influx: {url: 'http://x', tokn: a}}", "tokn"),
        ("{backend: influx, influx: {url: 'ftp://x'}}", "url"),
        ("{backend: influx, influx: {url: 'http://x', token_file: /a, token_env: B}}", "not both"),
        ("{backend: influx, influx: {url: 'http://x', retry_min: 10s, retry_max: 1s}}", "retry_max"),
        ("{backend: influx, influx: {url: 'http://x', batch_size: 0}}", "batch_size"),
        ("{backend: influxdb}", "backend"),
    ],
)
def test_bad_blocks_are_refused_with_the_key(store: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"store: {store}\n" + SITES)


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:9"
    loaded = parse_config(
        f"data_dir: {tmp_path}\nstore: {{backend: influx, influx: {{url: '{url}', token_env: NOPE_TOKEN}}}}\n" + SITES
    )
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    with pytest.raises(MirrorConfigError, match="NOPE_TOKEN is not set"):
        influx_mirror_of(loaded)
    (tmp_path / "token").write_text("s3cret\n")
    token = tmp_path / "token"
    loaded = parse_config(
        f"data_dir: {tmp_path}\nstore: {{backend: influx, influx: {{url: '{url}', token_file: {token}}}}}\n" + SITES
    )
    mirror = influx_mirror_of(loaded)
    assert mirror is not None and mirror.forwarder.spool.directory == tmp_path / "spool" / "influx"
    assert mirror.forwarder.target._client.token == "s3cret"  # type: ignore[attr-defined]
    mirror.close(timeout_s=0.1)


def test_duckdb_alone_has_no_mirror() -> None:
    assert influx_mirror_of(parse_config(SITES)) is None
