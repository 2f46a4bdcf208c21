"""Whole-log replay with EASY, ours (`twin.sim`) vs AccaSim 1.1.3, on CTC-SP2 (77,199 jobs after the
strong filter, 338 processors), the same job table and the same core. Issue 5, first Performance
bullet: ours must be at least 10× faster.

    .venv/bin/python bench/sim_vs_accasim_speed.py                  # needs twin.sim wired
    .venv/bin/python bench/sim_vs_accasim_speed.py --against textbook   # the harness, before

- Jobs: exactly those of bench/accasim_check.py (`collectors.swf.strong_filter`, one pool of
  MaxProcs processors, EASY with requested times as estimates), prepared before any clock.
- AccaSim: `bench/accasim/run_accasim.py` with AccaSim's own EASYBackfilling + FirstFit (its EASY;
  `--accasim-policy easy-tb` times the textbook pass instead), in its own venv and process. Its
  time is the sidecar's: the simulation loop only (`start_hpc_simulation`), without building the
  simulator or writing the CSV. AccaSim has no separate load step: its loop reads and parses the
  SWF lines as it goes; that share (`parse_s`, measured apart) is printed, and a ratio without
  it, as information.
- Ours: `_run_ours` (the one adapter, in bench/accasim_check.py), after one untimed warm-up; the
  best of `--repeat` runs.
- Same core: both are pinned to one CPU (the last this process may use) with sched_setaffinity.
- The ratio uses CPU seconds (user + system, all threads; AccaSim's forked children included),
  which a busy shared machine disturbs far less than wall time; both wall times are printed.

ratio = AccaSim CPU seconds ÷ our CPU seconds; target 10.0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
from _common import machine_note, result_line
from accasim_check import (
    LOGS,
    OUT_DIR,
    RUNNER,
    cleaned_jobs,
    ensure_accasim,
    find_log,
    probe,
    runner_for,
    write_swf,
)

NAME = "sim_vs_accasim_speed"
TARGET = 10.0
Runner = Callable[[pl.DataFrame, int, str], pl.DataFrame]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pick_cpu() -> int | None:
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def time_accasim(python: Path, swf: Path, policy: str, max_procs: int, cpu: int | None) -> dict:
    out = OUT_DIR / f"speed.{swf.stem}.{policy}.csv"
    cmd = [str(python), str(RUNNER), str(swf), policy, str(out), "--max-procs", str(max_procs), "--clean", "none"]
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    done = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin)
    if done.returncode != 0:
        raise RuntimeError(f"AccaSim run failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return json.loads(out.with_suffix(".json").read_text())


def time_ours(
    run: Runner, frame: pl.DataFrame, max_procs: int, cpu: int | None, repeat: int
) -> list[tuple[float, float]]:
    before = os.sched_getaffinity(0) if cpu is not None else None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        result = run(frame, max_procs, "easy")  # warm-up, untimed; also checked below
        if result.height != frame.height:
            raise SystemExit(f"the simulator returned {result.height} start times for {frame.height} jobs")
        times = []
        for _ in range(repeat):
            c0, w0 = _cpu(), time.perf_counter()
            run(frame, max_procs, "easy")
            times.append((_cpu() - c0, time.perf_counter() - w0))
        return times
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", choices=("ours", "textbook"), default="ours")
    ap.add_argument("--log", choices=tuple(LOGS), default="CTC-SP2")
    ap.add_argument("--accasim-policy", choices=("easy", "easy-tb"), default="easy")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of ours (the best counts)")
    ap.add_argument("--repeat-accasim", type=int, default=1, help="AccaSim runs (the best counts)")
    args = ap.parse_args()

    run = runner_for(args.against)
    try:
        probe(run)
    except NotImplementedError as exc:
        print(f"our simulator is not wired: {exc}")
        print(result_line(NAME, 0.0, TARGET))
        return 1
    python = ensure_accasim()
    frame, max_procs, _ = cleaned_jobs(find_log(args.log))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    swf = OUT_DIR / f"{args.log}.strong.swf"
    write_swf(frame, swf)
    cpu = pick_cpu()
    print(f"{args.log}: {frame.height} jobs, {max_procs} processors; pinned to CPU {cpu}", flush=True)

    accasim_runs = []
    for _ in range(args.repeat_accasim):
        meta = time_accasim(python, swf, args.accasim_policy, max_procs, cpu)
        if meta["simulated"] != frame.height:
            raise SystemExit(f"AccaSim simulated {meta['simulated']} of {frame.height} jobs")
        accasim_runs.append(meta)
        print(
            f"  AccaSim {meta['dispatcher']}: {meta['sim_cpu_s']:.2f} s CPU, {meta['sim_wall_s']:.2f} s wall"
            f" (of which its SWF line parsing alone takes {meta['parse_s']:.2f} s)",
            flush=True,
        )
    best_accasim = min(accasim_runs, key=lambda m: m["sim_cpu_s"])

    ours = time_ours(run, frame, max_procs, cpu, args.repeat)
    for cpu_s, wall_s in ours:
        print(f"  ours ({args.against}): {cpu_s:.3f} s CPU, {wall_s:.3f} s wall", flush=True)
    ours_cpu = min(c for c, _ in ours)
    ours_wall = min(w for _, w in ours)

    acc_cpu, acc_wall, acc_parse = best_accasim["sim_cpu_s"], best_accasim["sim_wall_s"], best_accasim["parse_s"]
    print(
        f"AccaSim best: {acc_cpu:.2f} s CPU ({acc_wall:.2f} s wall);"
        f" ours best: {ours_cpu:.3f} s CPU ({ours_wall:.3f} s wall)"
    )
    print(
        f"information: wall-time ratio {acc_wall / max(ours_wall, 1e-9):.1f}; "
        f"CPU ratio without AccaSim's parsing {(acc_cpu - acc_parse) / max(ours_cpu, 1e-9):.1f}"
    )
    if args.against != "ours":
        print("NOTE: timed against the textbook stand-in (bench/accasim/textbook.py), not twin.sim")
    print(machine_note())
    print(result_line(NAME, acc_cpu / max(ours_cpu, 1e-9), TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
