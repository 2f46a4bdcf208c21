"""The composition root: config → store, collectors, pipeline. The only place that wires packages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collectors import registry
from service.config import LoadedConfig
from telemetry.pipeline import Pipeline, RunningCollector, StoreSink
from telemetry.stores.base import Store
from telemetry.stores.duckdb_store import DuckDBStore


def open_store(loaded: LoadedConfig, data_dir: str | Path | None = None, read_only: bool = False) -> Store:
    cfg = loaded.config.store
    path = loaded.store_path(data_dir)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no store at {path}; run `ctwin run` first or pass --data-dir")
    return DuckDBStore(path, memory_limit=cfg.memory_limit, read_only=read_only)


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
    return Runtime(store, pipeline, sink)
