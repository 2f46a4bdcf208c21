"""Our own HPC Challenge runs over the container-configuration grid (issue 16, data item 2).

hpcc 1.5.0 under Open MPI 4.1.4 for every runnable combination of ranks (1, 2, 4: 4 oversubscribes
the 2 cores), binding (core, none), transport (sm, tcp-lo, tcp-veth) and runtime (bare,
bwrap-host, bwrap-private, charliecloud, crun-private), `--reps` times each, in an order shuffled with `--seed`
so that drift of the shared machine's load does not alias a factor. Every run is one row of
models.containers.hpcc.HPCC_SCHEMA appended to `--out` as soon as it ends, so an interrupted
campaign resumes where it stopped (same seed, reps and N: the same run ids). Infeasible
combinations are written, with their reason, to `--infeasible`; a failed run is reported and
appended to `--failures`, never recorded as a row. The grid, each command line and what did not
work are in bench/hpcc_grid.py.

    .venv/bin/python bench/hpcc_runs.py            # the full grid, 5 reps (about 20 minutes here)
    .venv/bin/python bench/hpcc_runs.py --quick    # 1 rep of every combination, into a temp file

Needs root (network namespaces, ip netns exec) and `scripts/install-system-deps.sh bench`.
The last line compares the campaign's wall time with the 20-minute budget:
`hpcc_runs: ratio=wall/budget target=1.0 PASS|FAIL` (lower is better).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import result_line
from bench.hpcc_grid import (
    BINDINGS,
    EXAMPLE_INPUT,
    RANKS,
    RUNTIMES,
    TRANSPORTS,
    Config,
    Launch,
    charliecloud_image,
    crun_bundle,
    grid,
    host_facts,
    hpccinf,
    job_argv,
    launch_argv,
    mpi_options,
    veth_pair,
)
from models.containers.hpcc import HPCC_RUNS, HPCC_SCHEMA, MEASURED_ON, HpccOutputError, hpcc_figures, parse_summary

NAME = "hpcc_runs"
OPEN_MPI, HPCC_VERSION = "4.1.4", ("1", "5", "0")  # what MEASURED_ON promises


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.reps = 1
        if args.out == HPCC_RUNS:
            args.out = Path(tempfile.gettempdir()) / "ctwin-hpcc-quick.csv"
    _preflight(args.runtimes)
    runnable, skipped = grid(args.ranks, args.bindings, args.transports, args.runtimes)
    digest = hashlib.sha1(repr(sorted(runnable)).encode()).hexdigest()[:6]  # which grid: resumable ids
    campaign = args.campaign or f"seed{args.seed}-n{args.n}-reps{args.reps}-{digest}"
    plan = [(config, rep) for config in runnable for rep in range(args.reps)]
    random.Random(args.seed).shuffle(plan)
    done = _done_ids(args.out)
    todo = [(i, c, r) for i, (c, r) in enumerate(plan) if f"{campaign}-{i:04d}" not in done]
    _write_infeasible(args.infeasible, grid()[1])  # the whole grid's, whatever this campaign selects
    print(f"{len(runnable)} runnable configurations x {args.reps} reps = {len(plan)} runs, {len(plan) - len(todo)} "
          f"already in {args.out}; {len(skipped)} infeasible (in {args.infeasible})", flush=True)  # fmt: skip
    for config, reason in skipped:
        print(f"  infeasible: {config}: {reason}")
    cores = os.cpu_count() or 1
    example = EXAMPLE_INPUT.read_text()
    started = time.monotonic()
    failures = 0
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ctwin-hpcc-")))
        needs_veth = any(c.transport == "tcp-veth" for _, c, _ in todo)
        veth = stack.enter_context(veth_pair(workdir, cores)) if needs_veth else None
        image = charliecloud_image(workdir) if any(c.runtime == "charliecloud" for _, c, _ in todo) else None
        needs_crun = any(c.runtime == "crun-private" for _, c, _ in todo)
        bundle = crun_bundle(workdir, workdir / "run") if needs_crun else None
        launch = Launch(workdir, cores, veth, image, bundle)
        for count, (index, config, rep) in enumerate(todo, start=1):
            run_id = f"{campaign}-{index:04d}"
            try:
                row = run_one(config, rep, run_id, campaign, launch, example, args)
            except (HpccOutputError, RuntimeError, subprocess.TimeoutExpired) as exc:
                failures += 1
                print(f"[{count}/{len(todo)}] {config} rep {rep}: FAILED {exc}", flush=True)
                _append(args.failures, ["run_id", "ranks", "binding", "transport", "runtime", "reason"],
                        {"run_id": run_id, **_factors(config), "reason": str(exc)[-500:]})  # fmt: skip
                continue
            _append(args.out, list(HPCC_SCHEMA), row)
            elapsed = time.monotonic() - started
            eta = elapsed / count * (len(todo) - count)
            print(f"[{count}/{len(todo)}] {config} rep {rep}: {row['wall_s']:.1f} s, HPL {row['hpl_tflops']:.2e} "
                  f"Tflop/s, load {row['load1_start']:.1f}; eta {eta / 60:.1f} min", flush=True)  # fmt: skip
    wall = time.monotonic() - started
    print(f"{len(todo) - failures} runs recorded in {args.out}, {failures} failed; {wall / 60:.1f} min")
    print(result_line(NAME, wall / args.budget_s, 1.0, lower_is_better=True))
    return 1 if failures else 0


def run_one(
    config: Config, rep: int, run_id: str, campaign: str, launch: Launch, example: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One hpcc run in a clean run folder; its row, or an error saying what went wrong."""
    shutil.rmtree(launch.rundir, ignore_errors=True)
    launch.rundir.mkdir()
    (launch.rundir / "hpccinf.txt").write_text(hpccinf(example, args.n, config.ranks))
    if config.runtime == "crun-private":  # the bundle's process runs /work/job.sh
        (launch.rundir / "job.sh").write_text(f"exec {shlex.join(job_argv(config, launch))}\n")
    facts = host_facts()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    env = {**os.environ, "USER": os.environ.get("USER", "root")}  # ch-run refuses to start without $USER
    argv = launch_argv(config, launch, name=f"ctwin-hpcc-{run_id}")
    done = subprocess.run(argv, cwd=launch.rundir, capture_output=True, text=True, timeout=args.timeout_s, env=env)
    wall = time.monotonic() - t0
    out = launch.rundir / "hpccoutf.txt"
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-400:]}")
    if not out.exists():
        raise HpccOutputError(f"{out}: hpcc wrote no output")
    text = out.read_text()
    if args.keep_outputs:
        args.keep_outputs.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out, args.keep_outputs / f"{run_id}.txt")
    pairs = parse_summary(text, out)
    version = tuple(pairs.get(f"Version{part}") for part in ("Major", "Minor", "Micro"))
    if version != HPCC_VERSION:
        raise HpccOutputError(f"{out}: hpcc {'.'.join(map(str, version))}, but MEASURED_ON says 1.5.0")
    figures = hpcc_figures(text, out)
    if figures["ranks"] != config.ranks:
        raise HpccOutputError(f"{out}: {figures['ranks']} ranks ran, {config.ranks} were asked for")
    return {
        "run_id": run_id,
        "campaign": campaign,
        "started_at": started_at,
        **_factors(config),
        "network_mode": config.network_mode,
        "launch": config.launch,
        "hosts": config.hosts,
        "rep": rep,
        "oversubscribed": config.ranks > launch.cores,
        "host_cores": launch.cores,
        **facts,
        "kernel": os.uname().release,
        "mpi_options": " ".join(mpi_options(config, launch.cores, Path("$WORKDIR"))),
        **figures,
        "wall_s": round(wall, 3),
        "measured_on": MEASURED_ON,
    }


