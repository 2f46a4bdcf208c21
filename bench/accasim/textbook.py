"""Small reference schedulers for the AccaSim cross-check — NOT the project's simulator.

`twin/sim` is the project's simulator; this file exists so that `bench/accasim_check.py` can be
run and tested end to end before it lands (`--against textbook`), and so that every difference
between AccaSim and a textbook EASY can be shown and attributed: `easy_accasim_rules` re-states
AccaSim 1.1.3's EASYBackfilling + FirstFit decisions on a processor pool; when it reproduces
AccaSim's start times and `easy` does not, the rules listed below are the explanation.

Model (all three): one pool of `total` processors; a job holds `procs` processors from its start
for `run` seconds (never killed; the strong filter caps run at the requested time anyway). Events
are integer seconds; at an instant, every job ending then is released first, then every job
submitted then joins the queue (submit order, ties in input order), then ONE scheduling pass runs.

- `fcfs`: start queue heads while they fit.
- `easy` (textbook EASY, Mu'alem & Feitelson 2001, as in pyss/predictsim): FCFS, then for the
  blocked head the shadow time (earliest time enough processors are free, by running jobs'
  start + requested time) and the extra processors at that time; every later queued job that
  fits now is backfilled if it ends (by its requested time) no later than the shadow time, or
  uses only extra processors (which it then consumes). Recomputed at every pass.
- `easy_accasim_rules`: AccaSim 1.1.3 (scheduler_class.EASYBackfilling.scheduling_method,
  allocator_class.FirstFit.allocating_method):
    1. the reservation is computed once, when the head first blocks, and kept until the clock
       reaches it, even when running jobs end early and the head would fit sooner;
    2. before that time the blocked head is not even tried: it waits for its reservation;
    3. backfilling is unprotected: EASYBackfilling passes `reserved_nodes=[]` to the allocator,
       whose overlap test then returns that empty list, so every queued job that fits now starts,
       whatever its length (`protect=True` instead applies what the allocator's code intends with
       real reserved nodes: a job whose requested end passes the reservation is not backfilled);
    4. from the reservation time on, the head is tried first at each pass; if backfilled jobs
       hold the processors it stays blocked, with the old reservation, and the backfill of
       everything else goes on (so the head can wait indefinitely);
    5. there is no event at the reservation time itself: the head is retried at the first
       submission or job end at or after it;
    6. except when no submission or job end is left (the end of a log): AccaSim's clock then
       ticks one second at a time (EventManager.next_events), so the head starts exactly at its
       reservation.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Sequence

__all__ = ["Job", "easy", "easy_accasim_rules", "fcfs", "simulate"]

Job = tuple[int, int, int, int, int]
"""(job_id, submit_s, run_s, procs, req_time_s), in submit order (ties: the order given)."""


class _Clock:
    """Submissions and (real) job ends, in time order; one pass per instant."""

    def __init__(self, jobs: Sequence[Job], total: int) -> None:
        for j in jobs:
            if not 0 < j[3] <= total:
                raise ValueError(f"job {j[0]}: {j[3]} processors on a machine of {total}")
        self.jobs = sorted(jobs, key=lambda j: j[1])
        self.next_job = 0
        self.ends: list[tuple[int, int, int]] = []  # (end, seq, procs)
        self.free = total
        self.start: dict[int, int] = {}
        self.running: dict[int, tuple[int, int]] = {}  # job_id -> (expected end, procs)
        self.wake: int | None = None  # an instant to pass at when no submission or end is left

    def instants(self) -> Iterable[tuple[int, list[Job]]]:
        jobs, ends = self.jobs, self.ends
        while self.next_job < len(jobs) or ends or self.wake is not None:
            upcoming = ([jobs[self.next_job][1]] if self.next_job < len(jobs) else []) + ([ends[0][0]] if ends else [])
            if upcoming:
                t = min(upcoming)
            else:
                assert self.wake is not None
                t, self.wake = self.wake, None
            while ends and ends[0][0] == t:
                _, job_id, procs = heapq.heappop(ends)
                self.free += procs
                del self.running[job_id]
            new: list[Job] = []
            while self.next_job < len(jobs) and jobs[self.next_job][1] == t:
                new.append(jobs[self.next_job])
                self.next_job += 1
            yield t, new

    def run(self, job: Job, t: int) -> None:
        job_id, _, run, procs, req = job
        self.free -= procs
        self.start[job_id] = t
        self.running[job_id] = (t + req, procs)
        heapq.heappush(self.ends, (t + run, job_id, procs))

    def shadow(self, t: int, need: int) -> tuple[int, int]:
        """Earliest time `need` processors are free by requested ends, and the extra then."""
        avail, shadow = self.free, None
        for end, procs in sorted(self.running.values()):
            if shadow is not None and end > shadow:
                break
            avail += procs  # every job ending AT the shadow time frees its processors too
            if shadow is None and avail >= need:
                shadow = end
        if shadow is not None:
            return max(shadow, t), avail - need
        raise AssertionError("a job larger than the machine")  # excluded in _Clock.__init__


def fcfs(jobs: Sequence[Job], total: int) -> dict[int, int]:
    clock, queue = _Clock(jobs, total), deque[Job]()
    for t, new in clock.instants():
        queue.extend(new)
        while queue and queue[0][3] <= clock.free:
            clock.run(queue.popleft(), t)
    return clock.start


def easy(jobs: Sequence[Job], total: int) -> dict[int, int]:
    clock, queue = _Clock(jobs, total), deque[Job]()
    for t, new in clock.instants():
        queue.extend(new)
        while queue and queue[0][3] <= clock.free:
            clock.run(queue.popleft(), t)
        if len(queue) < 2 or clock.free == 0:
            continue
        shadow, extra = clock.shadow(t, queue[0][3])
        kept: deque[Job] = deque([queue[0]])
        for i in range(1, len(queue)):
            job = queue[i]
            procs = job[3]
            if procs <= clock.free and (t + job[4] <= shadow or procs <= extra):
                if t + job[4] > shadow:
                    extra -= procs
                clock.run(job, t)
            else:
                kept.append(job)
        queue = kept
    return clock.start


def easy_accasim_rules(jobs: Sequence[Job], total: int, *, protect: bool = False) -> dict[int, int]:
    clock, queue = _Clock(jobs, total), deque[Job]()
    reserved: int | None = None  # the reservation time; the blocked job is then queue[0]
    for t, new in clock.instants():
        queue.extend(new)
        if reserved is not None and reserved <= t and queue[0][3] <= clock.free:  # rule 4: the head's turn
            clock.run(queue.popleft(), t)
            reserved = None
        if reserved is None:  # FIFO until the first job that does not fit
            while queue and queue[0][3] <= clock.free:
                clock.run(queue.popleft(), t)
            if not queue:
                continue
            reserved, _ = clock.shadow(t, queue[0][3])  # rule 1: computed once
        # rules 2 and 3: the head waits; every other job that fits starts
        kept: deque[Job] = deque([queue[0]])
        for i in range(1, len(queue)):
            job = queue[i]
            if job[3] <= clock.free and not (protect and t + job[4] > reserved):
                clock.run(job, t)
            else:
                kept.append(job)
        queue = kept
        # rule 6: with no submission or job end left, AccaSim's clock ticks by one second
        # (EventManager.next_events) until the reservation, where the head then starts
        clock.wake = reserved if queue and reserved is not None and reserved > t else None
    return clock.start


def simulate(jobs: Sequence[Job], total: int, policy: str) -> dict[int, int]:
    """Start time per job id: policy fcfs | easy | easy_accasim_rules | easy_accasim_protected."""
    if policy == "fcfs":
        return fcfs(jobs, total)
    if policy == "easy":
        return easy(jobs, total)
    if policy == "easy_accasim_rules":
        return easy_accasim_rules(jobs, total)
    if policy == "easy_accasim_protected":
        return easy_accasim_rules(jobs, total, protect=True)
    raise ValueError(f"unknown policy {policy!r}")
