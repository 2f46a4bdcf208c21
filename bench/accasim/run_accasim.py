"""Run AccaSim (PyPI `accasim` 1.1.3) with FCFS or EASY on an SWF log, as ONE pool of processors.

Run it with the AccaSim venv's python (`bench/accasim/setup.sh` makes it), not the project's:

    .venv-accasim/bin/python bench/accasim/run_accasim.py LOG.swf[.gz] {fcfs,easy,easy-tb} OUT.csv

Policies: `fcfs` = AccaSim's FirstInFirstOut + FirstFit; `easy` = its EASYBackfilling + FirstFit
(AccaSim's own EASY, which is not textbook EASY: see bench/accasim/textbook.py); `easy-tb` =
AccaSim's engine with a textbook EASY pass (`_textbook_easy_class` below).

Writes OUT.csv (`job_id,submit_s,start_s,end_s`: the SWF job number and seconds on the log's own
clock, i.e. as in the SWF submit field) and OUT.json beside it (the sidecar: the simulation's wall
and CPU seconds, the counts of the input mapping and what AccaSim did with the jobs).

Only the standard library is used here, and accasim: the project's own code (polars, collectors)
is not importable from that venv, on purpose.

The mapping, SWF → AccaSim
--------------------------
- The machine: MaxProcs from the header (or `--max-procs`) processors as one pool. AccaSim has no
  notion of "processors": its system config is node groups with per-node resources, and its SWF
  tweaker turns a job of P processors into a request for P "nodes" of 1 core each (the default
  equivalence processor → 1 core), which its allocators may pack several to a node
  (`ALLOW_MAPPING_SAME_NODE = True`). So both layouts below allocate by processor, exactly the
  SWF model; they give the same schedule (checked on KTH-SP2 for fcfs, easy and easy-tb), and
  `cores` is the default because it is 2-3x faster (the allocator and the availability snapshot
  are loops over nodes: KTH-SP2 EASY 3.1 s CPU vs 6.7 s), which also makes the speed comparison
  the strict one for us:
    `cores`: 1 node × MaxProcs cores;   `nodes`: MaxProcs nodes × 1 core.
- Per job (AccaSim's DefaultWorkloadParser, utils/reader_class.py and utils/misc.py): field 1 the
  job id, field 2 the submit time ("queued_time"), field 4 the run time ("duration", what the
  job really runs, never cut), field 9 the requested time ("expected_duration", what EASY plans
  with); the processor count is field 8 (requested) when it is not -1, else field 5 (allocated),
  else the line is silently skipped. Memory (fields 7 and 10) is dropped on purpose: the system
  config has no `mem` resource, and AccaSim decides whether to strip the job's `mem` request
  from the FIRST job alone (JobFactory.check_requested_resources), so a later job with memory
  would crash its allocator. AccaSim's parser also rejects a non-integer used memory (the line
  no longer matches its regular expression), another reason to write -1 there.
- AccaSim reads plain text only (`open(path)`), and needs the lines in submit order (a job whose
  submit time lies before the clock raises "Time sync problem"). So this script always writes a
  normalised temporary SWF: the kept jobs, stably sorted by submit time (ties keep file order).
- All times are shifted by TIME_OFFSET (AccaSim's `start_time` in the system config) and shifted
  back in the output: AccaSim tests times for truth in two places (`if not self.current_time` in
  EventManager.load_event, `if self._reserved_slot[0]` in EASYBackfilling), so a clock at 0 —
  the first job of most logs is submitted at 0 — would be taken for "no time".

Cleaning (`--clean`):
- `strong` (default): the SC'15 strong filter, the same rules as `collectors.swf.strong_filter`
  (mirrored here in plain Python because the project is not importable from this venv):
  processor counts filled from each other, both ≤ MaxProcs, run time > 0, requested time > 0,
  submit ≥ 0, run time capped at the requested time. The count is `procs` = the (filled)
  requested processors.
- `none`: every job line as AccaSim would take it (requested processors, else allocated);
  lines AccaSim cannot simulate (no processor count, unknown = negative run or requested time)
  are counted and dropped (zero is kept: AccaSim starts and ends such a job at once), and jobs
  larger than the machine are passed on, for AccaSim to reject (its
  default JobVerification.CHECK_REQUEST: rejected at submission, never run, a warning per job,
  counted as `rejected` in the sidecar and absent from the CSV). `bench/accasim_check.py` uses
  this mode on the SWF it writes from the project's own strong filter, so that both simulators
  read the same job table.

Timing: `sim_wall_s` / `sim_cpu_s` cover AccaSim's `start_hpc_simulation` only (its event loop,
which also parses the SWF lines incrementally: AccaSim has no separate load step); setting up the
simulator and writing the CSV are outside. `parse_s` is the time AccaSim's own SWF line parser
takes alone on the same file (measured separately, untimed in the simulation figures), to know
how much of the simulation time is parsing. CPU time is RUSAGE_SELF (all threads) plus
RUSAGE_CHILDREN. No AccaSim output file is written (`scheduling_output=False`,
`statistics_output=False`): the start times are collected through an AdditionalData hook
(`exec_after_completion`, called once per finished job), which is lighter than its schedule
writer (a thread that forks a process per 10,000 lines).
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import gzip
import hashlib
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

# AccaSim 1.1.3 does `from collections import Mapping` (utils/misc.py), removed in Python 3.10.
# The alias is the only change made to it; nothing in its logic is touched.
if not hasattr(collections, "Mapping"):
    collections.Mapping = collections.abc.Mapping  # type: ignore[attr-defined]

TIME_OFFSET = 1_000_000_000
"""Added to every SWF time before AccaSim sees it (see the module docstring), removed after."""

SWF_NFIELDS = 18
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


# ------------------------------------------------------------------------------------------ input
def read_swf(path: Path) -> tuple[dict[str, int], list[list[str]]]:
    """The header's integer values (MaxProcs, UnixStartTime...) and the data lines' fields."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    header: dict[str, int] = {}
    rows: list[list[str]] = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith(";"):
            key, sep, value = line[1:].partition(":")
            m = _LEADING_INT.match(value)
            if sep and m and key.strip() not in header:
                header[key.strip()] = int(m.group(1))
            continue
        fields = line.split()
        if fields:
            rows.append(fields)
    return header, rows


