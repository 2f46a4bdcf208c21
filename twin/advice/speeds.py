"""Relative site speeds learned from jobs seen at several sites.

The same user submitting the same request (cores and requested time) at two sites is the closest a
job history comes to the same job run twice: the median ratio of their run times over all such
pairs estimates how much faster one site is. With at least `min_pairs` pairs a site's speed is
learned relative to the reference site (speed 1, or its configured speed); otherwise the
configured speed stands. Only completed jobs count (a job killed at its limit says nothing of the
site's speed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

__all__ = ["LearnedSpeed", "learn_speeds"]


@dataclass(frozen=True)
class LearnedSpeed:
    speed: float
    pairs: int
    reference: str


def learn_speeds(
    jobs: pl.DataFrame, reference: str, reference_speed: float = 1.0, *, min_pairs: int = 20
) -> dict[str, LearnedSpeed]:
    """Each site's speed relative to `reference` (whose speed is `reference_speed`), from the
    median log-ratio of run times of the same user's same request at both; sites with fewer than
    `min_pairs` such (user, request) pairs are left out."""
    done = jobs.filter(
        (pl.col("state") == "COMPLETED")
        & pl.col("start_s").is_not_null()
        & pl.col("end_s").is_not_null()
        & (pl.col("end_s") > pl.col("start_s"))
        & pl.col("user").is_not_null()
        & pl.col("req_walltime_s").is_not_null()
    )
    if done.is_empty():
        return {}
    keyed = done.select(
        "site",
        "user",
        pl.coalesce("req_cores", "alloc_cores").alias("cores"),
        "req_walltime_s",
        (pl.col("end_s") - pl.col("start_s")).cast(pl.Float64).alias("run"),
    )
    per = keyed.group_by("site", "user", "cores", "req_walltime_s").agg(pl.col("run").median())
    ref = per.filter(pl.col("site") == reference).drop("site").rename({"run": "ref_run"})
    pairs = per.filter(pl.col("site") != reference).join(ref, on=["user", "cores", "req_walltime_s"])
    if pairs.is_empty():
        return {}
    stats = pairs.group_by("site").agg(
        (pl.col("ref_run") / pl.col("run")).log().median().alias("log_ratio"), pl.len().alias("pairs")
    )
    return {
        site: LearnedSpeed(reference_speed * math.exp(log_ratio), int(n), reference)
        for site, log_ratio, n in stats.iter_rows()
        if n >= min_pairs and log_ratio is not None and math.isfinite(log_ratio)
    }
