"""Live forecast latency: the predicted start of every pending job of a 1,000-node site with 5,000
pending jobs, and of one hypothetical job, with `twin.sim.forecast`.

States are random but shaped like a busy HPC site (seeded, so every run times the same states):

- one node-granular partition of 1,000 nodes × 32 cores; jobs take whole nodes;
- job widths: powers of two from 1 to 256 nodes, the smaller the likelier (P(2^k) ∝ 0.55^k);
- requested times from 10 min to 48 h (the usual Slurm limits), run times a random share of them;
- running jobs fill the machine to 90-100 % of its nodes, each started a random part of its limit
  ago (some past their AVE2 prediction, so corrections are exercised);
- 5,000 pending jobs from 300 users, in priority order, submitted over the last two days;
- a completion history with the last two run times of most users (what AVE2 uses).

Each state is forecast with EASY++ (SJBF backfilling, AVE2 predictions, requested-time correction:
the heaviest policy) and timed end to end: predictions, the simulation, the result frame. The
first state is a warm-up (not counted). p50/p95/max are printed.

ratio = 1.0 / p95 seconds; target 1.0, i.e. PASS when p95 <= 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace

from _common import machine_note, result_line

from twin.sim import Ave2, History, Job, Partition, Policy, RunningJob, Site, SiteState, forecast

NAME = "sim_forecast"
TARGET = 1.0
NODES, CORES = 1000, 32
LIMITS_S = (600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600)


def _width(rng: random.Random) -> int:
    weights = [0.55**k for k in range(9)]
    return 2 ** rng.choices(range(9), weights)[0]


def _job(rng: random.Random, job_id: str, submit_s: int, users: int, max_nodes: int = NODES) -> Job:
    nodes = min(_width(rng), max_nodes)
    return Job(job_id, submit_s, None, rng.choice(LIMITS_S), nodes * CORES, nodes, f"u{rng.randrange(users)}")


def make_state(seed: int, pending: int = 5000, users: int = 300) -> SiteState:
    """A random busy site at t = 10,000,000 s (see the module docstring)."""
    rng = random.Random(seed)
    now = 10_000_000
    site = Site("bench", (Partition.of_nodes("batch", NODES, CORES),))
    running: list[RunningJob] = []
    used, target = 0, rng.randint(900, NODES)
    while used < target:
        job = _job(rng, f"r{len(running)}", 0, users, target - used)
        started = now - rng.randint(0, (job.req_s or 1) - 1)
        running.append(RunningJob(replace(job, submit_s=started - rng.randint(0, 3600)), started))
        used += job.nodes or 0
    queue = [_job(rng, f"p{i}", now - rng.randint(0, 2 * 86400), users) for i in range(pending)]
    history = History()
    for u in range(users):
        if rng.random() < 0.9:
            for _ in range(2):
                history.record(f"u{u}", int(rng.choice(LIMITS_S) * rng.random()) + 1)
    return SiteState(now, site, tuple(running), tuple(queue), history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, default=50)
    parser.add_argument("--pending", type=int, default=5000)
    args = parser.parse_args()
    policy = Policy.easy_plus_plus("reqtime")
    predictor = Ave2()
    hypothetical = Job("what-if", 0, None, 4 * 3600, 64 * CORES, 64, "u0")
    times: list[float] = []
    for i in range(args.states + 1):
        state = make_state(1000 + i, args.pending)
        started = time.perf_counter()
        frame = forecast(state, policy, predictor, extra=[hypothetical])
        elapsed = time.perf_counter() - started
        assert frame.height == args.pending + 1 and frame["predicted_start_s"].null_count() == 0
        if i == 0:
            print(f"warm-up: {elapsed:.3f} s; {len(state.running)} running, {len(state.pending)} pending")
            continue
        times.append(elapsed)
        if i % 10 == 0:
            print(f"  {i}/{args.states} states, last {elapsed:.3f} s", flush=True)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * len(times)) - 1)]
    print(f"forecast of {args.pending:,} pending jobs + 1 hypothetical on {NODES:,} nodes, EASY++ (AVE2, SJBF):")
    print(f"  p50 {statistics.median(times):.3f} s  p95 {p95:.3f} s  max {times[-1]:.3f} s over {len(times)} states")
    print(machine_note())
    print(result_line(NAME, 1.0 / p95, TARGET))


if __name__ == "__main__":
    main()
