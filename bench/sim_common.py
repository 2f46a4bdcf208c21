"""Shared by the simulator benchmarks: the five SC'15 logs, cleaned as predictsim cleaned them, as
simulator jobs on a processor-granular site of MaxProcs processors (what predictsim's pyss does)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from collectors.swf import read_swf, simulator_jobs, strong_filter
from twin.sim import Job, Site, jobs_from_frame

__all__ = ["LOGS", "SHARED_SWF", "SimLog", "find_log", "load_log"]

SHARED_SWF = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "swf"

LOGS: dict[str, str] = {
    "KTH-SP2": "KTH-SP2-1996-2.1-cln",
    "CTC-SP2": "CTC-SP2-1996-3.1-cln",
    "SDSC-SP2": "SDSC-SP2-1998-4.2-cln",
    "SDSC-BLUE": "SDSC-BLUE-2000-4.2-cln",
    "CEA-Curie": "CEA-Curie-2011-2.1-cln",
}
"""Short name → file stem in the shared data (and the artifact's log names, case aside)."""


@dataclass(frozen=True)
class SimLog:
    name: str
    path: Path
    site: Site
    jobs: list[Job]
    raw_jobs: int
    load_s: float


def find_log(name: str, directory: Path = SHARED_SWF) -> Path:
    """The log's file, or a clear message and exit status 2 when the shared data is missing."""
    stem = LOGS[name]
    found = sorted(directory.glob(f"{stem}.swf*")) if directory.is_dir() else []
    if not found:
        print(f"SWF log {name} not found: no {stem}.swf* in {directory} (the shared data is not present)")
        raise SystemExit(2)
    return found[0]


def load_log(name: str, directory: Path = SHARED_SWF) -> SimLog:
    """Read, apply the SC'15 strong filter (collectors.swf.strong_filter), map to simulator jobs:
    collectors.swf.simulator_jobs (run capped at the request by the filter; each job sized by its
    requested processors); one partition of the header's MaxProcs processors.

    Requested, not allocated, processors: pyss sizes a job by its request (its workload parser's
    `num_requested_processors`, which falls back to the allocation when the field is -1). It
    matters where sites round allocations up to whole nodes: 19,784 CEA-Curie jobs were given
    more processors than they asked for (200 -> 224), and on that saturated machine this alone
    moved EASY++ AVEbsld from 21.3 to 74. CTC-SP2 records no requests; in SDSC-SP2 they are equal."""
    started = time.perf_counter()
    path = find_log(name, directory)
    log = read_swf(path)
    raw = log.jobs.select(pl.len()).collect().item()
    cleaned = simulator_jobs(strong_filter(log))
    jobs = jobs_from_frame(cleaned)
    max_procs = log.header.max_procs
    if max_procs is None:
        max_procs = max(j.procs for j in jobs)
    site = Site.single(name, max_procs)
    return SimLog(name, path, site, jobs, raw, time.perf_counter() - started)
