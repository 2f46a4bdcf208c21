"""Evaluation results as Markdown tables and plotly figures (predicted vs actual, error CDF).

Figures are written as self-contained HTML (plotly.js once per directory, so they open offline);
PNG is added only when kaleido is installed and can render (it needs a browser of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = ["LABELS", "markdown_table", "write_plots"]

LABELS = {
    "n": "jobs",
    "mae_s": "MAE (s)",
    "median_ae_s": "median AE (s)",
    "mean_accuracy": "mean accuracy",
    "under_share": "under-predicted",
    "p90_coverage": "p90 coverage",
    "band_coverage": "p10–p90 coverage",
    "within_10min": "within ±10 min",
    "within_1h": "within ±1 h",
}
_SECONDS = ("mae_s", "median_ae_s")


def markdown_table(table: pl.DataFrame, *, extra: Sequence[str] = ()) -> str:
    """One row per site × model; seconds as integers, shares with three decimals."""
    cols = [c for c in table.columns if c not in ("site", "model", *extra)]
    head = ["site", "model", *extra, *(LABELS.get(c, c) for c in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.iter_rows(named=True):
        cells = [str(row["site"]), f"**{row['model']}**" if row["model"] == "ours" else str(row["model"])]
        cells += [str(row[e]) for e in extra]
        for c in cols:
            v = row[c]
            if v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("–")
            elif c == "n" or c in _SECONDS:
                cells.append(f"{v:,.0f}")
            else:
                cells.append(f"{v:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plots(predictions: pl.DataFrame, out_dir: Path, target: str, max_points: int = 4000) -> list[Path]:
    """Per site: predicted p50 vs actual (log-log scatter, a sample) and the CDF of |error|."""
    import plotly.graph_objects as go

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    unit = "run time" if target == "runtime_s" else "queue wait"
    for (site,), part in predictions.group_by("site", maintain_order=True):
        scatter, cdf = go.Figure(), go.Figure()
        for (model,), rows in part.group_by("model", maintain_order=True):
            sample = rows.sample(min(max_points, rows.height), seed=0) if rows.height > max_points else rows
            scatter.add_trace(
                go.Scattergl(
                    x=sample["actual"].clip(1).to_numpy(),
                    y=sample["p50"].clip(1).to_numpy(),
                    mode="markers",
                    name=str(model),
                    marker={"size": 3, "opacity": 0.4},
                )
            )
            err = np.sort(np.abs(rows["p50"].to_numpy() - rows["actual"].to_numpy()))
            share = np.arange(1, len(err) + 1) / max(len(err), 1)
            step = max(1, len(err) // 2000)
            cdf.add_trace(go.Scatter(x=np.maximum(err[::step], 1), y=share[::step], mode="lines", name=str(model)))
        top = max(1.0, float(part["actual"].fill_nan(None).max() or 1))  # type: ignore[arg-type]
        scatter.add_trace(go.Scatter(x=[1, top], y=[1, top], mode="lines", name="exact", line={"dash": "dot"}))
        _layout(scatter, f"{site}: predicted vs actual {unit}", f"actual {unit} (s)", "predicted p50 (s)", True)
        _layout(cdf, f"{site}: CDF of |predicted − actual| {unit}", "absolute error (s)", "share of jobs", False)
        stem = f"{site}-{target.removesuffix('_s')}"
        for name, fig in ((f"{stem}-pred-vs-actual", scatter), (f"{stem}-error-cdf", cdf)):
            written.extend(_write(fig, out_dir / name))
    return written


def _layout(fig: Any, title: str, x: str, y: str, log_y: bool) -> None:
    fig.update_layout(title=title, template="plotly_white", width=900, height=600)
    fig.update_xaxes(title=x, type="log")
    fig.update_yaxes(title=y, type="log" if log_y else "linear")


def _write(fig: Any, stem: Path) -> list[Path]:
    html = stem.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="directory")
    written = [html]
    try:
        import kaleido  # noqa: F401

        png = stem.with_suffix(".png")
        fig.write_image(png)
        written.append(png)
    except Exception:  # kaleido missing, or present without a browser to render with: HTML is enough
        pass
    return written
