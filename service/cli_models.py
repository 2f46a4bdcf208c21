"""`ctwin train` and `ctwin evaluate`: fit the runtime and wait models on job history, and score
them against the user estimate and the last-two average on the future they did not see.

Job history comes from SWF logs (`--log`: a path, or a name such as CTC-SP2 found in the shared
data folder or the shipped traces) or, without --log, from the store. The shared console, options
and `_fail`/`_load`/`_emit_json` come from service.cli_common.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from collectors.swf import SwfError, read_swf, strong_filter, to_job_history
from service.cli_common import ConfigOpt, DataDirOpt, JsonOpt, err, print_table
from service.cli_common import emit_json as _emit_json
from service.cli_common import fail as _fail
from service.cli_common import load as _load
from telemetry.schema import parse_duration

__all__ = ["evaluate", "load_history", "models_app", "resolve_log", "train"]

models_app = typer.Typer(help="Train and evaluate the runtime and queue-wait models.", no_args_is_help=True)

ROOT = Path(__file__).resolve().parent.parent
LOG_DIRS = (ROOT.parent / "shared" / "data" / "swf", ROOT / "collectors" / "traces")
PUBLISHED_BASELINES = (
    ROOT.parent / "shared" / "data" / "baselines" / "computed_runtime_baselines_user_estimate_vs_ave2.csv"
)

LogOpt = Annotated[
    list[str] | None,
    typer.Option("--log", "-l", help="SWF log: a path or a name like CTC-SP2 (repeatable; default: the store)"),
]
SiteOpt = Annotated[str | None, typer.Option("--site", help="Site name (one log), or the store's site to use")]


# ---------------------------------------------------------------------------- job history
def resolve_log(spec: str) -> Path:
    """A path as given, or the one log in LOG_DIRS whose file name starts with `spec`."""
    path = Path(spec)
    if path.exists():
        return path
    found: dict[str, Path] = {}
    for folder in LOG_DIRS:
        for candidate in sorted(folder.glob("*.swf*")) if folder.is_dir() else []:
            if candidate.name.lower().startswith(spec.lower()) and candidate.name not in found:
                found[candidate.name] = candidate
    if len(found) == 1:
        return next(iter(found.values()))
    where = " or ".join(str(d) for d in LOG_DIRS)
    if not found:
        raise ValueError(f"no SWF log {spec!r}: not a file, and no log named {spec}* in {where}")
    raise ValueError(f"{spec!r} names several logs ({', '.join(sorted(found))}); give more of the name")


def site_name(path: Path) -> str:
    """CTC-SP2-1996-3.1-cln.swf.gz → CTC-SP2 (the name before the year)."""
    name = path.name.split(".swf")[0]
    match = re.match(r"^(.*?)-(?:19|20)\d\d\b", name)
    return match.group(1) if match else name


def load_swf(path: Path, site: str) -> pl.LazyFrame:
    """The SC'15 strong filter's jobs, with the LOGGED run time (overruns of the request kept).

    strong_filter caps run time at the requested time, as its simulator does; a prediction is
    judged against what really happened, and the published baselines (shared/data/baselines)
    are computed that way too, so the logged run time is put back by job number."""
    log = read_swf(path)
    kept = strong_filter(log)
    logged = log.jobs.select("job_number", pl.col("run_time").alias("_logged_run"))
    jobs = (
        kept.jobs.join(logged, on="job_number", how="left", maintain_order="left")
        .with_columns(pl.col("_logged_run").alias("run_time"))
        .drop("_logged_run")
    )
    return to_job_history(replace(kept, jobs=jobs), site)


def load_history(logs: list[str], site: str | None, config: Path | None, data_dir: Path | None) -> pl.LazyFrame:
    """Job history from SWF logs, or from the store when no log is given."""
    if logs:
        if site and len(logs) > 1:
            raise ValueError("--site names the site of a single --log; with several logs each is named after its file")
        frames = []
        for spec in logs:
            path = resolve_log(spec)
            frames.append(load_swf(path, site or site_name(path)))
        return pl.concat(frames)
    from service.compose import StoreBusyError, open_store

    try:
        store = open_store(_load(config), data_dir, read_only=True)
    except StoreBusyError as exc:
        raise ValueError(f"{exc}; stop the service first, or train from a trace with --log") from None
    try:
        jobs = store.jobs(site=site)
    finally:
        store.close()
    if jobs.is_empty():
        raise ValueError("the store holds no job history" + (f" for site {site}" if site else "") + "; pass --log")
    return jobs.lazy()


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[..., None]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    ) as bar:
        task = bar.add_task(label, total=1.0)

        def update(fraction: float, what: str = label) -> None:
            bar.update(task, completed=fraction, description=what)

        yield update
        update(1.0)


def _features(history: pl.LazyFrame) -> pl.DataFrame:
    from models.features import collect_features

    return collect_features(history).sort("site", "submit_s", maintain_order=True)


def _runtime_models(include_ours: bool = True) -> dict[str, Any]:
    from models.estimators import LastTwoAverage, RuntimeQuantileRegressor, UserEstimate

    models: dict[str, Any] = {"ours": RuntimeQuantileRegressor()} if include_ours else {}
    return {**models, "user estimate": UserEstimate(), "AVE2": LastTwoAverage()}


def _wait_models() -> dict[str, Any]:
    from models.estimators import WaitQuantileRegressor

    return {"ours": WaitQuantileRegressor()}


# ---------------------------------------------------------------------------- train
@models_app.command()
def train(
    log: LogOpt = None,
    site: SiteOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model directory (default: <data-dir>/models)")
    ] = None,
    holdout: Annotated[float, typer.Option(help="Share of the most recent jobs scored for the card")] = 0.2,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the runtime and wait models on job history and write them with their cards."""
    from models.artifacts import ModelCard, data_sha256, save_model
    from models.evaluation import evaluate_split
    from models.features import FEATURES, feature_schema

    if not 0.0 < holdout < 1.0:
        raise _fail(f"--holdout must be between 0 and 1, got {holdout}")
    target_dir = out_dir or (_load(config).data_dir(data_dir) / "models")
    written: list[dict[str, Any]] = []
    with _progress("reading job history", as_json) as step:
        try:
            frame = _features(load_history(log or [], site, config, data_dir))
        except (ValueError, SwfError, FileNotFoundError) as exc:
            raise _fail(str(exc)) from None
        plan = (("runtime", "runtime_s", _runtime_models()), ("wait", "wait_s", _wait_models()))
        for i, (kind, target, models) in enumerate(plan):
            base = i / len(plan)
            step(base, f"scoring the {kind} model on the last {holdout:.0%}")

            def scored(f: float, base: float = base) -> None:
                step(base + f * 0.6 / len(plan))

            try:
                scores = evaluate_split(frame, models, target, 1.0 - holdout, progress=scored).metrics
            except ValueError as exc:
                raise _fail(f"{kind}: {exc}") from None
            step(base + 0.6 / len(plan), f"fitting the {kind} model on all jobs")
            rows = frame.filter(pl.col(target).is_not_null())
            model = models["ours"].fit(rows.select(FEATURES), rows[target].to_numpy())
            card = ModelCard(
                kind=kind,
                features=feature_schema(),
                training_window={
                    "first_submit_s": rows["submit_s"].min(),
                    "last_submit_s": rows["submit_s"].max(),
                    "jobs": rows.height,
                    "sites": sorted(rows["site"].unique().to_list()),
                    "sources": [str(p) for p in (log or ["store"])],
                },
                data_sha256=data_sha256(rows),
                scores={"holdout": holdout, "by_model": scores.to_dicts()},
            )
            path, card = save_model(model, target_dir, card)
            written.append({"kind": kind, "path": str(path), "jobs": rows.height, "sha256": card.artefact_sha256})
    if as_json:
        _emit_json(written)
        return
    table = Table("kind", "artefact", "jobs", "sha256", title=f"models written to {target_dir}", title_justify="left")
    for w in written:
        table.add_row(w["kind"], Path(w["path"]).name, f"{w['jobs']:,}", w["sha256"][:16] + "…")
    print_table(table)


