"""Slurm collection of a 10,000-job `squeue --json` document: our collector's parse + convert +
store vs `json.loads` alone on the same bytes, same run, alternating.

The document (built in memory, untimed): a real capture scaled up. Default: Slurm 23.11.10's job
list, data_parser/v0.0.40 (tests/fixtures/slurm/v0.0.40/23.11-slurm-jobs.json, byte-identical to
../shared/data/slurm/rackslab-Slurm-web/23.11-slurm-jobs.json: 30 real jobs, pending with backfill
estimates, running and completed; ~130 fields each, the `{set, infinite, number}` shapes). That
capture is slurmrestd's GET /slurm/v0.0.40/jobs, which is the very schema `squeue --json` prints
on 23.11. Its 30 job objects are repeated, in order, until there are 10,000, copy k getting
`job_id + k × 10^d` (d = digits of the largest real id; array and het-job ids shifted alike when
set) so every job id is distinct; every other field, and `meta`/`errors`/`warnings`, stay as
captured. It is serialised as Slurm writes it: `json.dumps(doc, indent=2)` reproduces the capture
byte for byte (checked below), so the 10,000-job document is formatted like the real one (~80 MB).

- Ours: one collection cycle exactly as `ctwin run` does it, from the bytes to the store: the
  registered `SlurmCollector` (CLI transport, accounting off) inside the pipeline's
  `RunningCollector` (site/host labels, self-metrics), its command runner answering
  `squeue --json` with the document (and `sinfo -N --json` with the real 23.11 node capture, 4
  nodes, 13 kB), so `collect()` runs `parse_jobs` (json.loads + conversion of every job to the
  job-history row + polars frame), the snapshot merge, the batch_* families and event counters,
  and builds the Batch; then the pipeline's `StoreSink` writes the Batch (`DuckDBStore.append`)
  and the job rows (`append_jobs`: an upsert of the 10,000 jobs, one transaction) into a DuckDB
  store in a temp dir. A warm-up cycle first creates the tables and the series and sets the
  counters' baseline; each timed cycle then upserts the same 10,000 jobs with a fresh
  `observed_s` (the collector's clock advances 60 s per cycle), as a collector does every cycle.
- Peer: `json.loads(document)` on the same bytes; the result is released after the clock stops
  (ours pays for releasing its decoded document inside its cycle: the strict reading).

Each side runs `--repeat` times, alternating (the order flips every round), each after a
`gc.collect()`; the BEST run of each is compared (the least-disturbed estimate on this shared
2-core machine); every run, the medians and one untimed breakdown of our cycle are printed. The
store is checked afterwards: 10,000 job rows, all with the last cycle's `observed_s`.

Python's cyclic GC stays enabled in the timed runs, as in the collector's process: decoding 80 MB
of JSON allocates ~1.5 M dicts and lists, and the collections this triggers are more than half
of `json.loads`' own time here. Because `timeit` disables GC by default, each round also runs
both sides with GC disabled, printed as an information series (not the ratio), so the ratio can
be read under either convention (`--skip-gc-off` leaves it out).

ratio = best our seconds ÷ best json.loads seconds (lower is better); target 3.0, PASS when
ratio ≤ 3.0.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import cpu_seconds, machine_note, result_line

from collectors.slurm import SlurmCollector, SlurmConfig
from collectors.slurm_json import parse_jobs
from collectors.slurm_transport import CommandResult
from telemetry.pipeline import RunningCollector, StoreSink
from telemetry.stores.duckdb_store import DuckDBStore

NAME = "slurm_parse"
TARGET = 3.0
ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "tests" / "fixtures" / "slurm" / "v0.0.40"
DEFAULT_JOBS = CAPTURES / "23.11-slurm-jobs.json"
DEFAULT_NODES = CAPTURES / "23.11-slurm-nodes.json"
SITE = "bench-hpc"
GC_ON_NOTE = "GC enabled, as the collector runs (the ratio)"
GC_OFF_NOTE = "GC disabled during each run (timeit's convention; information)"
T0_S = 1_731_500_000  # the collector's clock at the warm-up cycle (the capture is from Nov 2024)


def _shift(wrapped: Any, offset: int) -> Any:
    """A job-id-valued field shifted by `offset` when set and non-zero, in either shape
    (plain number up to v0.0.38, `{set, infinite, number}` from v0.0.39)."""
    if isinstance(wrapped, Mapping) and wrapped.get("set") and wrapped.get("number"):
        return {**wrapped, "number": wrapped["number"] + offset}
    if isinstance(wrapped, int) and not isinstance(wrapped, bool) and wrapped:
        return wrapped + offset
    return wrapped


def _number(value: Any) -> int:
    return int(value["number"] if isinstance(value, Mapping) else value)


def scale_document(raw: bytes, n_jobs: int) -> tuple[bytes, int, bool]:
    """The capture with its job objects repeated to `n_jobs`, distinct ids, serialised like the
    capture. Returns the document, the id stride, and whether indent=2 reproduced the capture."""
    doc = json.loads(raw)
    real: Sequence[dict[str, Any]] = doc["jobs"]
    if not real:
        raise SystemExit("the capture holds no jobs")
    largest = max(_number(j["job_id"]) for j in real)
    stride = 10 ** len(str(largest))
    reproduced = json.dumps(doc, indent=2).encode() == raw
    jobs = []
    for i in range(n_jobs):
        k, r = divmod(i, len(real))
        job = dict(real[r])  # shallow: the copies share the nested objects, which json.dumps does not mind
        if k:
            offset = k * stride
            for key in ("job_id", "array_job_id", "het_job_id"):
                if key in job:
                    job[key] = _shift(job[key], offset)
        jobs.append(job)
    doc["jobs"] = jobs
    return json.dumps(doc, indent=2).encode(), stride, reproduced


class Runner:
    """The collector's command runner: serves the documents by command name (no process)."""

    def __init__(self, answers: Mapping[str, bytes]) -> None:
        self.answers = dict(answers)

    def __call__(self, argv: Sequence[str], timeout_s: float, env: Mapping[str, str] | None) -> CommandResult:
        name = next(a for a in argv if a in self.answers)
        return CommandResult(0, self.answers[name], b"")


