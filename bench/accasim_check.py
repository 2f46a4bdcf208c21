"""Cross-check of our batch-scheduling simulator (`twin.sim`) against AccaSim: per-job start times
of FCFS and EASY on the same SWF logs (KTH-SP2, CTC-SP2, SDSC-SP2), issue 5 item 2.

    .venv/bin/python bench/accasim_check.py                 # ours vs AccaSim (needs twin.sim)
    .venv/bin/python bench/accasim_check.py --against textbook   # the pipeline, before twin.sim

The job set (both simulators simulate exactly the same jobs): each log is read with
`collectors.swf.read_swf` and cleaned with `collectors.swf.strong_filter` (the SC'15 strong filter,
the same one the SC'15 comparison uses): processor counts filled from each other, both ≤ MaxProcs,
run time > 0, requested time > 0, submit ≥ 0, run time capped at the requested time (so no job
outlives its estimate, and whether a simulator kills at the requested time cannot matter; AccaSim
never kills). One job = (job_id = SWF job number, submit_s, run_s, procs = the filled requested
processors, req_time_s), in submit order, ties in file order. That table is written as a plain
SWF file which AccaSim reads with `--clean none` (no cleaning of its own), so AccaSim gets the
same numbers; the same frame goes to `_run_ours`. As a check, AccaSim's runner's own stdlib copy
of the strong filter (`run_accasim.py --jobs-only`, on the raw log) must give the identical table.

The machine: one pool of MaxProcs processors (the header's), for both.

Three comparisons per log, each ours vs an AccaSim run (`bench/accasim/run_accasim.py`, in its
own venv, made by `bench/accasim/setup.sh` when missing):
- `fcfs`: AccaSim's FirstInFirstOut + FirstFit vs our FCFS.
- `easy`: AccaSim's engine with a textbook EASY pass (`easy-tb`: AccaSim's event loop, resource
  manager, FirstFit allocator and reservation computation; the pass re-states textbook EASY, see
  run_accasim.py) vs our EASY with requested times as runtime estimates.
- `easy, AccaSim's own EBF` (information, not in the ratio): AccaSim 1.1.3's EASYBackfilling is
  not textbook EASY (the reservation is computed once and the blocked head waits for it, and
  backfilling is not protected at all: see bench/accasim/textbook.py for its rules). So
  its start times differ from any textbook EASY for about half of the jobs; the column
  "AccaSim's rules re-stated" shows that `textbook.easy_accasim_rules` reproduces them exactly,
  which is the explanation of the difference.

ratio = the worst share of identical start times over the `fcfs` and `easy` rows (the ones where
both simulators model the same resources and order); target 0.99. Results: the Markdown table in
bench/results/accasim_check.md (bench/out/accasim/accasim_check.textbook.md with `--against
textbook`); AccaSim's CSVs and sidecars in bench/out/accasim/ (`--reuse` takes them as they are:
AccaSim's FCFS alone takes ~8 CPU minutes on CTC-SP2 and ~3 on SDSC-SP2).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import polars as pl
from _common import machine_note

from collectors.swf import read_swf, strong_filter

NAME = "accasim_check"
TARGET = 0.99
ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SHARED_SWF = ROOT.parent / "shared" / "data" / "swf"
LOGS = {"KTH-SP2": "KTH-SP2-*.swf*", "CTC-SP2": "CTC-SP2-*.swf*", "SDSC-SP2": "SDSC-SP2-*.swf*"}
ACCASIM_VENV = Path(os.environ.get("ACCASIM_VENV", ROOT / ".venv-accasim"))
RUNNER = BENCH / "accasim" / "run_accasim.py"
SETUP = BENCH / "accasim" / "setup.sh"
OUT_DIR = BENCH / "out" / "accasim"
RESULTS = BENCH / "results" / "accasim_check.md"
JOB_COLUMNS = ("job_id", "submit_s", "run_s", "procs", "req_time_s")


@dataclass(frozen=True)
class Pairing:
    key: str  # row label
    ours: str  # policy given to _run_ours (and to textbook with --against textbook)
    accasim: str  # policy given to run_accasim.py
    in_ratio: bool


PAIRINGS = (
    Pairing("fcfs", "fcfs", "fcfs", True),
    Pairing("easy", "easy", "easy-tb", True),
    Pairing("easy vs AccaSim's own EBF", "easy", "easy", False),
)


# ------------------------------------------------------------------------------------------ ours
def _run_ours(jobs_frame: pl.DataFrame, total_procs: int, policy: str) -> pl.DataFrame:
    """THE adapter to our simulator: every call into `twin.sim` is here, nowhere else.

    In:  `jobs_frame` — one row per job, Int64 columns job_id (the SWF job number), submit_s,
         run_s (the run time the job really runs, > 0, <= req_time_s), procs (> 0, <=
         total_procs), req_time_s (the user's requested time: the runtime estimate EASY plans
         with), sorted by submit_s with ties in file order (the FCFS queue order);
         `total_procs` — the machine: one pool of this many processors (no nodes, no
         partitions); `policy` — "fcfs" or "easy" (EASY backfilling, estimates = req_time_s).
    Out: a polars DataFrame with Int64 columns job_id and start_s (seconds on the log's clock,
         the clock of submit_s), exactly one row per input job.

    The sim must run every job for run_s from its start (no kill is ever triggered: run_s <=
    req_time_s), process all ends at an instant before the submissions at that instant, and
    then schedule once. For EASY, the shadow time is the earliest requested end of running
    jobs at which the head fits, and the extra processors count every job ending at or before
    that time (ties at the shadow time included).
    """
    from twin.sim import Job, Policy, RequestedTime, Site, simulate

    jobs = [
        Job(str(job_id), submit, run, req, procs)
        for job_id, submit, run, procs, req in jobs_frame.select(
            "job_id", "submit_s", "run_s", "procs", "req_time_s"
        ).iter_rows()
    ]
    chosen = Policy.fcfs() if policy == "fcfs" else Policy.easy()
    result = simulate(jobs, Site.single("log", total_procs), chosen, RequestedTime(), tie_break="batched")
    return result.jobs.select(pl.col("job_id").cast(pl.Int64), pl.col("start_s").cast(pl.Int64))


def _load(name: str) -> ModuleType:
    """A module of bench/accasim/ (not a package: `accasim` is AccaSim's own package name)."""
    spec = importlib.util.spec_from_file_location(f"bench_accasim_{name}", BENCH / "accasim" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run_textbook(jobs_frame: pl.DataFrame, total_procs: int, policy: str) -> pl.DataFrame:
    """The stand-in for `_run_ours` (`--against textbook`): bench/accasim/textbook.py."""
    tb = _load("textbook")
    jobs = list(jobs_frame.select(JOB_COLUMNS).iter_rows())
    starts = tb.simulate(jobs, total_procs, policy)
    return pl.DataFrame(
        {"job_id": list(starts), "start_s": list(starts.values())}, schema={"job_id": pl.Int64, "start_s": pl.Int64}
    )


def runner_for(against: str) -> Callable[[pl.DataFrame, int, str], pl.DataFrame]:
    return _run_ours if against == "ours" else _run_textbook


# ------------------------------------------------------------------------------------------ jobs
def find_log(name: str) -> Path:
    found = sorted(SHARED_SWF.glob(LOGS[name])) if SHARED_SWF.is_dir() else []
    if not found:
        print(f"{name} SWF log not found: no {LOGS[name]} in {SHARED_SWF} (the shared data is not present)")
        raise SystemExit(2)
    return found[0]


def cleaned_jobs(path: Path) -> tuple[pl.DataFrame, int, int]:
    """The strong-filtered job table (JOB_COLUMNS), MaxProcs, and the raw job count."""
    log = read_swf(path)
    max_procs = log.header.max_procs
    if not max_procs:
        raise SystemExit(f"{path}: no MaxProcs in the header")
    raw = log.jobs.select(pl.len()).collect().item()
    frame = (
        strong_filter(log)
        .jobs.with_row_index("line")
        .select(
            pl.col("job_number").alias("job_id"),
            pl.col("submit_time").alias("submit_s"),
            pl.col("run_time").alias("run_s"),
            pl.col("requested_processors").alias("procs"),
            pl.col("requested_time").alias("req_time_s"),
            "line",
        )
        .sort("submit_s", "line", maintain_order=True)
        .drop("line")
        .collect()
    )
    if frame["job_id"].n_unique() != frame.height:
        raise SystemExit(f"{path}: duplicate job numbers; per-job comparison needs unique ids")
    return frame.cast(dict.fromkeys(JOB_COLUMNS, pl.Int64)), int(max_procs), int(raw)


def write_swf(frame: pl.DataFrame, path: Path) -> None:
    """The job table as an SWF file for AccaSim (requested = allocated = procs; the rest -1)."""
    lines = (
        frame.select(
            pl.format(
                "{} {} -1 {} {} -1 -1 {} {} -1 1 -1 -1 -1 -1 -1 -1 -1",
                "job_id",
                "submit_s",
                "run_s",
                "procs",
                "procs",
                "req_time_s",
            )
        )
        .to_series()
        .to_list()
    )
    path.write_text("; written by bench/accasim_check.py from collectors.swf.strong_filter\n" + "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------ AccaSim
def ensure_accasim() -> Path:
    python = ACCASIM_VENV / "bin" / "python"
    if not python.exists():
        print(f"AccaSim venv missing; creating it with {SETUP.relative_to(ROOT)}", file=sys.stderr)
        subprocess.run(["bash", str(SETUP)], check=True, env={**os.environ, "ACCASIM_VENV": str(ACCASIM_VENV)})
    return python


def run_accasim(python: Path, swf: Path, policy: str, out: Path, max_procs: int, extra: tuple[str, ...] = ()) -> dict:
    cmd = [str(python), str(RUNNER), str(swf), policy, str(out), "--max-procs", str(max_procs), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"AccaSim run failed ({' '.join(cmd)}):\n{done.stdout}\n{done.stderr[-3000:]}")
    return json.loads(out.with_suffix(".json").read_text())


def accasim_jobs_table(python: Path, raw_log: Path, max_procs: int, out: Path) -> pl.DataFrame:
    """The job table run_accasim.py's own strong filter gives on the raw log (the cross-check)."""
    cmd = [str(python), str(RUNNER), str(raw_log), "fcfs", str(out), "--max-procs", str(max_procs), "--jobs-only"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return pl.read_csv(out, schema=dict.fromkeys(JOB_COLUMNS, pl.Int64))


# ------------------------------------------------------------------------------------------ compare
@dataclass
class Row:
    log: str
    pairing: Pairing
    jobs: int
    identical: float
    within_1s: float
    missing: int
    mean_abs_diff_s: float
    accasim_cpu_s: float
    accasim_wall_s: float
    ours_cpu_s: float
    explained: float | None = None
    mismatches: list[dict] = field(default_factory=list)


def compare(frame: pl.DataFrame, accasim: pl.DataFrame, ours: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Per job: submit, run, procs, req, AccaSim's start, ours; and how many jobs either lacks."""
    a = accasim.select("job_id", pl.col("start_s").alias("accasim_start"))
    o = ours.select(pl.col("job_id").cast(pl.Int64), pl.col("start_s").cast(pl.Int64).alias("ours_start"))
    if o["job_id"].n_unique() != o.height:
        raise ValueError("_run_ours returned a job id more than once")
    joined = frame.join(a, on="job_id", how="left").join(o, on="job_id", how="left")
    missing = joined.filter(pl.col("accasim_start").is_null() | pl.col("ours_start").is_null()).height
    extra = o.join(frame, on="job_id", how="anti").height
    return joined.with_columns((pl.col("ours_start") - pl.col("accasim_start")).alias("diff_s")), missing + extra


def first_mismatches(joined: pl.DataFrame, n: int = 5) -> list[dict]:
    return (
        joined.filter(pl.col("diff_s") != 0)
        .with_columns(pl.min_horizontal("accasim_start", "ours_start").alias("first"))
        .sort("first", "submit_s")
        .drop("first")
        .head(n)
        .to_dicts()
    )


def probe(run: Callable[[pl.DataFrame, int, str], pl.DataFrame]) -> None:
    """Call the simulator once on three jobs per policy, before any long AccaSim run: fails at
    once when it is not wired (NotImplementedError) or returns the wrong shape."""
    frame = pl.DataFrame(
        {
            "job_id": [7, 8, 9],
            "submit_s": [0, 0, 5],
            "run_s": [10, 20, 5],
            "procs": [2, 2, 1],
            "req_time_s": [10, 30, 5],
        },
        schema=dict.fromkeys(JOB_COLUMNS, pl.Int64),
    )
    expected = {"fcfs": {7: 0, 8: 10, 9: 10}, "easy": {7: 0, 8: 10, 9: 5}}
    for policy, starts in expected.items():
        got = run(frame, 3, policy)
        if set(got.columns) < {"job_id", "start_s"}:
            raise SystemExit(f"the simulator returned columns {got.columns}; job_id and start_s are needed")
        got_starts = dict(got.select(pl.col("job_id").cast(pl.Int64), pl.col("start_s").cast(pl.Int64)).iter_rows())
        if got_starts != starts:
            print(f"probe {policy}: expected {starts}, got {got_starts} (the comparison goes on)", file=sys.stderr)


def check_log(name: str, python: Path, run: Callable, reuse: bool, parallel: int) -> list[Row]:
    path = find_log(name)
    frame, max_procs, raw = cleaned_jobs(path)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    swf = OUT_DIR / f"{name}.strong.swf"
    write_swf(frame, swf)
    mirror = accasim_jobs_table(python, path, max_procs, OUT_DIR / f"{name}.jobs.csv")
    if not mirror.equals(frame):
        raise SystemExit(f"{name}: run_accasim.py's strong filter differs from collectors.swf.strong_filter")
    print(f"{name}: {raw} jobs in the log, {frame.height} after the strong filter, MaxProcs {max_procs}", flush=True)

    def accasim_run(policy: str) -> tuple[pl.DataFrame, dict]:
        out = OUT_DIR / f"{name}.{policy}.csv"
        sidecar = out.with_suffix(".json")
        digest = hashlib.sha256(swf.read_bytes()).hexdigest()
        fresh = reuse and out.exists() and sidecar.exists()
        if not (fresh and json.loads(sidecar.read_text()).get("swf_sha256") == digest):
            run_accasim(python, swf, policy, out, max_procs, ("--clean", "none"))
        meta = json.loads(sidecar.read_text())
        if meta["simulated"] != frame.height or meta["rejected"] or meta["inconsistent_rows"]:
            raise SystemExit(f"{name} {policy}: AccaSim simulated {meta['simulated']} of {frame.height} jobs: {meta}")
        print(f"  AccaSim {policy}: {meta['sim_cpu_s']:.1f} s CPU, {meta['sim_wall_s']:.1f} s wall", flush=True)
        return pl.read_csv(
            out, schema={"job_id": pl.Int64, "submit_s": pl.Int64, "start_s": pl.Int64, "end_s": pl.Int64}
        ), meta

    policies = sorted({p.accasim for p in PAIRINGS})
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = dict(zip(policies, pool.map(accasim_run, policies), strict=True))

    tb = _load("textbook")
    jobs = list(frame.select(JOB_COLUMNS).iter_rows())
    rows = []
    for pairing in PAIRINGS:
        accasim, meta = results[pairing.accasim]
        c0 = time.process_time()
        ours = run(frame, max_procs, pairing.ours)
        ours_cpu = time.process_time() - c0
        joined, missing = compare(frame, accasim, ours)
        both = joined.drop_nulls(["accasim_start", "ours_start"])
        explained = None
        if not pairing.in_ratio:  # AccaSim's own EBF: how much do its rules, re-stated, explain?
            restated = tb.easy_accasim_rules(jobs, max_procs)
            explained = (
                sum(restated.get(j) == s for j, s in accasim.select("job_id", "start_s").iter_rows()) / accasim.height
            )
        rows.append(
            Row(
                log=name,
                pairing=pairing,
                jobs=frame.height,
                identical=both.filter(pl.col("diff_s") == 0).height / frame.height,
                within_1s=both.filter(pl.col("diff_s").abs() <= 1).height / frame.height,
                missing=missing,
                mean_abs_diff_s=float(both.select(pl.col("diff_s").abs().mean()).item() or 0.0),
                accasim_cpu_s=meta["sim_cpu_s"],
                accasim_wall_s=meta["sim_wall_s"],
                ours_cpu_s=ours_cpu,
                explained=explained,
                mismatches=first_mismatches(joined),
            )
        )
        print(f"  {pairing.key}: identical {rows[-1].identical:.4%}, within ±1 s {rows[-1].within_1s:.4%}", flush=True)
    return rows


# ------------------------------------------------------------------------------------------ report
EXPLANATION = """## Why AccaSim's own EASY differs (the `easy vs AccaSim's own EBF` rows)

AccaSim 1.1.3's `EASYBackfilling` (scheduler_class.py) with `FirstFit` (allocator_class.py) departs from textbook
EASY in the rules listed in `bench/accasim/textbook.py`; `easy_accasim_rules` there re-states them and reproduces
AccaSim's start times for the share shown in the last column:

1. the reservation is computed once, when the head first blocks, and kept until the clock reaches it, even when
   jobs end before their requested time and the head would fit earlier;
2. before that time the blocked head is not tried at all;
3. backfilling is unprotected: `scheduling_method` calls the allocator with `reserved_nodes=[]`, and
   `_compute_reservation_overlaps` then returns that empty list, so every queued job that fits now starts,
   whatever its length;
4. from the reservation time on, the head is tried first at each pass; if backfilled jobs hold the processors it
   stays blocked (with its old reservation) while the rest keeps being backfilled, so it can wait indefinitely;
5. no event is scheduled at the reservation time: the head is retried at the next submission or job end
   (6. except at the end of a log, when none is left: AccaSim's clock then ticks by one second up to it).

Example, KTH-SP2 (100 processors), the first mismatch: at 614539 job 67 (25 processors, 60 s requested) arrives
with 21 free and blocks; AccaSim reserves 614595 for it (job 66's requested end). At 614556 job 66 ends early and
37 processors are free: textbook EASY starts job 67 there. AccaSim keeps it waiting for its reservation (rules 1-2)
and backfills job 68 (36 processors, requested end 614616, past the reservation: rule 3) instead. Job 68 ends at
614583, but nothing happens at 614595 (rule 5): job 67 starts at the next event, job 65's end at 614604, 48 s later
than in textbook EASY, and every later decision differs from there on.
"""


def markdown(rows: list[Row], against: str, ratio: float) -> str:
    who = "ours (twin.sim)" if against == "ours" else "textbook stand-in (bench/accasim/textbook.py, NOT twin.sim)"
    out = [
        "# AccaSim cross-check: per-job start times",
        "",
        f"Produced by `.venv/bin/python bench/accasim_check.py{' --against textbook' if against != 'ours' else ''}`;"
        f" compared: {who} vs AccaSim 1.1.3. {machine_note()}.",
        "",
        "Jobs: the SC'15 strong filter (`collectors.swf.strong_filter`), identical for both; one pool of"
        " MaxProcs processors; EASY plans with the requested times. Shares are of all jobs after the filter.",
        "",
        "| log | policy | AccaSim side | jobs | identical start | within ±1 s | mean abs diff (s) | missing |"
        " AccaSim sim CPU s | in ratio | AccaSim's rules re-stated |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    side = {
        "fcfs": "FirstInFirstOut + FirstFit",
        "easy-tb": "engine + textbook EASY pass",
        "easy": "EASYBackfilling + FirstFit",
    }
    for r in rows:
        out.append(
            f"| {r.log} | {r.pairing.ours} | {side[r.pairing.accasim]} | {r.jobs:,} | {r.identical:.2%}"
            f" | {r.within_1s:.2%} | {r.mean_abs_diff_s:,.0f} | {r.missing} | {r.accasim_cpu_s:.1f}"
            f" | {'yes' if r.pairing.in_ratio else 'no'} | {'' if r.explained is None else f'{r.explained:.2%}'} |"
        )
    out += ["", f"ratio (worst identical share over the rows in the ratio) = {ratio:.4f}, target {TARGET}", ""]
    out += ["## First mismatches", ""]
    for r in rows:
        if not r.mismatches:
            continue
        out += [
            f"**{r.log}, {r.pairing.key}** (first by start time)",
            "",
            "| job_id | submit_s | run_s | procs | req_time_s | AccaSim start | ours | diff |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m in r.mismatches:
            out.append(
                f"| {m['job_id']} | {m['submit_s']} | {m['run_s']} | {m['procs']} | {m['req_time_s']} |"
                f" {m['accasim_start']} | {m['ours_start']} | {m['diff_s']} |"
            )
        out.append("")
    out.append(EXPLANATION)
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", choices=("ours", "textbook"), default="ours")
    ap.add_argument("--logs", default=",".join(LOGS), help="comma-separated, from " + ", ".join(LOGS))
    ap.add_argument("--reuse", action="store_true", help="reuse AccaSim outputs in bench/out/accasim/")
    ap.add_argument("--parallel", type=int, default=1, help="AccaSim runs at once (its timings are then noisier)")
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"default {RESULTS.relative_to(ROOT)} (bench/out/accasim/ with --against textbook)",
    )
    args = ap.parse_args()
    if args.results is None:  # a stand-in's table never lands where the real one goes
        args.results = RESULTS if args.against == "ours" else OUT_DIR / "accasim_check.textbook.md"

    run = runner_for(args.against)
    try:
        probe(run)
    except NotImplementedError as exc:
        print(f"our simulator is not wired: {exc}")
        print(f"{NAME}: ratio=0.000 target={TARGET:.2f} FAIL")
        return 1
    python = ensure_accasim()
    rows: list[Row] = []
    for name in args.logs.split(","):
        rows += check_log(name, python, run, args.reuse, args.parallel)
    ratio = min(r.identical for r in rows if r.pairing.in_ratio)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(markdown(rows, args.against, ratio) + "\n")
    print(f"wrote {args.results.relative_to(ROOT) if args.results.is_relative_to(ROOT) else args.results}")
    print(machine_note())
    print(f"{NAME}: ratio={ratio:.4f} target={TARGET:.2f} {'PASS' if ratio >= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