def _num(text: str) -> int:
    """An SWF integer field; a decimal (some converters write "142.00") is truncated."""
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def select_jobs(rows: list[list[str]], max_procs: int | None, clean: str) -> tuple[list[list[int]], dict[str, int]]:
    """The jobs to simulate, as [job, submit, run, procs, requested_time, status, user, group,
    executable, queue, partition] lists in submit order, and the counts of what was done."""
    counts = {
        "lines": len(rows),
        "malformed": 0,
        "no_processors": 0,
        "run_time_dropped": 0,
        "requested_time_dropped": 0,
        "submit_unknown": 0,
        "procs_over_max": 0,
        "run_time_capped": 0,
        "kept": 0,
    }
    jobs: list[list[int]] = []
    for fields in rows:
        if len(fields) != SWF_NFIELDS:
            counts["malformed"] += 1
            continue
        try:
            f = [_num(x) for x in fields]
        except ValueError:
            counts["malformed"] += 1
            continue
        job, submit, run, alloc, req, reqtime = f[0], f[1], f[3], f[4], f[7], f[8]
        if clean == "strong":
            known_alloc = alloc if alloc > 0 else None
            known_req = req if req > 0 else None
            alloc = known_alloc if known_alloc is not None else known_req
            req = known_req if known_req is not None else known_alloc
            procs = req
        else:  # AccaSim's own rule: requested unless -1, else allocated, else the line is skipped
            procs = req if req != -1 else alloc if alloc != -1 else None
        if procs is None or procs <= 0:
            counts["no_processors"] += 1
            continue
        over = max_procs is not None and (procs > max_procs or (clean == "strong" and alloc > max_procs))
        if over:
            counts["procs_over_max"] += 1
            if clean == "strong":
                continue
        floor = 1 if clean == "strong" else 0  # strong: > 0; none: only unknown (-1) is dropped
        if run < floor:
            counts["run_time_dropped"] += 1
            continue
        if reqtime < floor:
            counts["requested_time_dropped"] += 1
            continue
        if submit < 0:
            counts["submit_unknown"] += 1
            continue
        if clean == "strong" and run > reqtime:
            counts["run_time_capped"] += 1
            run = reqtime
        jobs.append([job, submit, run, procs, reqtime, f[10], f[11], f[12], f[13], f[14], f[15]])
    jobs.sort(key=lambda j: j[1])  # stable: ties keep file order
    counts["kept"] = len(jobs)
    return jobs, counts


