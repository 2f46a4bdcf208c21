"""Store-backed history for the twin's pages: hosts and sites over a time range, downsampled in the
store to at most `max_points` buckets per series whatever the range (a thousand hosts × a day is
one pass there, not a million rows moved to Python)."""

from __future__ import annotations

import math
from dataclasses import replace

import polars as pl

from telemetry.catalog import batch as bm
from telemetry.catalog import catalog
from telemetry.catalog import node as nm
from telemetry.stores.base import Selection, Store
from twin.topology import Topology

__all__ = ["StoreHistory"]

_HOST_HISTORY = {nm.CPU_BUSY_RATIO.name: "cpu_util", nm.MEM_USED_RATIO.name: "mem_used_frac"}
"""The per-host series the history views draw, and the column each becomes."""
_SAMPLES = {"metric": pl.String, "labels": pl.String, "ts_ns": pl.Int64, "value": pl.Float64}


def _is_counter(metric: str) -> bool:
    """Counters are drawn as rates: the catalog says which; a scraped family by Prometheus' suffix."""
    return catalog.get(metric).type == "counter" if metric in catalog else metric.endswith("_total")


class StoreHistory:
    """`store=None` (a twin without a store, in tests and benchmarks) answers empty frames."""

    def __init__(self, topology: Topology, store: Store | None) -> None:
        self.topology = topology
        self.store = store

    def _window(
        self, metrics: tuple[str, ...], site: str, start_s: float, end_s: float, max_points: int
    ) -> tuple[Selection, int]:
        """A site's selection over [start, end) and the step that keeps it within `max_points`
        buckets per series (at least 1 s)."""
        self.topology.site(site)
        start_ns, end_ns = int(start_s * 1e9), int(end_s * 1e9)
        step_ns = max(1_000_000_000, math.ceil((end_ns - start_ns) / max(1, max_points)))
        return Selection(metrics=metrics, labels={"site": site}, start_ns=start_ns, end_ns=end_ns), step_ns

    def node_history(
        self, site: str, hosts: list[str] | None, start_s: float, end_s: float, max_points: int = 2000
    ) -> pl.DataFrame:
        schema = {"host": pl.String, "ts_s": pl.Float64, "cpu_util": pl.Float64, "mem_used_frac": pl.Float64}
        if self.store is None:
            self.topology.site(site)
            return pl.DataFrame(schema=schema)
        selection, step_ns = self._window(tuple(_HOST_HISTORY), site, start_s, end_s, max_points)
        wide = self.store.query_grouped(selection, step_ns=step_ns, by="host")
        if hosts:
            wide = wide.filter(pl.col("host").is_in(hosts))
        return wide.select(
            pl.col("host"),
            (pl.col("ts_ns") / 1e9).alias("ts_s"),
            *(pl.col(metric).alias(column) for metric, column in _HOST_HISTORY.items()),
        ).cast(schema)  # type: ignore[arg-type]

    def host_series(
        self, site: str, host: str, metrics: tuple[str, ...], start_s: float, end_s: float, max_points: int = 500
    ) -> pl.DataFrame:
        schema = {"metric": pl.String, "labels": pl.String, "ts_s": pl.Float64, "value": pl.Float64}
        if self.store is None or not metrics:
            self.topology.site(site)
            return pl.DataFrame(schema=schema)
        window, step_ns = self._window(metrics, site, start_s, end_s, max_points)
        selection = Selection(
            metrics=metrics, labels={"site": site, "host": host}, start_ns=window.start_ns, end_ns=window.end_ns
        )
        # a counter's last value per bucket (its rate is then exact over the bucket), a gauge's mean
        counters = tuple(m for m in metrics if _is_counter(m))
        gauges = tuple(m for m in metrics if m not in counters)
        frames = []
        if gauges:
            frames.append(self.store.query(replace(selection, metrics=gauges), step_ns=step_ns, agg="avg"))
        if counters:
            raw = self.store.query(replace(selection, metrics=counters), step_ns=step_ns, agg="last")
            d_value = pl.col("value").diff().over("metric", "labels")
            d_ts = pl.col("ts_ns").diff().over("metric", "labels") / 1e9
            rate = pl.when(d_value >= 0).then(d_value / d_ts)  # a reset (restart) leaves a gap, not a dip
            frames.append(raw.sort("metric", "labels", "ts_ns").with_columns(rate.alias("value")).drop_nulls("value"))
        frame = pl.concat([f.select("metric", "labels", "ts_ns", "value") for f in frames])
        return (
            frame.select("metric", "labels", (pl.col("ts_ns") / 1e9).alias("ts_s"), "value")
            .cast(schema)  # type: ignore[arg-type]
            .sort("metric", "labels", "ts_s")
        )

    def node_history_band(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        cols = _HOST_HISTORY
        schema = {
            "ts_s": pl.Float64,
            **{f"{c}{sfx}": pl.Float64 for c in cols.values() for sfx in ("", "_min", "_max")},
        }
        if self.store is None:
            self.topology.site(site)
            return pl.DataFrame(schema=schema)
        selection, step_ns = self._window(tuple(cols), site, start_s, end_s, max_points)
        frames = []
        for agg, suffix in (("avg", ""), ("min", "_min"), ("max", "_max")):
            part = self.store.query_grouped(selection, step_ns=step_ns, by="site", agg=agg)  # type: ignore[arg-type]
            frames.append(part.drop("site").rename({m: f"{c}{suffix}" for m, c in cols.items()}))
        if frames[0].is_empty():
            return pl.DataFrame(schema=schema)
        band = frames[0].join(frames[1], on="ts_ns").join(frames[2], on="ts_ns").sort("ts_ns")
        return band.with_columns((pl.col("ts_ns") / 1e9).alias("ts_s")).select(list(schema)).cast(schema)  # type: ignore[arg-type]

    def site_history(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        schema = {"ts_s": pl.Float64, "load": pl.Float64, "jobs_running": pl.Float64, "jobs_pending": pl.Float64}
        if self.store is None:
            self.topology.site(site)
            frame = pl.DataFrame(schema=_SAMPLES)
        else:
            metrics = (bm.CPUS.name, bm.JOBS.name, nm.CPU_BUSY_RATIO.name)
            selection, step_ns = self._window(metrics, site, start_s, end_s, max_points)
            frame = self.store.query(selection, step_ns=step_ns, agg="avg")
        if frame.is_empty():
            return pl.DataFrame(schema=schema)
        frame = frame.with_columns(
            pl.col("labels").str.json_path_match("$.state").alias("state"), (pl.col("ts_ns") / 1e9).alias("ts_s")
        )
        cpus, jobs, state = pl.col("metric") == bm.CPUS.name, pl.col("metric") == bm.JOBS.name, pl.col("state")
        per_ts = frame.group_by("ts_s").agg(
            pl.col("value").filter(cpus & (state == "allocated")).sum().alias("busy"),
            pl.col("value").filter(cpus).sum().alias("cpus"),
            pl.col("value").filter(pl.col("metric") == nm.CPU_BUSY_RATIO.name).mean().alias("host_load"),
            pl.col("value").filter(jobs & (state == "running")).sum().alias("jobs_running"),
            pl.col("value").filter(jobs & (state == "pending")).sum().alias("jobs_pending"),
            jobs.any().alias("has_jobs"),
        )
        return (
            per_ts.select(
                "ts_s",
                pl.when(pl.col("cpus") > 0)
                .then(pl.col("busy") / pl.col("cpus"))
                .otherwise(pl.col("host_load"))
                .alias("load"),
                pl.when(pl.col("has_jobs")).then(pl.col("jobs_running")).alias("jobs_running"),
                pl.when(pl.col("has_jobs")).then(pl.col("jobs_pending")).alias("jobs_pending"),
            )
            .cast(schema)  # type: ignore[arg-type]
            .sort("ts_s")
        )
