"""Runs → effects: each run's throughput relative to the reference configuration of its workload.

Why relative: a model of absolute throughput would learn the node, the model served and the
campaign; the question users ask is "what does this configuration change for my application", and
the ratio to a reference run of the same workload on the same hardware answers it. A workload is
everything except the containerisation: campaign (experiment folder), application, hosts,
scenario, batch sizes. Its reference is one container with no affinity policy (`env` none), the
median over repetitions; workloads with no reference run are left out (and counted).

Only Offline runs measure throughput (LoadGen sends everything at once); Server runs are held at
an offered load, and single/multi-stream runs measure latency, so their qps is not an effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = [
    "CONFIG_FEATURES",
    "WORKLOAD_KEYS",
    "Effects",
    "effect_features",
    "published_effects",
]

WORKLOAD_KEYS = ("experiment", "application", "hosts", "scenario", "client_batch", "server_batch", "extra")

CONFIG_FEATURES: dict[str, pl.DataType] = {
    "containers": pl.Float64(),  # per node
    "cpus_per_container": pl.Float64(),
    "cpu_affinity": pl.Float64(),  # 0/1
    "memory_affinity": pl.Float64(),  # 0/1
    "hosts": pl.Float64(),
    "client_batch": pl.Float64(),
    "server_batch": pl.Float64(),
}
"""What the effect model sees: the configuration and what the workload asks of it."""


@dataclass(frozen=True)
class Effects:
    """One row per run with a reference: the factors, `reference_qps`, `qps` and `ratio`."""

    rows: pl.DataFrame
    workloads: int
    without_reference: int
    """Workloads dropped because no reference run (1 container, no affinity) exists for them."""


def published_effects(runs: pl.DataFrame) -> Effects:
    """The Offline runs of `models.containers.published` as effects."""
    offline = runs.filter(pl.col("scenario") == "Offline")
    keys = list(WORKLOAD_KEYS)
    reference = (
        offline.filter((pl.col("env") == "none") & (pl.col("containers") == 1))
        .group_by(keys)
        .agg(pl.col("qps").median().alias("reference_qps"))
    )
    rows = offline.join(reference, on=keys, how="inner", nulls_equal=True).with_columns(
        (pl.col("qps") / pl.col("reference_qps")).alias("ratio")
    )
    workloads = offline.select(keys).unique().height
    return Effects(rows.sort("path"), workloads, workloads - reference.height)


def effect_features(rows: pl.DataFrame) -> pl.DataFrame:
    """The model's feature frame (CONFIG_FEATURES, in order) for runs or hypothetical configurations."""
    missing = [name for name in CONFIG_FEATURES if name not in rows.columns]
    if missing:
        raise ValueError(f"configurations lack {missing}")
    return rows.select(pl.col(name).cast(dtype) for name, dtype in CONFIG_FEATURES.items())


def ratio_target(rows: pl.DataFrame) -> np.ndarray:
    return rows["ratio"].to_numpy().astype(np.float64)
