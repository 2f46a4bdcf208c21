"""The container-effect model on our own HPCC runs, judged on held-out repetitions.

Per HPCC figure, a gradient-boosted median of log(figure) from the configuration (ranks, binding,
transport, runtime: categorical). The host's state at each run's start (load, CPU pressure) is
recorded but not a feature: with it the held-out signs came out worse (49-51 of 68 against 53),
because on this shared machine the load drifts with the run order rather than with the
configuration. Trained on the first 60 % of a study's repetitions (1-3 of 5, 1-6 of 10), it
predicts every run of the last 40 % (4-5 of 5, 7-10 of 10); the predicted and the measured
held-out figures then go through the same matching (models.containers.hpcc_effects.factor_effects:
each level against a reference that differs only in that factor), so a factor's predicted and
measured effects are compared like for like.

"Right" needs a noise floor. On this 2-core VM the same configuration varies by up to ±10 % from
one repetition to the next under load (HPCC-RUNS.md), so an effect within `NOISE` of 1 is "no
effect": a sign is right when the prediction falls on the same side of the floor (above, within,
below) as the measurement. The order
of a factor's levels (the reference included) is right when every pair of levels whose measured
effects differ by more than the noise floor is ordered the same way by the prediction. Both the
strict (no floor) and the floored verdicts are reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingRegressor

from models.containers.hpcc import FACTORS
from models.containers.hpcc_effects import REFERENCE, REPORTED, factor_effects
from models.threads import one_thread

__all__ = ["HELD_OUT_SHARE", "NOISE", "HpccVerdict", "evaluate_hpcc", "held_out_reps", "studies", "verdict_markdown"]

HELD_OUT_SHARE = 0.4
"""The last 40 % of a study's repetitions are held out (4-5 of 5; `rep` counts from 0)."""
NOISE = 0.10
"""Effects within ±10 % of 1 are "no effect" on this machine (see the module docstring)."""
CONTEXT: tuple[str, ...] = ()
"""Host-state columns used as features (none: see the module docstring)."""


def _matrix(runs: pl.DataFrame, codes: dict[str, dict[str, float]]) -> np.ndarray:
    cols = [pl.col(f).cast(pl.String).replace_strict(codes[f], default=None, return_dtype=pl.Float64) for f in FACTORS]
    return runs.select(*cols, *(pl.col(c).cast(pl.Float64) for c in CONTEXT)).to_numpy()


def predict_figure(train: pl.DataFrame, test: pl.DataFrame, metric: str) -> np.ndarray:
    """Predicted `metric` for each test run (NaN where the training rows had none)."""
    rows = train.filter(pl.col(metric).is_not_null() & (pl.col(metric) > 0))
    # one code per factor level seen in either frame, the same for both
    both = pl.concat([train.select(FACTORS), test.select(FACTORS)])
    codes = {f: {v: float(i) for i, v in enumerate(sorted(both[f].cast(pl.String).unique()))} for f in FACTORS}
    with one_thread():  # a few hundred rows (models.threads)
        model = HistGradientBoostingRegressor(
            loss="absolute_error",
            max_iter=100,
            learning_rate=0.2,
            min_samples_leaf=2,
            categorical_features=[True] * len(FACTORS) + [False] * len(CONTEXT),
            random_state=0,
        ).fit(_matrix(rows, codes), np.log(rows[metric].to_numpy()))
        return np.exp(model.predict(_matrix(test, codes)))


def _side(ratio: float, floor: float) -> int:
    if not math.isfinite(ratio):
        return 0
    if abs(math.log(ratio)) <= math.log1p(floor):
        return 0
    return 1 if ratio > 1 else -1


@dataclass(frozen=True)
class HpccVerdict:
    table: pl.DataFrame
    """metric, factor, level, measured, predicted, trained, sign_strict, sign (floored). `trained`
    is the effect measured on the training repetitions: where the prediction follows it and the
    held-out measurement does not, the miss is the repetitions' noise, not the model's."""
    orders: pl.DataFrame
    """metric, factor, order_strict, order (floored)."""