# ---------------------------------------------------------------------------- evaluate
@models_app.command()
def evaluate(
    log: LogOpt = None,
    site: SiteOpt = None,
    split: Annotated[float, typer.Option(help="Train on this share of each site's jobs, test on the rest")] = 0.7,
    rolling: Annotated[
        bool, typer.Option("--rolling", help="Also refit every --every and predict the next window")
    ] = False,
    every: Annotated[str, typer.Option(help="Refit interval of --rolling (e.g. 30d, 2w)")] = "30d",
    target: Annotated[str, typer.Option(help="runtime, wait or both")] = "both",
    plots: Annotated[Path, typer.Option("--plots", help="Directory for the figures")] = Path("ctwin-eval"),
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the tables to this file")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    containers: Annotated[
        bool,
        typer.Option(
            "--containers", help="Score the container-configuration model instead, on held-out container counts"
        ),
    ] = False,
) -> None:
    """Score ours vs the user estimate vs AVE2 per site on a chronological split (and rolling)."""
    from models.evaluation import evaluate_rolling, evaluate_split, metrics_table
    from models.report import write_plots

    if containers:
        from service.cli_containers import evaluate_containers

        evaluate_containers(None, plots / "containers" if plots == Path("ctwin-eval") else plots, markdown, as_json)
        return

    if target not in ("runtime", "wait", "both"):
        raise _fail(f"--target must be runtime, wait or both, not {target!r}")
    try:
        every_s = int(parse_duration(every))
    except ValueError as exc:
        raise _fail(f"--every: {exc}") from None
    targets = [t for t in ("runtime", "wait") if target in (t, "both")]
    protocols = ["split"] + (["rolling"] if rolling else [])
    results: list[tuple[str, str, pl.DataFrame]] = []
    figures: list[Path] = []
    with _progress("reading job history", as_json) as step:
        try:
            frame = _features(load_history(log or [], site, config, data_dir))
        except (ValueError, SwfError, FileNotFoundError) as exc:
            raise _fail(str(exc)) from None
        jobs = len(targets) * len(protocols)
        for i, (kind, protocol) in enumerate((k, p) for k in targets for p in protocols):
            label = f"{kind}, {'split ' + format(split, '.0%') if protocol == 'split' else 'rolling every ' + every}"

            def moved(f: float, i: int = i, label: str = label) -> None:
                step((i + f) / jobs, label)

            col = f"{kind}_s"
            models = _runtime_models() if kind == "runtime" else _wait_models()
            try:
                if protocol == "split":
                    ev = evaluate_split(frame, models, col, split, progress=moved)
                else:
                    ev = evaluate_rolling(frame, models, col, 1.0 - split, every_s, progress=moved)
            except ValueError as exc:
                raise _fail(f"{kind}: {exc}") from None
            results.append((kind, protocol, metrics_table(ev, col)))
            figures += write_plots(ev.predictions, plots / protocol, col)
    published = _baseline_check(frame) if "runtime" in targets else None
    if as_json:
        _emit_json(
            {
                "results": [{"target": k, "protocol": p, "rows": t.to_dicts()} for k, p, t in results],
                "baseline_check": published.to_dicts() if published is not None else None,
                "plots": [str(p) for p in figures],
            }
        )
    else:
        for kind, protocol, table in results:
            print_table(_rich_table(table, f"{kind} — {protocol}"))
        if published is not None:
            print_table(_rich_table(published, "baselines over whole logs vs the published numbers"))
        err.print(f"{len(figures)} figure files in {plots}", highlight=False)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(_markdown(results, published, split, every, sys.argv))