def _factors(config: Config) -> dict[str, Any]:
    return {"ranks": config.ranks, "binding": config.binding, "transport": config.transport, "runtime": config.runtime}


def _preflight(runtimes: list[str]) -> None:
    needed = ["mpirun", "hpcc", "ip"] + (["bwrap"] if any(r.startswith("bwrap") for r in runtimes) else [])
    needed += ["ch-run"] if "charliecloud" in runtimes else []
    needed += ["crun", "unshare"] if "crun-private" in runtimes else []
    missing = [b for b in needed if shutil.which(b) is None]
    if missing or not EXAMPLE_INPUT.exists():
        print(f"missing {', '.join(missing) or EXAMPLE_INPUT}: scripts/install-system-deps.sh bench", file=sys.stderr)
        raise SystemExit(2)
    if os.geteuid() != 0:
        print("needs root: network namespaces and mpirun --allow-run-as-root", file=sys.stderr)
        raise SystemExit(2)
    version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"\d+\.\d+\.\d+", version)
    if found is None or found.group() != OPEN_MPI:
        print(f"Open MPI {found.group() if found else '?'}: rows would be labelled {MEASURED_ON!r}", file=sys.stderr)
        raise SystemExit(2)


def _done_ids(path: Path) -> set[str]:
    if not path.exists() or path.stat().st_size == 0:
        return set()
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != list(HPCC_SCHEMA):
            raise SystemExit(f"{path}: its columns are not HPCC_SCHEMA's; write to another --out")
        return {row["run_id"] for row in reader}


def _append(path: Path, columns: list[str], row: dict[str, Any]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        if new:
            writer.writeheader()
        writer.writerow({k: _cell(row.get(k)) for k in columns})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_infeasible(path: Path, skipped: list[tuple[Config, str]]) -> None:
    path.unlink(missing_ok=True)
    for config, reason in skipped:
        _append(path, ["ranks", "binding", "transport", "runtime", "reason"], {**_factors(config), "reason": reason})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=HPCC_RUNS, help="runs CSV, appended and resumed (default: %(default)s)")
    p.add_argument("--infeasible", type=Path, default=HPCC_RUNS.with_name("hpcc-runs-infeasible.csv"))
    p.add_argument("--failures", type=Path, default=HPCC_RUNS.with_name("hpcc-runs-failures.csv"))
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--n", type=int, default=500, help="HPL N (default %(default)s: a 4-rank run takes ~7 s here)")
    p.add_argument("--ranks", type=int, nargs="+", default=list(RANKS), choices=RANKS)
    p.add_argument("--bindings", nargs="+", default=list(BINDINGS), choices=BINDINGS)
    p.add_argument("--transports", nargs="+", default=list(TRANSPORTS), choices=TRANSPORTS)
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    p.add_argument("--campaign", help="run-id prefix (default: from seed, N and reps)")
    p.add_argument("--quick", action="store_true", help="1 rep of every combination, into a temp CSV")
    p.add_argument("--keep-outputs", type=Path, help="copy each run's hpccoutf.txt here as RUN_ID.txt")
    p.add_argument("--timeout-s", type=float, default=300.0)
    p.add_argument("--budget-s", type=float, default=1200.0, help="the campaign's wall-time target")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
