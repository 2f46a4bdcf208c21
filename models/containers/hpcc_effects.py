"""What each factor does to each HPCC figure in our own runs, and whether that holds across
repetitions: the measured side the container-effect model's predictions are judged against.

A factor's effect is a ratio to a reference configuration that differs only in that factor:
binding vs `core`, transport vs `sm`, runtime vs `bare` (same ranks and other factors), ranks vs
1 rank (same binding, transport, runtime). Per configuration and campaign the median over its
repetitions is taken first, then the median of the matched ratios per level: a level that exists
in few combinations (tcp-veth: not with 1 rank, not in a private namespace) is compared like for
like, and a level measured in a later campaign (crun-private) only with the reference runs of
that same campaign, so drift between campaigns does not pass for an effect.
Stability: the same table from the even and from the odd repetitions; an effect whose sign (ratio
above or below 1) or whose order of levels differs between the halves is noise on this machine.

    .venv/bin/python -m models.containers.hpcc_effects [RUNS.csv]   # the markdown table
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import polars as pl

from models.containers.hpcc import FACTORS, HPCC_RUNS, MEASURED_ON, load_hpcc_runs

__all__ = ["LOWER_IS_BETTER", "REFERENCE", "effects_markdown", "factor_effects", "split_half_effects"]

REFERENCE: dict[str, object] = {"ranks": 1, "binding": "core", "transport": "sm", "runtime": "bare"}
LOWER_IS_BETTER = frozenset(
    {"max_ping_pong_latency_us", "avg_ping_pong_latency_us", "natural_ring_latency_us", "random_ring_latency_us"}
    | {"wall_s"}
)
REPORTED = (
    "hpl_tflops",
    "star_stream_triad_gbs",
    "ptrans_gbs",
    "mpi_random_access_gups",
    "mpi_fft_gflops",
    "avg_ping_pong_latency_us",
    "random_ring_bandwidth_gbs",
    "wall_s",
)


def factor_effects(runs: pl.DataFrame, metric: str) -> pl.DataFrame:
    """factor, level, ratio (median matched ratio to the reference level), pairs (matched configs)."""
    medians = (
        runs.filter(pl.col(metric).is_not_null() & (pl.col(metric) > 0))
        .group_by(*FACTORS, "campaign")
        .agg(pl.col(metric).median().alias("value"))
    )
    parts = []
    for factor in FACTORS:
        others = [f for f in FACTORS if f != factor] + ["campaign"]
        base = medians.filter(pl.col(factor) == REFERENCE[factor]).select(*others, base=pl.col("value"))
        matched = medians.filter(pl.col(factor) != REFERENCE[factor]).join(base, on=others)
        parts.append(
            matched.group_by(factor)
            .agg((pl.col("value") / pl.col("base")).median().alias("ratio"), pl.len().alias("pairs"))
            .select(pl.lit(factor).alias("factor"), pl.col(factor).cast(pl.String).alias("level"), "ratio", "pairs")
        )
    return pl.concat(parts).sort("factor", "level")


def split_half_effects(runs: pl.DataFrame, metric: str) -> pl.DataFrame:
    """factor_effects on all, even and odd repetitions, with whether sign and level order agree."""
    whole = factor_effects(runs, metric)
    halves = [
        factor_effects(runs.filter(pl.col("rep") % 2 == parity), metric).select(
            "factor", "level", pl.col("ratio").alias(name)
        )
        for parity, name in ((0, "ratio_even"), (1, "ratio_odd"))
    ]
    keys = ["factor", "level"]
    table = whole.join(halves[0], on=keys, how="left").join(halves[1], on=keys, how="left")
    table = table.with_columns(
        same_sign=((pl.col("ratio_even") - 1).sign() == (pl.col("ratio_odd") - 1).sign()) & (pl.col("ratio_even") != 1)
    )
    order_ok = {factor: _same_order(table.filter(pl.col("factor") == factor)) for factor in FACTORS}
    return table.with_columns(same_order=pl.col("factor").replace_strict(order_ok, return_dtype=pl.Boolean))


def _same_order(rows: pl.DataFrame) -> bool:
    """Do both halves rank the levels (the reference at ratio 1 included) the same way?"""
    if rows.is_empty() or rows["ratio_even"].null_count() or rows["ratio_odd"].null_count():
        return False

    def order(column: str) -> list[str]:
        levels = [*rows["level"].to_list(), "(reference)"]
        values = [*rows[column].to_list(), 1.0]
        return [level for _, level in sorted(zip(values, levels, strict=True))]

    return order("ratio_even") == order("ratio_odd")


def effects_markdown(runs: pl.DataFrame, metrics: Sequence[str] = REPORTED) -> str:
    """One markdown table: every metric's effect per factor level, with the split-half check."""
    lines = [
        f"Measured on: {MEASURED_ON}; {runs.height} runs, {runs['rep'].n_unique()} repetitions.",
        "Ratio = median matched ratio to the reference (1 rank | core | sm | bare); ",
        "even/odd = the same from even and odd repetitions; sign/order = do the halves agree.",
        "",
        "| metric | factor | level | ratio | even | odd | pairs | sign | order |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for metric in metrics:
        table = split_half_effects(runs, metric)
        better = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        for row in table.iter_rows(named=True):
            lines.append(
                f"| {metric} ({better}) | {row['factor']} | {row['level']} | {_fmt(row['ratio'])} | "
                f"{_fmt(row['ratio_even'])} | {_fmt(row['ratio_odd'])} | {row['pairs']} | "
                f"{'yes' if row['same_sign'] else 'NO'} | {'yes' if row['same_order'] else 'NO'} |"
            )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3g}"


if __name__ == "__main__":
    print(effects_markdown(load_hpcc_runs(sys.argv[1] if len(sys.argv) > 1 else HPCC_RUNS)))
