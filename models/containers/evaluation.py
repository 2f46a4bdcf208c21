"""Held-out evaluation of the container-effect model against its baselines, and its plots.

The protocol: a whole container count is left out of training (every run with that many
containers per node, at every affinity policy, batch size and campaign) and predicted. That is the
question a user asks of a configuration nobody has run. `HELD_OUT` names the fold the targets are
judged on; the other folds are reported beside it, so nobody has to trust one lucky split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import clone

from models.containers.effect import effect_features
from models.containers.estimators import ContainerEffectRegressor, GranularityRule, NoEffect
from models.report import _write

__all__ = [
    "FOLDS",
    "HELD_OUT",
    "ContainerEvaluation",
    "container_models",
    "effect_metrics",
    "evaluate_held_out",
    "write_container_plots",
]

HELD_OUT = 16
"""The fold the targets are judged on: 16 containers per node, between the 4 and 32 it has seen."""
FOLDS = (4, 16, 32)
"""Every fold reported: each an interior count (2 would be extrapolation towards 1, see README)."""


def container_models() -> dict[str, Any]:
    return {"ours": ContainerEffectRegressor(), "granularity rule": GranularityRule(), "no effect": NoEffect()}


def effect_metrics(actual: np.ndarray, p10: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> dict[str, float]:
    """Median absolute percentage error of the p50, and the band's coverage."""
    if len(actual) == 0:
        return {"n": 0.0, "mape_pct": float("nan"), "p90_coverage": float("nan"), "band_coverage": float("nan")}
    ape = np.abs(p50 - actual) / actual * 100
    return {
        "n": float(len(actual)),
        "mape_pct": float(np.median(ape)),
        "p90_coverage": float((actual <= p90).mean()),
        "band_coverage": float(((actual >= p10) & (actual <= p90)).mean()),
    }


@dataclass(frozen=True)
class ContainerEvaluation:
    metrics: pl.DataFrame
    """held_out, model, n, mape_pct, p90_coverage, band_coverage."""
    predictions: pl.DataFrame
    """Every held-out run: its factors, held_out, model, actual ratio, p10, p50, p90."""


def evaluate_held_out(
    effects: pl.DataFrame,
    folds: Sequence[int] = FOLDS,
    models: Mapping[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> ContainerEvaluation:
    """Fit every model without each fold's container count, predict that count's runs."""
    models = dict(models or container_models())
    rows: list[dict[str, Any]] = []
    predicted: list[pl.DataFrame] = []
    steps = max(1, len(folds) * len(models))
    done = 0
    for held in folds:
        test = effects.filter(pl.col("containers") == held)
        train = effects.filter(pl.col("containers") != held)
        if test.is_empty():
            raise ValueError(f"no run has {held} containers per node: choose a fold from the data")
        actual = test["ratio"].to_numpy()
        for name, model in models.items():
            fitted = clone(model).fit(effect_features(train), train["ratio"].to_numpy())
            q = fitted.predict_quantiles(effect_features(test))
            rows.append({"held_out": held, "model": name, **effect_metrics(actual, q.p10, q.p50, q.p90)})
            predicted.append(
                test.select("path", "experiment", "env", "hosts", "containers", "client_batch").with_columns(
                    held_out=pl.lit(held),
                    model=pl.lit(name),
                    actual=pl.Series(actual),
                    p10=pl.Series(q.p10),
                    p50=pl.Series(q.p50),
                    p90=pl.Series(q.p90),
                )
            )
            done += 1
            if progress is not None:
                progress(done / steps)
    return ContainerEvaluation(pl.DataFrame(rows), pl.concat(predicted))


def factor_effects(predictions: pl.DataFrame) -> pl.DataFrame:
    """Predicted vs measured effect per factor level (median over runs): what the Dash view plots."""
    frames = []
    for factor in ("env", "hosts", "client_batch"):
        frames.append(
            predictions.group_by("model", "held_out", factor)
            .agg(measured=pl.col("actual").median(), predicted=pl.col("p50").median(), runs=pl.len())
            .rename({factor: "level"})
            .with_columns(factor=pl.lit(factor), level=pl.col("level").cast(pl.String))
        )
    return pl.concat(frames, how="diagonal").sort("factor", "level", "model", "held_out")


def write_container_plots(evaluation: ContainerEvaluation, out_dir: Path) -> list[Path]:
    """Predicted vs measured effect per held-out run, and per factor level."""
    import plotly.graph_objects as go

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    preds = evaluation.predictions
    scatter = go.Figure()
    for (model,), part in preds.group_by("model", maintain_order=True):
        scatter.add_trace(
            go.Scatter(
                x=part["actual"].to_numpy(),
                y=part["p50"].to_numpy(),
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (part["p90"] - part["p50"]).to_numpy(),
                    "arrayminus": (part["p50"] - part["p10"]).to_numpy(),
                    "thickness": 0.5,
                },
                mode="markers",
                name=str(model),
                marker={"size": 4, "opacity": 0.5},
            )
        )
    top = float(max(preds["actual"].to_numpy().max(), preds["p50"].to_numpy().max()))
    scatter.add_trace(go.Scatter(x=[0.5, top], y=[0.5, top], mode="lines", name="exact", line={"dash": "dot"}))
    scatter.update_layout(
        title="Held-out container counts: predicted vs measured throughput effect (× reference)",
        template="plotly_white",
        width=900,
        height=600,
    )
    scatter.update_xaxes(title="measured effect (× the workload's 1-container, no-affinity throughput)")
    scatter.update_yaxes(title="predicted p50 effect (bars: p10–p90)")
    written += _write(scatter, out_dir / "containers-pred-vs-measured")
    factors = factor_effects(preds.filter(pl.col("model") == "ours"))
    bars = go.Figure()
    labels = [f"{f}={lv} (held {h})" for f, lv, h in factors.select("factor", "level", "held_out").iter_rows()]
    bars.add_trace(go.Bar(x=labels, y=factors["measured"].to_numpy(), name="measured"))
    bars.add_trace(go.Bar(x=labels, y=factors["predicted"].to_numpy(), name="predicted (ours)"))
    bars.update_layout(
        title="Effect per factor level, held-out runs (median)", template="plotly_white", width=1100, height=600
    )
    bars.update_yaxes(title="effect (× reference)")
    written += _write(bars, out_dir / "containers-per-factor")
    return written
