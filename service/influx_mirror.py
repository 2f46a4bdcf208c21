"""Builds the InfluxDB mirror (`store.backend: influx`) from the typed config.

Kept apart from compose.py: the composition root only asks "is there a mirror?", and what a
mirror needs (its token, its spool directory, its retry bounds) is read here once."""

from __future__ import annotations

from pathlib import Path

from collectors.base import CollectorError
from collectors.secret import read_secret
from service.config import LoadedConfig
from service.config_influx import InfluxConfig, RemoteWriteConfig
from telemetry.forwarder import ForwardTarget, SpooledForwarder
from telemetry.influx import InfluxTarget, MirrorSink
from telemetry.spool import Spool

__all__ = ["MirrorConfigError", "influx_mirror_of", "influx_target_of", "remote_write_of"]


class MirrorConfigError(ValueError):
    """The InfluxDB mirror cannot be built as configured (its token is missing or unreadable)."""


def _token(cfg: InfluxConfig | RemoteWriteConfig, what: str) -> str:
    """The block's token from its file or environment variable ("" when it names none)."""
    if cfg.token_file is None and cfg.token_env is None:
        return ""
    try:
        return read_secret(file=cfg.token_file, env=cfg.token_env, what=f"{what} token")
    except CollectorError as exc:
        raise MirrorConfigError(str(exc)) from None


def _spooled(target: ForwardTarget, cfg: InfluxConfig | RemoteWriteConfig, default_dir: Path) -> MirrorSink:
    spool = Spool(Path(cfg.spool_dir) if cfg.spool_dir else default_dir, max_bytes=cfg.spool_max_bytes)
    return MirrorSink(SpooledForwarder(target, spool, retry_min_s=cfg.retry_min, retry_max_s=cfg.retry_max))


def influx_target_of(cfg: InfluxConfig, *, what: str) -> InfluxTarget:
    """The InfluxDB target of an `InfluxConfig` (the mirror's, or an agent's `target` with kind
    influx); `what` names the block in the error when its token cannot be read."""
    token = _token(cfg, what)
    return InfluxTarget(
        cfg.url,
        org=cfg.org,
        bucket=cfg.bucket,
        token=token,
        precision=cfg.precision,
        batch_size=cfg.batch_size,
        timeout_s=cfg.timeout,
        max_retries=cfg.max_retries,
        gzip=cfg.gzip,
        resend_window_s=cfg.resend_window,
        resend_max_bytes=cfg.resend_max_bytes,
    )


def influx_mirror_of(loaded: LoadedConfig, data_dir: str | Path | None = None) -> MirrorSink | None:
    """The spooled InfluxDB mirror, not yet started; None unless `store.backend` is `influx`."""
    store = loaded.config.store
    cfg = store.influx
    if store.backend != "influx" or cfg is None:
        return None
    target = influx_target_of(cfg, what="store.influx")
    return _spooled(target, cfg, loaded.data_dir(data_dir) / "spool" / "influx")


def remote_write_of(loaded: LoadedConfig, data_dir: str | Path | None = None) -> MirrorSink | None:
    """The spooled Prometheus remote-write mirror, not yet started; None unless store.remote_write is set."""
    cfg = loaded.config.store.remote_write
    if cfg is None:
        return None
    from telemetry.remote_write import RemoteWriteTarget

    token = _token(cfg, "store.remote_write")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    target = RemoteWriteTarget(cfg.url, batch_size=cfg.batch_size, timeout_s=cfg.timeout, headers=headers)
    return _spooled(target, cfg, loaded.data_dir(data_dir) / "spool" / "remote-write")
