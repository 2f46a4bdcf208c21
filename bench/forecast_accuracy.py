"""How good are the twin's start-time forecasts, on real logs? (issue 5, item 4)

At many instants of a replayed log, take the state the site had then (running jobs with their
elapsed time, pending jobs in submit order, the users' completed jobs so far), forecast every
pending job's start with the twin's live-forecast code (twin.forecasting.forecast_queue: EASY
simulated forward), and compare with the start the log records. Three predictors:

- `requested`: every job runs to its limit: the naive estimate a scheduler like Slurm makes;
- `ave2`: the twin's default, the user's last two completed runtimes (no future information);
- `clairvoyant`: the true runtimes (uses the future: only the bound of what runtime prediction
  alone can buy; the rest of the error is the log's scheduler not being our EASY and the jobs
  that arrive after the instant).

Instants: `--instants` evenly spaced between 10 % and 90 % of each log's submit span. Per log and
predictor: the share of forecasts within ±1 min / ±10 min / ±1 h, the median absolute error, and
the error CDF (saved as an HTML plot in bench/results/). Logs: the shipped KTH-SP2 and SDSC-SP2,
plus CTC-SP2 and SDSC-BLUE from ../shared/data when present.

ratio = naive median absolute error / ours (ave2) median absolute error, over all logs' forecasts
pooled; target 1.0 (the twin must beat the naive estimate). Last line: the house result line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from _common import machine_note, result_line
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.swf import read_swf, to_job_history  # noqa: E402
from collectors.traces import TRACES_DIR  # noqa: E402
from twin.forecasting import forecast_queue  # noqa: E402
from twin.sim.model import Job  # noqa: E402
from twin.sim.predictors import Clairvoyant, History  # noqa: E402

NAME = "forecast_accuracy"
TARGET = 1.0
SHARED = ROOT.parent / "shared" / "data" / "swf"
RESULTS = ROOT / "bench" / "results"
LOGS = {
    "KTH-SP2": TRACES_DIR / "KTH-SP2-1996-2.1-cln.swf.gz",
    "SDSC-SP2": TRACES_DIR / "SDSC-SP2-1998-4.2-cln.swf.gz",
    "CTC-SP2": SHARED / "CTC-SP2-1996-3.1-cln.swf.gz",
    "SDSC-BLUE": SHARED / "SDSC-BLUE-2000-4.2-cln.swf.gz",
}
PREDICTORS = ("requested", "ave2", "clairvoyant")
LIMITS = (("±1 min", 60), ("±10 min", 600), ("±1 h", 3600))


class _Clairvoyant(Clairvoyant):
    """The true runtime of a job, looked up by id (forecast jobs carry no run time)."""

    def __init__(self, runs: dict[str, int]) -> None:
        self.runs = runs

    def predict(self, job: Job, history: History) -> float:
        return float(self.runs.get(job.job_id, job.req_s or 1))


@dataclass
class Scores:
    errors: list[int]
    seconds: float = 0.0

    def row(self) -> dict[str, float]:
        a = np.abs(np.array(self.errors, dtype=np.int64)) if self.errors else np.zeros(0)
        out = {label: float((a <= s).mean()) if a.size else float("nan") for label, s in LIMITS}
        out["median abs error (s)"] = float(np.median(a)) if a.size else float("nan")
        return out


def load(path: Path, name: str) -> tuple[pl.DataFrame, int]:
    log = read_swf(path)
    jobs = (
        to_job_history(log, site=name)
        .filter(pl.col("submit_s").is_not_null() & pl.col("start_s").is_not_null() & pl.col("end_s").is_not_null())
        .with_columns(pl.col("job_id").cast(pl.String))
        .collect()
        .sort("submit_s")
    )
    procs = log.header.max_procs or int(jobs.select(pl.coalesce("alloc_cores", "req_cores")).max().item())
    return jobs, int(procs)


def queue_at(jobs: pl.DataFrame, t: int) -> pl.DataFrame:
    """The active queue at instant t, as a collector would have shown it."""
    pending = jobs.filter((pl.col("submit_s") <= t) & (pl.col("start_s") > t)).with_columns(
        pl.lit("PENDING").alias("state"), pl.lit(None, pl.Int64).alias("start_s"), pl.lit(None, pl.Int64).alias("end_s")
    )
    running = jobs.filter((pl.col("start_s") <= t) & (pl.col("end_s") > t)).with_columns(
        pl.lit("RUNNING").alias("state"), pl.lit(None, pl.Int64).alias("end_s")
    )
    return pl.concat([pending, running]).with_columns(pl.lit(t, pl.Int64).alias("observed_s"))


def evaluate(name: str, path: Path, instants: int, bar: Progress) -> dict[str, Scores]:
    jobs, procs = load(path, name)
    actual = dict(zip(jobs["job_id"].to_list(), jobs["start_s"].to_list(), strict=True))
    runs = dict(zip(jobs["job_id"].to_list(), (jobs["end_s"] - jobs["start_s"]).to_list(), strict=True))
    lo, hi = jobs["submit_s"].quantile(0.1), jobs["submit_s"].quantile(0.9)
    times = np.linspace(float(lo or 0), float(hi or 0), instants).astype(np.int64)
    scores = {p: Scores([]) for p in PREDICTORS}
    task = bar.add_task(name, total=instants)
    for t in times.tolist():
        queue = queue_at(jobs, t)
        finished = jobs.filter(pl.col("end_s") <= t)
        for predictor in PREDICTORS:
            started = time.perf_counter()
            chosen = _Clairvoyant(runs) if predictor == "clairvoyant" else predictor
            result = forecast_queue(queue, procs, name, predictor=chosen, finished=finished)  # type: ignore[arg-type]
            scores[predictor].seconds += time.perf_counter() - started
            for job_id, predicted in result.jobs.select("job_id", "predicted_start_s").iter_rows():
                if predicted is not None:
                    scores[predictor].errors.append(int(predicted) - int(actual[job_id]))
        bar.advance(task)
    return scores


def cdf_plot(name: str, scores: dict[str, Scores], out: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for predictor, s in scores.items():
        a = np.sort(np.abs(np.array(s.errors))) / 60.0
        if a.size:
            y = np.arange(1, a.size + 1) / a.size
            step = max(1, a.size // 2000)  # at most ~2,000 points per trace
            fig.add_trace(go.Scatter(x=a[::step], y=y[::step], mode="lines", name=predictor))
    fig.update_layout(
        title=f"{name}: start-time forecast error CDF (pending jobs at sampled instants)",
        xaxis={"title": "absolute error (minutes, log scale)", "type": "log"},
        yaxis={"title": "share of forecasts", "range": [0, 1]},
    )
    fig.write_html(out, include_plotlyjs="cdn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instants", type=int, default=100, help="instants per log (the README table uses 100)")
    parser.add_argument("--logs", nargs="*", default=list(LOGS))
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "| log | predictor | forecasts | ±1 min | ±10 min | ±1 h | median abs error |",
        "|---|---|---|---|---|---|---|",
    ]
    pooled: dict[str, list[int]] = {p: [] for p in PREDICTORS}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        for name in args.logs:
            path = LOGS[name]
            if not path.exists():
                print(f"  {name}: {path} not present, skipped")
                continue
            scores = evaluate(name, path, args.instants, bar)
            cdf_plot(name, scores, RESULTS / f"forecast_accuracy_{name}.html")
            for predictor, s in scores.items():
                pooled[predictor] += s.errors
                r = s.row()
                lines.append(
                    f"| {name} | {predictor} | {len(s.errors):,} | {r['±1 min']:.1%} | {r['±10 min']:.1%} | "
                    f"{r['±1 h']:.1%} | {r['median abs error (s)'] / 60:.1f} min |"
                )
                print(f"  {name:9} {predictor:11} {len(s.errors):>7,} forecasts in {s.seconds:6.1f} s: {r}")
    table = "\n".join(lines)
    (RESULTS / "forecast_accuracy.md").write_text(table + "\n")
    print(table)
    naive = statistics.median(abs(e) for e in pooled["requested"]) if pooled["requested"] else float("nan")
    ours = statistics.median(abs(e) for e in pooled["ave2"]) if pooled["ave2"] else float("nan")
    print(f"pooled median absolute error: requested {naive / 60:.1f} min, ave2 {ours / 60:.1f} min")
    print(machine_note())
    print(result_line(NAME, naive / ours if ours else float("nan"), TARGET))


if __name__ == "__main__":
    main()