def _baseline_check(frame: pl.DataFrame) -> pl.DataFrame | None:
    """User estimate and AVE2 over each whole log beside the published CSV (when it is there)."""
    import numpy as np

    from models.estimators import LastTwoAverage, UserEstimate
    from models.evaluation import runtime_metrics

    if not PUBLISHED_BASELINES.exists():
        return None
    ref = pl.read_csv(PUBLISHED_BASELINES).with_columns(
        pl.col("log").str.extract(r"^(.*?)-(?:19|20)\d\d").alias("site")
    )
    rows = []
    for (site,), part in frame.filter(pl.col("runtime_s").is_not_null()).group_by("site", maintain_order=True):
        pub = ref.filter(pl.col("site") == site)
        if pub.is_empty():
            continue
        p = pub.row(0, named=True)
        actual = part["runtime_s"].to_numpy()
        for name, model, prefix in (("user estimate", UserEstimate(), "user_est"), ("AVE2", LastTwoAverage(), "AVE2")):
            m = runtime_metrics(actual, model.fit(part).predict_quantiles(part))
            rows.append(
                {
                    "site": site,
                    "model": name,
                    "jobs (ours/published)": f"{part.height}/{p['jobs_used']}",
                    "MAE (ours/published)": f"{int(m['mae_s'])}/{p[prefix + '_MAE_s']}",
                    "median AE": f"{np.round(m['median_ae_s'], 1):g}/{p[prefix + '_medAE_s']}",
                    "mean accuracy": f"{m['mean_accuracy']:.3f}/{p[prefix + '_mean_accuracy']}",
                }
            )
    return pl.DataFrame(rows) if rows else None


def _rich_table(table: pl.DataFrame, title: str) -> Table:
    from models.report import LABELS

    view = Table(*(LABELS.get(c, c) for c in table.columns), title=title, title_justify="left")
    for row in table.iter_rows():
        view.add_row(
            *(
                f"{v:,.0f}" if isinstance(v, float) and abs(v) >= 10 else f"{v:.3f}" if isinstance(v, float) else str(v)
                for v in row
            )
        )
    return view


def _markdown(
    results: list[tuple[str, str, pl.DataFrame]],
    published: pl.DataFrame | None,
    split: float,
    every: str,
    argv: list[str],
) -> str:
    from models.report import markdown_table

    command = "ctwin " + " ".join(shlex.quote(a) for a in argv[1:])
    parts = [
        "# Runtime and queue-wait models: ours vs baselines\n",
        f"Made by `{command}`.\n",
        f"Chronological split: each site's first {split:.0%} of jobs (those that had ended by then) train,"
        " the rest test. Rolling: refit every "
        f"{every} on everything that had ended, predict the next window.\n",
    ]
    for kind, protocol, table in results:
        parts.append(f"\n## {kind} — {protocol}\n\n" + markdown_table(table))
    if published is not None:
        lines = ["| " + " | ".join(published.columns) + " |", "|" + "---|" * published.width]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in published.iter_rows()]
        parts.append(
            "\n## Baselines over whole logs vs the published numbers (ours/published)\n\n" + "\n".join(lines) + "\n"
        )
    return "".join(parts)


if __name__ == "__main__":
    models_app()
