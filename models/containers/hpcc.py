"""Our own HPC Challenge runs (hpcc 1.5.0 under Open MPI) over a grid of container configurations:
the parser of one run's `hpccoutf.txt` and the typed table of runs `bench/hpcc_runs.py` writes.

Why our own runs beside the published ones: they are the only rows where every factor (ranks,
binding, transport, runtime, network namespace) was varied by us on one machine, repeated, with
the host's load and pressure at each start, so a model's predicted sign and ordering of a factor's
effect can be checked on held-out repetitions. They were measured on a 2-core VM without
InfiniBand (`MEASURED_ON`, a column of every row): nothing here says how a real cluster behaves.

hpcc writes its figures as `key=value` lines between "Begin of Summary section." and "End of
Summary section."; a run that crashed or was killed leaves the section missing or cut, and a run
that failed its own checks says `Success=0`: each is an `HpccOutputError` naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

__all__ = [
    "FACTORS",
    "FIGURES",
    "HPCC_RUNS",
    "HPCC_SCHEMA",
    "MEASURED_ON",
    "HpccOutputError",
    "hpcc_figures",
    "load_hpcc_runs",
    "parse_summary",
]

HPCC_RUNS = Path(__file__).with_name("hpcc-runs.csv")
"""The committed runs (made by `bench/hpcc_runs.py`)."""

MEASURED_ON = "2-core VM, no InfiniBand (Debian 12, Open MPI 4.1.4, hpcc 1.5.0)"
"""Every row's label: these runs are evidence about this machine only."""

FIGURES: dict[str, str] = {
    # hpcc summary key -> column; -1 (not measured, e.g. latency with one rank) becomes null
    "HPL_Tflops": "hpl_tflops",
    "StarDGEMM_Gflops": "star_dgemm_gflops",
    "SingleDGEMM_Gflops": "single_dgemm_gflops",
    "PTRANS_GBs": "ptrans_gbs",
    "MPIRandomAccess_GUPs": "mpi_random_access_gups",
    "StarRandomAccess_GUPs": "star_random_access_gups",
    "SingleRandomAccess_GUPs": "single_random_access_gups",
    "StarSTREAM_Triad": "star_stream_triad_gbs",
    "SingleSTREAM_Triad": "single_stream_triad_gbs",
    "StarFFT_Gflops": "star_fft_gflops",
    "SingleFFT_Gflops": "single_fft_gflops",
    "MPIFFT_Gflops": "mpi_fft_gflops",
    "MaxPingPongLatency_usec": "max_ping_pong_latency_us",
    "AvgPingPongLatency_usec": "avg_ping_pong_latency_us",
    "MinPingPongBandwidth_GBytes": "min_ping_pong_bandwidth_gbs",
    "AvgPingPongBandwidth_GBytes": "avg_ping_pong_bandwidth_gbs",
    "NaturallyOrderedRingLatency_usec": "natural_ring_latency_us",
    "RandomlyOrderedRingLatency_usec": "random_ring_latency_us",
    "NaturallyOrderedRingBandwidth_GBytes": "natural_ring_bandwidth_gbs",
    "RandomlyOrderedRingBandwidth_GBytes": "random_ring_bandwidth_gbs",
}

FACTORS = ("ranks", "binding", "transport", "runtime")
"""The varied factors; `network_mode`, `launch` and `hosts` follow from transport and runtime."""