def write_accasim_swf(jobs: list[list[int]], path: Path) -> None:
    """The jobs as an SWF file AccaSim reads: plain text, submit order, memory and CPU time -1.
    Requested and allocated processors are both `procs`, so AccaSim's choice does not matter."""
    with path.open("w") as out:
        out.write("; written by bench/accasim/run_accasim.py for AccaSim\n")
        for job, submit, run, procs, reqtime, status, user, group, exe, queue, part in jobs:
            out.write(
                f"{job} {submit} -1 {run} {procs} -1 -1 {procs} {reqtime} -1 {status} {user} {group} "
                f"{exe} {queue} {part} -1 -1\n"
            )


def system_config(max_procs: int, layout: str) -> dict[str, object]:
    """AccaSim's system config for one pool of `max_procs` processors (see the docstring)."""
    nodes, cores = (1, max_procs) if layout == "cores" else (max_procs, 1)
    return {
        "groups": {"pool": {"core": cores}},
        "resources": {"pool": nodes},
        "equivalence": {"processor": {"core": 1}},
        "start_time": TIME_OFFSET,
    }


# ------------------------------------------------------------------------------------------ AccaSim
def _cpu_now() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def parse_seconds(swf: Path) -> float:
    """Time AccaSim's own SWF line parser takes over the whole file (information only)."""
    from accasim.utils.reader_class import DefaultWorkloadParser

    parser = DefaultWorkloadParser()
    lines = swf.read_text().splitlines()
    t0 = time.perf_counter()
    for line in lines:
        parser.parse_line(line)
    return time.perf_counter() - t0