class Cycle:
    """One collection + store write, as the pipeline runs it."""

    def __init__(self, document: bytes, nodes: bytes, store: DuckDBStore) -> None:
        self.now_s = float(T0_S)
        config = SlurmConfig(accounting=False)
        collector = SlurmCollector(config, runner=Runner({"squeue": document, "sinfo": nodes}), clock=self.clock)
        self.running = RunningCollector(
            "slurm", collector, interval_s=60.0, timeout_s=30.0, labels={"site": SITE, "host": "login1"}
        )
        self.sink = StoreSink(store)
        self.samples = 0
        self.job_rows = 0

    def clock(self) -> float:
        return self.now_s

    def run(self) -> None:
        batch = self.running.collect()
        jobs = self.running.take_jobs()
        if self.running.stats.last_error:
            raise SystemExit(f"the collector reported an error: {self.running.stats.last_error}")
        if jobs is None:
            raise SystemExit("the collector produced no job rows")
        self.sink.write(batch)
        self.sink.write_jobs(jobs)
        self.samples, self.job_rows = len(batch), jobs.height

    def timed(self, gc_off: bool = False) -> tuple[float, float]:
        self.now_s += 60.0
        with _gc(gc_off):
            t, c = time.perf_counter(), cpu_seconds()
            self.run()
            return time.perf_counter() - t, cpu_seconds() - c


@contextlib.contextmanager
def _gc(off: bool) -> Iterator[None]:
    """A clean heap first; then Python's cyclic GC as a normal process has it, or (timeit's
    convention, for the information series) disabled for the duration."""
    gc.collect()
    if off:
        gc.disable()
    try:
        yield
    finally:
        gc.enable()


def peer_once(document: bytes, gc_off: bool = False) -> tuple[float, float]:
    with _gc(gc_off):
        t, c = time.perf_counter(), cpu_seconds()
        decoded = json.loads(document)
        seconds, cpu = time.perf_counter() - t, cpu_seconds() - c
    del decoded  # released outside the clock
    return seconds, cpu


