"""`ctwin evaluate --containers` (and `ctwin containers ...`): the container-configuration model
scored on held-out container counts against its baselines, as a table, Markdown and plots."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.table import Table

from service.cli_common import JsonOpt, err, out
from service.cli_common import emit_json as _emit_json
from service.cli_common import fail as _fail

__all__ = ["containers_app", "evaluate_containers"]

containers_app = typer.Typer(help="The container-configuration performance model.", no_args_is_help=True)

RunsOpt = Annotated[
    Path | None,
    typer.Option("--runs", help="Published runs: the tarball or a folder of results.json (default: the shipped copy)"),
]


def evaluate_containers(
    runs: Path | None, plots: Path, markdown: Path | None, as_json: bool, folds: tuple[int, ...] | None = None
) -> None:
    from models.containers.effect import published_effects
    from models.containers.evaluation import FOLDS, HELD_OUT, evaluate_held_out, write_container_plots
    from models.containers.published import PUBLISHED_RUNS, load_published_runs
    from service.cli_models import _progress

    with _progress("reading published runs", as_json) as step:
        try:
            loaded = load_published_runs(runs or PUBLISHED_RUNS)
        except (FileNotFoundError, OSError) as exc:
            raise _fail(f"{exc} (pass --runs with the tarball or folder of results.json files)") from None
        effects = published_effects(loaded.runs)
        if effects.rows.is_empty():
            raise _fail("no Offline run with a reference run (1 container, env none) to compare with")
        step(0.1, "fitting without each held-out container count")
        try:
            evaluation = evaluate_held_out(
                effects.rows, folds or FOLDS, progress=lambda f: step(0.1 + 0.8 * f, "held-out folds")
            )
        except ValueError as exc:
            raise _fail(str(exc)) from None
        step(0.95, "plots")
        figures = write_container_plots(evaluation, plots)
    table = evaluation.metrics
    summary = {
        "runs": loaded.runs.height,
        "skipped_files": len(loaded.problems),
        "effect_rows": effects.rows.height,
        "workloads": effects.workloads,
        "workloads_without_reference": effects.without_reference,
        "judged_fold": HELD_OUT,
    }
    if as_json:
        skipped = [{"path": p.path, "reason": p.reason} for p in loaded.problems]
        _emit_json({**summary, "rows": table.to_dicts(), "plots": [str(p) for p in figures], "skipped": skipped})
    else:
        out.print(_rich(table, f"container effect on held-out container counts (targets judged on {HELD_OUT})"))
        err.print(
            f"{summary['runs']} runs read, {summary['skipped_files']} files skipped (run with --json to list them); "
            f"{summary['effect_rows']} Offline runs compared with their workload's reference; "
            f"{len(figures)} figure files in {plots}",
            highlight=False,
        )
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(_markdown(table, summary))


def _rich(table: pl.DataFrame, title: str) -> Table:
    view = Table("held out", "model", "runs", "MdAPE %", "p90 coverage", "p10–p90 coverage", title=title)
    for row in table.iter_rows(named=True):
        view.add_row(
            str(row["held_out"]),
            row["model"],
            f"{row['n']:.0f}",
            f"{row['mape_pct']:.2f}",
            f"{row['p90_coverage']:.3f}",
            f"{row['band_coverage']:.3f}",
        )
    return view


def _markdown(table: pl.DataFrame, summary: dict[str, int]) -> str:
    command = "ctwin " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "# Container-configuration model: held-out container counts\n",
        f"Made by `{command}`. {summary['effect_rows']} Offline runs of {summary['workloads']} workloads, each"
        " compared with its workload's reference (1 container, no affinity policy, median of repetitions).\n",
        "| held out | model | runs | MdAPE % | p90 coverage | p10–p90 coverage |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.iter_rows(named=True):
        name = f"**{row['model']}**" if row["model"] == "ours" else row["model"]
        lines.append(
            f"| {row['held_out']} | {name} | {row['n']:.0f} | {row['mape_pct']:.2f} | "
            f"{row['p90_coverage']:.3f} | {row['band_coverage']:.3f} |"
        )
    return "\n".join(lines) + "\n"


@containers_app.command("evaluate")
def evaluate(
    runs: RunsOpt = None,
    fold: Annotated[
        list[int] | None, typer.Option("--fold", help="Container count to hold out (repeatable; default 4, 16, 32)")
    ] = None,
    plots: Annotated[Path, typer.Option("--plots", help="Directory for the figures")] = Path("ctwin-eval/containers"),
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the table to this file")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score the container-effect model vs 'no effect' and the granularity rule on held-out counts."""
    evaluate_containers(runs, plots, markdown, as_json, tuple(fold) if fold else None)
