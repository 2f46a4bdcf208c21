"""The composition root: config → store, collectors, pipeline. The only place that wires packages."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import duckdb

from collectors import registry
from service.config import LoadedConfig
from service.resume import resume_replays
from telemetry.pipeline import Pipeline, RunningCollector, StoreSink
from telemetry.stores.base import Store
from telemetry.stores.duckdb_store import DuckDBStore


class StoreBusyError(ValueError):
    """The embedded store is held by another process (DuckDB allows one process per file)."""


def open_store(loaded: LoadedConfig, data_dir: str | Path | None = None, read_only: bool = False) -> Store:
    cfg = loaded.config.store
    path = loaded.store_path(data_dir)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no store at {path}; run `ctwin serve` first or pass --data-dir")
    try:
        return DuckDBStore(path, memory_limit=cfg.memory_limit, read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise StoreBusyError(
            f"the store {path} is open in a running ctwin service; export through its API"
            " (GET /v1/export/samples or /v1/export/jobs) or stop the service first"
        ) from None


def build_collectors(loaded: LoadedConfig) -> list[RunningCollector]:
    host = loaded.config.host_name()
    running = []
    for spec in loaded.collectors:
        collector = registry.get(spec.entry.type)(spec.config)
        interval = spec.entry.interval
        running.append(
            RunningCollector(
                spec.name,
                collector,
                interval_s=interval,
                timeout_s=spec.entry.timeout or max(1.0, min(interval, 30.0)),
                labels={"site": spec.site.name, "host": host},
            )
        )
    return running


@dataclass
class Runtime:
    store: Store
    pipeline: Pipeline
    sink: StoreSink


def build_runtime(loaded: LoadedConfig, data_dir: str | Path | None = None) -> Runtime:
    store = open_store(loaded, data_dir)
    sink = StoreSink(store)
    pipeline = Pipeline(
        build_collectors(loaded),
        [sink],
        buffer_samples=loaded.config.pipeline.buffer_samples,
        max_batch_samples=loaded.config.pipeline.max_batch_samples,
        labels={"host": loaded.config.host_name()},
    )
    resume_replays(store, pipeline.collectors)
    return Runtime(store, pipeline, sink)


def resolve_salt(loaded: LoadedConfig, data_dir: str | Path | None = None) -> str:
    """The pseudonymisation salt: `privacy.salt` from the config, else a random one kept (mode 0600)
    in <data_dir>/pseudonym.salt, created on first use so pseudonyms stay stable across exports."""
    if loaded.config.privacy.salt:
        return loaded.config.privacy.salt
    path = loaded.data_dir(data_dir) / "pseudonym.salt"
    try:
        salt = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        salt = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(salt + "\n")
        return salt
    if len(salt) < 16:
        raise ValueError(f"{path}: the salt is shorter than 16 characters; delete the file to make a new one")
    return salt