def breakdown(document: bytes, store: DuckDBStore, observed_s: int) -> str:
    """One untimed pass through the stages, for the reader (not in the ratio)."""
    gc.collect()
    t0 = time.perf_counter()
    decoded = json.loads(document)
    t1 = time.perf_counter()
    parsed = parse_jobs(decoded, "squeue --json", site=SITE, observed_s=observed_s, strict=False)
    t2 = time.perf_counter()
    del decoded
    t3 = time.perf_counter()
    store.append_jobs(parsed.frame)
    t4 = time.perf_counter()
    return (
        f"json.loads {t1 - t0:.3f}s, convert {parsed.frame.height:,} jobs to rows + frame {t2 - t1:.3f}s, "
        f"release the decoded document {t3 - t2:.3f}s, append_jobs upsert {t4 - t3:.3f}s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs in the scaled document")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs of each side, alternating; best compared")
    ap.add_argument("--capture", type=Path, default=DEFAULT_JOBS, help="a real squeue --json / GET jobs capture")
    ap.add_argument("--skip-gc-off", action="store_true", help="skip the GC-disabled information series")
    ap.add_argument("--nodes", type=Path, default=DEFAULT_NODES, help="the sinfo / GET nodes capture served alongside")
    args = ap.parse_args()
    for path in (args.capture, args.nodes):
        if not path.is_file():
            print(f"capture not found: {path}")
            raise SystemExit(2)

    print(machine_note())
    raw = args.capture.read_bytes()
    nodes = args.nodes.read_bytes()
    t = time.perf_counter()
    document, stride, reproduced = scale_document(raw, args.jobs)
    meta = json.loads(raw).get("meta", {})
    plugin = (meta.get("plugin") or {}).get("data_parser") or (meta.get("plugin") or {}).get("type")
    release = (meta.get("slurm") or meta.get("Slurm") or {}).get("release")
    print(
        f"capture: {args.capture} (Slurm {release}, {plugin}, {len(json.loads(raw)['jobs'])} jobs, "
        f"sha256 {hashlib.sha256(raw).hexdigest()[:12]}); json.dumps(indent=2) reproduces it byte for byte: "
        f"{'yes' if reproduced else 'NO (formatting differs from the capture)'}"
    )
    print(
        f"document: {args.jobs:,} jobs (id stride {stride:,}), {len(document) / 1e6:.1f} MB, "
        f"{len(document) / args.jobs:,.0f} bytes per job (built in {time.perf_counter() - t:.1f}s, untimed)"
    )

    with tempfile.TemporaryDirectory(prefix="ctwin-bench-slurm-") as d:
        store = DuckDBStore(Path(d) / "ctwin.duckdb")
        try:
            cycle = Cycle(document, nodes, store)
            t = time.perf_counter()
            cycle.run()  # warm-up: creates the tables and series, sets the event counters' baseline
            print(
                f"  warm-up cycle (untimed): {time.perf_counter() - t:.2f}s, {cycle.samples} samples, "
                f"{cycle.job_rows:,} job rows"
            )
            if cycle.job_rows != args.jobs:
                raise SystemExit(f"the collector produced {cycle.job_rows} job rows, expected {args.jobs}")
            peer_once(document)  # warm-up

            times: dict[tuple[str, bool], list[float]] = {}
            cpus: dict[tuple[str, bool], list[float]] = {}
            series = [False] if args.skip_gc_off else [False, True]
            for i in range(args.repeat):
                order = ("ours", "peer") if i % 2 == 0 else ("peer", "ours")
                parts = []
                for gc_off in series:
                    for side in order:
                        seconds, cpu = cycle.timed(gc_off) if side == "ours" else peer_once(document, gc_off)
                        times.setdefault((side, gc_off), []).append(seconds)
                        cpus.setdefault((side, gc_off), []).append(cpu)
                    ours, peer = times["ours", gc_off][-1], times["peer", gc_off][-1]
                    parts.append(
                        f"{'GC off (info)' if gc_off else 'GC on'}: ours collect+store {ours:.3f}s "
                        f"(CPU {cpus['ours', gc_off][-1]:.3f}s), json.loads {peer:.3f}s "
                        f"(CPU {cpus['peer', gc_off][-1]:.3f}s), ratio {ours / peer:.3f}"
                    )
                print(f"  run {i + 1:2d} ({order[0]} first) " + " | ".join(parts), flush=True)

            stored = store.jobs(site=SITE)
            last_observed = int(cycle.now_s)
            print(
                f"  store: {stored.height:,} job rows for site {SITE} (expected {args.jobs:,}), "
                f"{stored['job_id'].n_unique():,} distinct ids, observed_s of the last cycle on "
                f"{(stored['observed_s'] == last_observed).sum():,}; states "
                f"{dict(sorted(stored['state'].value_counts().iter_rows()))}; "
                f"{cycle.samples} samples per cycle, {store.count():,} stored"
            )
            assert stored.height == args.jobs and stored["job_id"].n_unique() == args.jobs
            assert (stored["observed_s"] == last_observed).all()
            print(f"  (info) one untimed breakdown: {breakdown(document, store, last_observed + 60)}")
        finally:
            store.close()

    for gc_off in reversed(series):
        ours_t, peer_t = times["ours", gc_off], times["peer", gc_off]
        print(
            f"  best of {args.repeat}, {GC_OFF_NOTE if gc_off else GC_ON_NOTE}: "
            f"ours {min(ours_t):.3f}s ({args.jobs / min(ours_t):,.0f} jobs/s) vs json.loads {min(peer_t):.3f}s "
            f"({len(document) / min(peer_t) / 1e6:.0f} MB/s): ratio {min(ours_t) / min(peer_t):.3f}; medians "
            f"{statistics.median(ours_t):.3f}s vs {statistics.median(peer_t):.3f}s "
            f"(ratio {statistics.median(ours_t) / statistics.median(peer_t):.3f})"
        )
    ours_s, peer_s = min(times["ours", False]), min(times["peer", False])
    print(machine_note())
    print(result_line(NAME, ours_s / peer_s, TARGET, lower_is_better=True))


if __name__ == "__main__":
    main()
