"""The models page's numbers: prediction error binned by time, and the drift rule.

Errors are compared as absolute seconds (|predicted p50 − realised|), the unit of the cards'
held-out `median_ae_s`. The accuracy line is relative (÷ realised, floored at a minute: waits
are often zero) so runtime, wait and turnaround share one axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "DRIFT_FACTOR",
    "MIN_RECENT",
    "RECENT_SHARE",
    "RULE",
    "Drift",
    "abs_errors",
    "binned_error",
    "card_baseline",
    "drift",
    "split_recent",
]

DRIFT_FACTOR = 1.5
"""The alarm fires when the recent median |error| is more than this times its baseline."""
MIN_RECENT = 5
"""Fewer recent pairs than this say nothing either way: no alarm, and the page says why."""
RECENT_SHARE = 0.25
"""The recent window: the newest quarter of the chosen range (of the scored list, for forecasts)."""
FLOOR_S = 60.0
"""Relative errors divide by max(realised, this): a job that waited 0 s has no relative error."""
RULE = (
    f"Drift alarm: the median |predicted − realised| of the newest {RECENT_SHARE:.0%} of the window is more than"
    f" {DRIFT_FACTOR}× its baseline: the runtime artefact card's held-out median error (the model making those"
    f" predictions), else the earlier"
    f" {1 - RECENT_SHARE:.0%} of the window (forecasts: of each site's scored list, the worst site shown);"
    f" at least {MIN_RECENT} recent pairs are needed."
)


@dataclass(frozen=True)
class Drift:
    kind: str
    recent_s: float | None
    """Median |error| of the recent window, seconds."""
    baseline_s: float | None
    baseline_from: str
    """"card" (held-out score) or "earlier window"."""
    n_recent: int
    alarm: bool
    why: str


def drift(kind: str, recent_abs_s: Sequence[float], baseline_s: float | None, baseline_from: str) -> Drift:
    """The drift rule (RULE) for one kind."""
    n = len(recent_abs_s)
    recent = float(np.median(np.asarray(recent_abs_s, dtype=float))) if n else None
    if baseline_s is None or not math.isfinite(baseline_s):
        return Drift(kind, recent, None, baseline_from, n, False, "no baseline yet (no card, no earlier pairs)")
    if recent is None or n < MIN_RECENT:
        return Drift(kind, recent, baseline_s, baseline_from, n, False, f"only {n} recent pairs (need {MIN_RECENT})")
    ratio = recent / max(baseline_s, 1.0)
    alarm = ratio > DRIFT_FACTOR
    verdict = "drifting" if alarm else "within bounds"
    return Drift(kind, recent, baseline_s, baseline_from, n, alarm, f"{verdict}: ×{ratio:.2f} of the {baseline_from}")


def card_baseline(card: Any | None) -> float | None:
    """The card's held-out median |error| of our model (the median over its sites), or None."""
    if card is None:
        return None
    rows = [r for r in (card.scores or {}).get("by_model", []) if r.get("model") == "ours"]
    values = [float(r["median_ae_s"]) for r in rows if r.get("median_ae_s") is not None]
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else None


def split_recent(pairs: pl.DataFrame, start_s: float, end_s: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(earlier, recent) pairs of the window [start_s, end_s): recent is its newest RECENT_SHARE."""
    cut = end_s - (end_s - start_s) * RECENT_SHARE
    return pairs.filter(pl.col("ts_s") < cut), pairs.filter(pl.col("ts_s") >= cut)


def abs_errors(pairs: pl.DataFrame) -> list[float]:
    return (pairs["predicted_s"] - pairs["realised_s"]).abs().to_list() if pairs.height else []


def binned_error(pairs: pl.DataFrame, bin_s: int) -> pl.DataFrame:
    """Per kind and time bin: median relative |error|, and how many pairs (columns kind, ts_s, rel_error, n)."""
    if pairs.height == 0:
        return pl.DataFrame(schema={"kind": pl.String, "ts_s": pl.Float64, "rel_error": pl.Float64, "n": pl.UInt32})
    rel = (pl.col("predicted_s") - pl.col("realised_s")).abs() / pl.max_horizontal(pl.col("realised_s"), FLOOR_S)
    return (
        pairs.with_columns(((pl.col("ts_s") // bin_s) * bin_s).alias("ts_s"), rel.alias("rel_error"))
        .group_by("kind", "ts_s")
        .agg(pl.col("rel_error").median(), pl.len().alias("n"))
        .sort("kind", "ts_s")
    )