HPCC_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),  # {campaign}-{index}: unique, stable across a resumed campaign
    "campaign": pl.String(),  # one grid (seed, N, reps, configurations); a resumed campaign keeps it
    "started_at": pl.String(),  # UTC, ISO 8601
    "ranks": pl.Int64(),  # 1 | 2 | 4 (4 oversubscribes the 2 cores)
    "binding": pl.String(),  # core | none
    "transport": pl.String(),  # sm | tcp-lo | tcp-veth
    "runtime": pl.String(),  # bare | bwrap-host | bwrap-private | charliecloud | crun-private
    "network_mode": pl.String(),  # host | private
    "launch": pl.String(),  # none (bare) | rank (runtime wraps each rank) | job (runtime wraps mpirun)
    "hosts": pl.Int64(),  # network namespaces the ranks span (2 for tcp-veth)
    "rep": pl.Int64(),
    "problem_n": pl.Int64(),  # HPL N (the other kernels' sizes follow from it)
    "oversubscribed": pl.Boolean(),  # ranks > cores: Open MPI yields when idle
    "host_cores": pl.Int64(),
    "load1_start": pl.Float64(),
    "cpu_pressure_some_avg10_start": pl.Float64(),  # /proc/pressure/cpu, percent
    "memory_pressure_some_avg10_start": pl.Float64(),
    "kernel": pl.String(),
    "mpi_options": pl.String(),  # the mpirun options that differ by configuration
    **{column: pl.Float64() for column in FIGURES.values()},
    "wall_s": pl.Float64(),  # mpirun start to exit
    "measured_on": pl.String(),
}


class HpccOutputError(ValueError):
    """An hpccoutf.txt without a complete, successful summary section."""


_BEGIN, _END = "Begin of Summary section.", "End of Summary section."


def parse_summary(text: str, source: str | Path) -> dict[str, str]:
    """The summary section's `key=value` pairs, as written."""
    lines = text.splitlines()
    try:
        begin = lines.index(_BEGIN)
    except ValueError:
        raise HpccOutputError(f"{source}: no {_BEGIN!r} line: hpcc did not finish (see its stderr)") from None
    try:
        end = lines.index(_END, begin)
    except ValueError:
        raise HpccOutputError(f"{source}: summary section not closed by {_END!r}: the output is truncated") from None
    pairs: dict[str, str] = {}
    for number, line in enumerate(lines[begin + 1 : end], start=begin + 2):
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise HpccOutputError(f"{source}:{number}: {line!r} is not key=value")
        pairs[key] = value
    return pairs


def hpcc_figures(text: str, source: str | Path) -> dict[str, Any]:
    """The kernels' figures of one run (FIGURES' columns) plus `ranks` and `problem_n`."""
    pairs = parse_summary(text, source)
    if pairs.get("Success") != "1":
        raise HpccOutputError(f"{source}: Success={pairs.get('Success')!r}: hpcc reports a failed check")
    missing = [key for key in (*FIGURES, "CommWorldProcs", "HPL_N") if key not in pairs]
    if missing:
        raise HpccOutputError(f"{source}: summary lacks {', '.join(missing)}")
    row: dict[str, Any] = {"ranks": _int(pairs, "CommWorldProcs", source), "problem_n": _int(pairs, "HPL_N", source)}
    for key, column in FIGURES.items():
        try:
            value = float(pairs[key])
        except ValueError:
            raise HpccOutputError(f"{source}: {key}={pairs[key]!r} is not a number") from None
        row[column] = None if value == -1 or not math.isfinite(value) else value
    return row


def load_hpcc_runs(source: str | Path = HPCC_RUNS) -> pl.DataFrame:
    """Every committed run as HPCC_SCHEMA; a file with other columns is refused, naming them."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no HPCC runs file; make one with .venv/bin/python bench/hpcc_runs.py")
    header = pl.read_csv(path, n_rows=0).columns
    if header != list(HPCC_SCHEMA):
        extra = sorted(set(header) - set(HPCC_SCHEMA))
        lacking = [c for c in HPCC_SCHEMA if c not in header]
        raise ValueError(f"{path}: columns differ from HPCC_SCHEMA (unknown: {extra}, missing: {lacking})")
    runs = pl.read_csv(path, schema=HPCC_SCHEMA)
    labels = runs["measured_on"].unique().to_list()
    if runs.height and labels != [MEASURED_ON]:
        raise ValueError(f"{path}: measured_on is {labels}, expected only {MEASURED_ON!r}")
    return runs


def _int(pairs: dict[str, str], key: str, source: str | Path) -> int:
    try:
        return int(pairs[key])
    except ValueError:
        raise HpccOutputError(f"{source}: {key}={pairs[key]!r} is not an integer") from None