def evaluate_hpcc(runs: pl.DataFrame, metrics: Sequence[str] = REPORTED, noise: float = NOISE) -> HpccVerdict:
    """Train on the first repetitions, predict the held-out ones, compare the factor effects."""
    held = pl.col("rep").is_in(held_out_reps(runs))
    train, test = runs.filter(~held), runs.filter(held)
    rows: list[dict[str, object]] = []
    orders: list[dict[str, object]] = []
    for metric in metrics:
        measured = factor_effects(test, metric).select("factor", "level", pl.col("ratio").alias("measured"))
        predicted_runs = test.with_columns(pl.Series(metric, predict_figure(train, test, metric)))
        predicted = factor_effects(predicted_runs, metric).select("factor", "level", pl.col("ratio").alias("predicted"))
        trained = factor_effects(train, metric).select("factor", "level", pl.col("ratio").alias("trained"))
        table = measured.join(predicted, on=["factor", "level"], how="left").join(
            trained, on=["factor", "level"], how="left"
        )
        for r in table.iter_rows(named=True):
            m, p = float(r["measured"]), float(r["predicted"] if r["predicted"] is not None else math.nan)
            rows.append(
                {
                    "metric": metric,
                    "factor": r["factor"],
                    "level": r["level"],
                    "measured": m,
                    "predicted": p,
                    "trained": float(r["trained"] if r["trained"] is not None else math.nan),
                    "sign_strict": _side(m, 0.0) == _side(p, 0.0),
                    "sign": _side(m, noise) == _side(p, noise),
                }
            )
        for factor in FACTORS:
            part = table.filter(pl.col("factor") == factor)
            if part.is_empty():
                continue
            levels = [(str(REFERENCE[factor]), 1.0, 1.0), *part.select("level", "measured", "predicted").iter_rows()]
            orders.append(
                {
                    "metric": metric,
                    "factor": factor,
                    "order_strict": _ordered(levels, 0.0),
                    "order": _ordered(levels, noise),
                }
            )
    return HpccVerdict(pl.DataFrame(rows), pl.DataFrame(orders))


def held_out_reps(runs: pl.DataFrame) -> list[int]:
    """The last HELD_OUT_SHARE of the repetitions (0-based `rep`): [3, 4] of 5, [6, 7, 8, 9] of 10."""
    reps = int(runs["rep"].max()) + 1  # type: ignore[arg-type]
    held = max(1, round(reps * HELD_OUT_SHARE))
    return list(range(reps - held, reps))


def _ordered(levels: list[tuple[str, float, float]], noise: float) -> bool:
    """Every pair the measurement tells apart (by more than the floor) is ordered alike."""
    for (_, m1, p1), (_, m2, p2) in combinations(levels, 2):
        if not (math.isfinite(m1) and math.isfinite(m2) and math.isfinite(p1) and math.isfinite(p2)):
            return False
        if abs(math.log(m1 / m2)) <= math.log1p(noise):
            continue
        if (m1 > m2) != (p1 > p2):
            return False
    return True


def verdict_markdown(verdict: HpccVerdict, held_out: Sequence[int]) -> str:
    t, o = verdict.table, verdict.orders
    lines = [
        f"Held-out repetitions {', '.join(str(r + 1) for r in held_out)} (counting from 1); noise floor ±{NOISE:.0%}.",
        "",
        f"- signs right: {int(t['sign'].sum())} of {t.height} (strict, no floor: {int(t['sign_strict'].sum())})",
        f"- orders right: {int(o['order'].sum())} of {o.height} (strict: {int(o['order_strict'].sum())})",
        "",
        "| metric | factor | level | measured | predicted | measured in training | sign | order |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order_of = {(r["metric"], r["factor"]): r["order"] for r in o.iter_rows(named=True)}
    for r in t.iter_rows(named=True):
        lines.append(
            f"| {r['metric']} | {r['factor']} | {r['level']} | {r['measured']:.3g} | {r['predicted']:.3g} | "
            f"{r['trained']:.3g} | "
            f"{'yes' if r['sign'] else 'NO'} | {'yes' if order_of.get((r['metric'], r['factor'])) else 'NO'} |"
        )
    return "\n".join(lines)


def studies(runs: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The runs by study: campaigns sharing their seed (`seed16-...`), made together on one day and
    one machine state; a verdict mixes no two studies' noise."""
    study = pl.col("campaign").str.extract(r"^(seed\d+)", 1).fill_null(pl.col("campaign"))
    return {str(name): part.drop("_study") for (name,), part in runs.with_columns(_study=study).group_by("_study")}


if __name__ == "__main__":
    import sys

    from models.containers.hpcc import HPCC_RUNS, load_hpcc_runs

    runs = load_hpcc_runs(sys.argv[1] if len(sys.argv) > 1 else HPCC_RUNS)
    for name, part in sorted(studies(runs).items()):
        load = float(part["load1_start"].cast(pl.Float64).median() or 0.0)  # type: ignore[arg-type]
        print(f"## study {name}: {part.height} runs, {part['campaign'].n_unique()} campaign(s), median load {load:.1f}")
        print(verdict_markdown(evaluate_hpcc(part), held_out_reps(part)))
        print()