def simulate(swf: Path, config: Path, policy: str, results: Path) -> dict[str, object]:
    """Run AccaSim once; the per-job rows, the rejected ids and the timings."""
    from accasim.base.additional_data import AdditionalData
    from accasim.base.allocator_class import FirstFit
    from accasim.base.scheduler_class import EASYBackfilling, FirstInFirstOut
    from accasim.base.simulator_class import Simulator

    class Recorder(AdditionalData):
        """Collects every finished job's times and every rejected job; changes nothing."""

        def __init__(self, event_manager=None):
            super().__init__(event_manager)
            self.rows: list[tuple[str, int, int, int]] = []
            self.rejected: list[str] = []

        def exec_before_dispatching(self, job_dict, queued_jobs):
            return None

        def exec_after_dispatching(self, job_dict, to_dispatch_jobs, rejected_jobs):
            self.rejected.extend(rejected_jobs)

        # AccaSim calls these with a positional argument although its base class declares
        # **kwargs only, hence *args.
        def exec_before_submission(self, *args, **kwargs):
            return None

        def exec_after_submission(self, *args, **kwargs):
            return None

        def exec_before_completion(self, *args, **kwargs):
            return None

        def exec_after_completion(self, removed_jobs):
            self.rows.extend((e.id, e.queued_time, e.start_time, e.end_time) for e in removed_jobs)

        def stop(self):
            return None

    class TimedSimulator(Simulator):
        """AccaSim's Simulator with its event loop timed (wall and CPU)."""

        sim_wall_s = 0.0
        sim_cpu_s = 0.0

        def start_hpc_simulation(self, **kwargs):
            c0, w0 = _cpu_now(), time.perf_counter()
            super().start_hpc_simulation(**kwargs)
            self.sim_wall_s = time.perf_counter() - w0
            self.sim_cpu_s = _cpu_now() - c0

    if policy == "fcfs":
        dispatcher = FirstInFirstOut(FirstFit())
    elif policy == "easy":
        dispatcher = EASYBackfilling(FirstFit())
    else:
        dispatcher = _textbook_easy_class(EASYBackfilling)(FirstFit())
    sim = TimedSimulator(
        str(swf),
        str(config),
        dispatcher,
        additional_data=[Recorder],  # a class: AccaSim 1.1.3 rejects an instance before its mapper exists
        scheduling_output=False,
        statistics_output=False,
        show_statistics=False,
        RESULTS_FOLDER_PATH=str(results),
        LOG_LEVEL="ERROR",
    )
    (recorder,) = sim.mapper.additional_data
    sim.start_simulation()
    return {
        "rows": recorder.rows,
        "rejected": recorder.rejected,
        "dispatcher": str(dispatcher),
        "loaded": sim.loaded_jobs,
        "sim_wall_s": sim.sim_wall_s,
        "sim_cpu_s": sim.sim_cpu_s,
    }


