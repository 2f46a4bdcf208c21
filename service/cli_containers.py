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

from service.cli_common import ConfigOpt, DataDirOpt, JsonOpt, err, out, print_table
from service.cli_common import emit_json as _emit_json
from service.cli_common import fail as _fail
from service.cli_common import load as _load

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
        print_table(_rich(table, f"container effect on held-out container counts (targets judged on {HELD_OUT})"))
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


@containers_app.command("train")
def train(
    runs: RunsOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model directory (default: <data-dir>/models)")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the container-effect model on the published runs and write it with its card."""
    from models.artifacts import save_model
    from models.containers.published import PUBLISHED_RUNS, load_published_runs
    from models.containers.whatif import train_effect_model
    from service.cli_models import _progress

    target_dir = out_dir or (_load(config).data_dir(data_dir) / "models")
    with _progress("reading published runs", as_json) as step:
        try:
            loaded = load_published_runs(runs or PUBLISHED_RUNS)
            step(0.3, "fitting, and scoring on held-out container counts")
            model, card = train_effect_model(loaded.runs)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise _fail(f"{exc} (pass --runs with the tarball or folder of results.json files)") from None
        path, card = save_model(model, target_dir, card)
    ours: dict[str, float] = next((r for r in card.scores.get("by_model", []) if r["model"] == "ours"), {})
    written = {
        "kind": card.kind,
        "path": str(path),
        "runs": card.training_window["runs"],
        "sha256": card.artefact_sha256,
        "held_out_mape_pct": ours.get("mape_pct"),
        "held_out_p90_coverage": ours.get("p90_coverage"),
    }
    if as_json:
        _emit_json(written)
        return
    out.print(
        f"{card.kind} model written to {path} ({written['runs']} runs; held-out MdAPE "
        f"{ours.get('mape_pct', float('nan')):.2f} %, p90 coverage {ours.get('p90_coverage', float('nan')):.3f})",
        highlight=False,
    )


@containers_app.command("advise")
def advise(
    containers_per_node: Annotated[int, typer.Option("--containers", help="Containers per node now")] = 1,
    affinity: Annotated[str, typer.Option(help="none, cpu or cpu+memory")] = "none",
    cores_per_node: Annotated[int | None, typer.Option("--cores-per-node", help="CPUs of one node")] = None,
    nodes: Annotated[int, typer.Option(help="Hosts the job spans")] = 1,
    client_batch: Annotated[int | None, typer.Option(help="Inference: the client's batch size")] = None,
    server_batch: Annotated[int | None, typer.Option(help="Inference: the server's batch size")] = None,
    top: Annotated[int, typer.Option(min=1, help="Show this many alternatives (table and JSON)")] = 10,
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="Use the newest trained artefact here (default: built-in)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """How should this job be containerised? Alternatives ranked by predicted throughput."""
    from models.artifacts import ModelRegistry
    from models.containers.config import CAVEAT, ContainerConfig
    from twin.advice.containers import ContainerEffects

    try:
        current = ContainerConfig(containers_per_node=containers_per_node, affinity=affinity)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if cores_per_node is not None and containers_per_node > cores_per_node:
        raise _fail(f"--containers {containers_per_node} does not fit --cores-per-node {cores_per_node}")
    registry = ModelRegistry(models_dir) if models_dir is not None else None
    effects = ContainerEffects(registry)
    if registry is not None and registry.current("container_effect") is None:
        why = registry.errors.get("container_effect") or registry.errors.get("*") or "no container_effect artefact"
        raise _fail(f"{models_dir}: {why} (write one with `ctwin containers train --out {models_dir}`)")
    rows, used = effects.whatif(
        current,
        hosts=nodes,
        cores_per_node=cores_per_node,
        client_batch=client_batch,
        server_batch=server_batch,
    )
    node = _node_size(cores_per_node)
    shown = rows[:top]
    if as_json:
        _emit_json(
            {
                "model": used.source,
                "workload": {
                    "nodes": nodes,
                    "cores_per_node": cores_per_node,
                    "client_batch": client_batch,
                    "server_batch": server_batch,
                },
                "node_size": node,
                "caveat": CAVEAT,
                "alternatives_total": len(rows),
                "alternatives": [a.as_dict() for a in shown],
            }
        )
        return
    view = Table("configuration", "throughput vs now (p50)", "p10–p90", title=f"alternatives ({used.source})")
    for a in shown:
        mark = " (now)" if a.current else ""
        view.add_row(a.config.describe() + mark, f"×{a.p50:.2f}", f"×{a.p10:.2f}–{a.p90:.2f}")
    print_table(view)
    if len(shown) < len(rows):
        out.print(f"the best {len(shown)} of {len(rows)} alternatives (--top to see more)", highlight=False)
    out.print(f"node: {node}", highlight=False)
    out.print(f"caveat: {CAVEAT}", highlight=False)


def _node_size(cores_per_node: int | None) -> str:
    """What the answer assumed of the node, said in it: without --cores-per-node the model is not
    told the CPUs per container, and container counts up to 32 (the published runs' nodes) are compared."""
    from models.containers.whatif import CONTAINER_COUNTS

    if cores_per_node is not None:
        return f"{cores_per_node} CPUs (--cores-per-node)"
    counts = ", ".join(str(n) for n in CONTAINER_COUNTS)
    return (
        f"size not given: {counts} containers per node compared (the published runs' nodes have 32 CPUs), "
        "CPUs per container unknown to the model; pass --cores-per-node for yours"
    )
