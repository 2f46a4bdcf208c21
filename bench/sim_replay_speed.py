"""Whole-log replay speed: EASY backfilling (user estimates) over CTC-SP2 (77,199 jobs after the
SC'15 strong filter) and SDSC-BLUE (232,536 jobs), one core, pure Python.

Each log is read and cleaned first (untimed: that is the SWF reader's own benchmark), then
`twin.sim.simulate` is timed end to end: sorting into queue order, admission, the event loop,
and the result frame of every job's start and end. Wall-clock and CPU seconds of this process
are both printed (the simulator is single-threaded; the machine may be shared, so CPU seconds
are the fairer figure, and the ratio uses the larger of the two). The AVEbsld of each run is
printed as a sanity check: 48.8 and 37.6 with the default (batched) tie-break, against 49.57 and
36.52 in the SC'15 artifact, whose own tie-break `sim_sc15` reproduces (CTC-SP2 to every digit).

ratio = 60 s / the slower log's seconds; target 1.0, i.e. PASS when both replay within 60 s.
"""

from __future__ import annotations

import argparse
import time

from _common import cpu_seconds, machine_note, result_line
from sim_common import load_log

from twin.sim import Policy, RequestedTime, compute, simulate

NAME = "sim_replay_speed"
TARGET = 1.0
BUDGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", nargs="+", default=["CTC-SP2", "SDSC-BLUE"])
    args = parser.parse_args()
    slowest = 0.0
    for name in args.logs:
        log = load_log(name)
        procs = log.site.partitions[0].processors
        print(f"{name}: {len(log.jobs):,} jobs on {procs:,} processors (read {log.load_s:.1f} s)")
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        result = simulate(log.jobs, log.site, Policy.easy(), RequestedTime())
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        m = compute(result)
        rate = len(log.jobs) / wall
        print(f"  EASY replay: {wall:.2f} s wall, {cpu:.2f} s CPU, {rate:,.0f} jobs/s; AVEbsld {m.avebsld:.2f}")
        slowest = max(slowest, wall, cpu)
    print(machine_note())
    print(result_line(NAME, BUDGET_S / slowest, TARGET))


if __name__ == "__main__":
    main()