def _textbook_easy_class(base: type) -> type:
    """AccaSim's EASYBackfilling with its pass replaced by textbook EASY (policy `easy-tb`).

    Everything else stays AccaSim's: the event loop and its time points, the job loading, the
    resource manager, the FirstFit allocator (which does every allocation below) and
    `_calculate_slot` (which gives the reservation time). What changes, per pass: the queue is
    always tried in order from its head (no waiting for an old reservation); the reservation
    (shadow) time is recomputed for the blocked head; a later job that fits now is backfilled
    only if its requested end is no later than the shadow time or it uses only the processors
    still spare at the shadow time (which it then consumes).
    """
    from copy import deepcopy

    class TextbookEASY(base):  # type: ignore[misc, valid-type]
        name = "EBF-textbook"

        def scheduling_method(self, cur_time, queued_jobs, es_dict):
            alloc = self.nonauto_allocator
            if not self.allocator_rm_set:
                alloc.set_resource_manager(self.resource_manager)
                self.allocator_rm_set = True
            avl = self.resource_manager.current_availability
            alloc.set_resources(avl)  # the allocator updates `avl` in place as it allocates
            plan = alloc.allocating_method(queued_jobs, cur_time, skip=False)
            blocked = next((i for i, (_, _, nodes) in enumerate(plan) if not nodes), None)
            if blocked is None or blocked + 1 == len(queued_jobs):
                return plan, []
            head = queued_jobs[blocked]
            started = plan[:blocked]
            shadow, _ = self._calculate_slot(cur_time, deepcopy(avl), list(started), None, head, es_dict)
            free_then = sum(r["core"] for r in avl.values())
            for job_id, used in self.resource_manager.current_allocations.items():
                job = es_dict[job_id]
                if job.start_time + job.expected_duration <= shadow:
                    free_then += sum(r["core"] for r in used.values())
            for _, job_id, _ in started:
                job = es_dict[job_id]
                if cur_time + job.expected_duration <= shadow:
                    free_then += job.requested_nodes * job.requested_resources["core"]
            extra = free_then - head.requested_nodes * head.requested_resources["core"]
            out = plan[: blocked + 1]
            for job in queued_jobs[blocked + 1 :]:
                procs = job.requested_nodes * job.requested_resources["core"]
                before_shadow = cur_time + job.expected_duration <= shadow
                if before_shadow or procs <= extra:
                    decision = alloc.allocating_method(job, cur_time, skip=True)
                    if decision[2] and not before_shadow:
                        extra -= procs
                    out.append(decision)
                else:
                    out.append((None, job.id, []))
            return out, []

    return TextbookEASY


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("swf", type=Path, help="SWF log, plain or gzip")
    ap.add_argument("policy", choices=("fcfs", "easy", "easy-tb"))
    ap.add_argument("out", type=Path, help="CSV to write; the JSON sidecar goes beside it (.json)")
    ap.add_argument("--clean", choices=("strong", "none"), default="strong")
    ap.add_argument("--layout", choices=("cores", "nodes"), default="cores")
    ap.add_argument("--max-procs", type=int, default=None, help="default: the header's MaxProcs")
    ap.add_argument("--jobs-only", action="store_true", help="write the selected job table as CSV, no simulation")
    args = ap.parse_args(argv)

    t_total = time.perf_counter()
    header, rows = read_swf(args.swf)
    max_procs = args.max_procs or header.get("MaxProcs") or header.get("MaxNodes")
    if not max_procs:
        print(f"{args.swf}: no MaxProcs in the header; pass --max-procs", file=sys.stderr)
        return 2
    jobs, counts = select_jobs(rows, max_procs, args.clean)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.jobs_only:
        with args.out.open("w") as out:
            out.write("job_id,submit_s,run_s,procs,req_time_s\n")
            out.writelines(f"{j[0]},{j[1]},{j[2]},{j[3]},{j[4]}\n" for j in jobs)
        print(json.dumps(counts))
        return 0

    with tempfile.TemporaryDirectory(prefix="accasim-") as tmp:
        tmpdir = Path(tmp)
        swf = tmpdir / (args.swf.name.removesuffix(".gz").removesuffix(".swf") + ".swf")
        write_accasim_swf(jobs, swf)
        config = tmpdir / "system.json"
        config.write_text(json.dumps(system_config(max_procs, args.layout)))
        run = simulate(swf, config, args.policy, tmpdir / "results")
        parse_s = parse_seconds(swf)

    by_id = {j[0]: j for j in jobs}
    out_rows = sorted((int(i), q - TIME_OFFSET, s - TIME_OFFSET, e - TIME_OFFSET) for i, q, s, e in run["rows"])
    with args.out.open("w") as out:
        out.write("job_id,submit_s,start_s,end_s\n")
        out.writelines(f"{i},{q},{s},{e}\n" for i, q, s, e in out_rows)
    # Every simulated job must be one we gave, at the submit time we gave, running its run time.
    bad = [r for r in out_rows if r[0] not in by_id or r[1] != by_id[r[0]][1] or r[3] - r[2] != by_id[r[0]][2]]
    sidecar = {
        "swf": str(args.swf),
        "swf_sha256": hashlib.sha256(args.swf.read_bytes()).hexdigest(),
        "policy": args.policy,
        "dispatcher": run["dispatcher"],
        "accasim_version": _accasim_version(),
        "python": sys.version.split()[0],
        "clean": args.clean,
        "layout": args.layout,
        "max_procs": max_procs,
        "counts": counts,
        "loaded": run["loaded"],
        "simulated": len(out_rows),
        "rejected": len(run["rejected"]),
        "rejected_ids": sorted(int(x) for x in run["rejected"])[:20],
        "inconsistent_rows": len(bad),
        "sim_wall_s": round(run["sim_wall_s"], 4),
        "sim_cpu_s": round(run["sim_cpu_s"], 4),
        "parse_s": round(parse_s, 4),
        "total_wall_s": round(time.perf_counter() - t_total, 4),
        "pid": os.getpid(),
    }
    args.out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(json.dumps({k: sidecar[k] for k in ("policy", "simulated", "rejected", "sim_wall_s", "sim_cpu_s")}))
    return 1 if bad else 0


def _accasim_version() -> str:
    try:
        from importlib.metadata import version

        return version("accasim")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
