"""One partition's queue, its running jobs and the scheduling pass (FCFS or EASY backfilling).

Data structures, chosen so a year-long log replays in seconds in pure Python:

- The queue is kept in arrival (priority) order in parallel lists (scalar access) mirrored in
  numpy arrays (vector access); a started job is only marked dead. The window [head, end) is
  compacted when dead slots outnumber the waiting ones, so scans stay proportional to the queue.
- Running jobs are a list of (planned end, job, units) kept sorted with bisect: the head's shadow
  time is a walk from the earliest planned end until enough units are free.
- Backfilling never scans the queue in Python: numpy picks the candidates that fit now and either
  end by the shadow time or fit in the extra units; they are then taken greedily in backfill
  order, a chunk at a time (a partial sort under SJBF), each start lowering the free and extra
  units, the rest re-filtered by numpy between chunks. Free and extra units only shrink during a
  pass, so a job that fails the vector test can never pass later in it: the greedy loop over
  candidates is exact, not a heuristic.

This is EASY with a single reservation, the same decisions as predictsim's profile-based check
(`canJobStartNow` on its cpu snapshot with the head job assigned at its earliest start).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable

import numpy as np

__all__ = ["PartitionState"]

_COMPACT_MIN_DEAD = 2048
_CHUNK = 32


class PartitionState:
    """Queue + running set of one partition, counted in units (processors or nodes)."""

    __slots__ = (
        "_alive",
        "_est",
        "_jobs",
        "_lo",
        "_np_alive",
        "_np_est",
        "_np_units",
        "_slot",
        "_start",
        "_units",
        "backfill",
        "capacity",
        "dirty",
        "ends",
        "free",
        "sjbf",
        "waiting",
    )

    def __init__(
        self, capacity: int, backfill: bool, sjbf: bool, start: Callable[[int, int, int], None], size_hint: int = 64
    ) -> None:
        self.capacity = capacity
        self.free = capacity
        self.backfill = backfill
        self.sjbf = sjbf
        self._start = start
        """start(job, now, planned_duration): the engine records the start and its events."""
        self.dirty = False
        self.waiting = 0
        self.ends: list[tuple[int, int, int]] = []
        """(planned end, job, units) of every running job, sorted."""
        self._jobs: list[int] = []
        self._units: list[int] = []
        self._est: list[int] = []
        self._alive: list[bool] = []
        self._lo = 0
        self._slot: dict[int, int] = {}
        """job → its queue slot, for waiting jobs (predictions refreshed in place)."""
        size = max(64, size_hint)
        self._np_units = np.zeros(size, np.int64)
        self._np_est = np.zeros(size, np.int64)
        self._np_alive = np.zeros(size, np.bool_)

    # ------------------------------------------------------------------------------------ queue
    def enqueue(self, job: int, units: int, planned: int) -> None:
        """Append a job at the end of the queue (the lowest priority)."""
        n = len(self._jobs)
        if n == len(self._np_units):
            self._grow(2 * n)
        self._jobs.append(job)
        self._units.append(units)
        self._est.append(planned)
        self._alive.append(True)
        self._np_units[n] = units
        self._np_est[n] = planned
        self._np_alive[n] = True
        self._slot[job] = n
        self.waiting += 1
        self.dirty = True
        dead = n - self._lo - self.waiting
        if dead > _COMPACT_MIN_DEAD and dead > self.waiting:
            self._compact()

    def set_planned(self, job: int, planned: int) -> None:
        """A waiting job's prediction changed (refreshed from its user's newer history)."""
        slot = self._slot[job]
        self._est[slot] = planned
        self._np_est[slot] = planned
        self.dirty = True

    def queued(self) -> list[int]:
        """Waiting jobs in queue order."""
        alive, jobs = self._alive, self._jobs
        return [jobs[i] for i in range(self._lo, len(jobs)) if alive[i]]  # from the head: started ones are behind it

    def _grow(self, size: int) -> None:
        for name in ("_np_units", "_np_est", "_np_alive"):
            old = getattr(self, name)
            new = np.zeros(max(64, size), old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _compact(self) -> None:
        keep = [i for i in range(self._lo, len(self._jobs)) if self._alive[i]]
        self._jobs = [self._jobs[i] for i in keep]
        self._units = [self._units[i] for i in keep]
        self._est = [self._est[i] for i in keep]
        self._alive = [True] * len(keep)
        self._slot = {job: slot for slot, job in enumerate(self._jobs)}
        self._lo = 0
        size = max(64, 2 * len(keep))
        self._np_units = np.zeros(size, np.int64)
        self._np_est = np.zeros(size, np.int64)
        self._np_alive = np.zeros(size, np.bool_)
        self._np_units[: len(keep)] = self._units
        self._np_est[: len(keep)] = self._est
        self._np_alive[: len(keep)] = True

    # ------------------------------------------------------------------------------------ running
    def place(self, job: int, units: int, planned_end: int) -> None:
        """A job that is running (started by a pass, or loaded from a live state)."""
        self.free -= units
        insort(self.ends, (planned_end, job, units))

    def release(self, job: int, units: int, planned_end: int) -> None:
        """A running job ended: its units are free again and its planned tail is dropped."""
        ends = self.ends
        del ends[bisect_left(ends, (planned_end, job, units))]
        self.free += units
        self.dirty = True

    def replan(self, job: int, units: int, old_end: int, new_end: int) -> None:
        """A running job outlived its prediction: move its planned end (no pass by itself)."""
        ends = self.ends
        del ends[bisect_left(ends, (old_end, job, units))]
        insort(ends, (new_end, job, units))

    def _take(self, slot: int, now: int) -> None:
        units = self._units[slot]
        est = self._est[slot]
        job = self._jobs[slot]
        self._alive[slot] = False
        self._np_alive[slot] = False
        del self._slot[job]
        self.waiting -= 1
        self.place(job, units, now + est)
        self._start(job, now, est)

    # ------------------------------------------------------------------------------------ the pass
    def schedule(self, now: int) -> None:
        """Start what the policy allows at `now`: the queue head while it fits, then backfill."""
        self.dirty = False
        if not self.waiting or self.free <= 0:
            return
        alive, units = self._alive, self._units
        n = len(units)
        lo = self._lo
        while lo < n:
            if not alive[lo]:
                lo += 1
                continue
            if units[lo] > self.free:
                break
            self._take(lo, now)
            lo += 1
        self._lo = lo
        if not self.backfill or self.waiting <= 1 or self.free <= 0:
            return
        self._backfill(now, lo, n)

    def shadow(self, need: int) -> tuple[int, int]:
        """(shadow time, extra units): when `need` units will be free by the running jobs' planned
        ends, and how many units beyond `need` are free then (every job ending then counted)."""
        avail = self.free
        ends = self.ends
        k, count = 0, len(ends)
        while k < count:
            end, _, u = ends[k]
            avail += u
            k += 1
            if avail >= need:
                while k < count and ends[k][0] == end:
                    avail += ends[k][2]
                    k += 1
                return end, avail - need
        raise AssertionError(f"{need} units never free: capacity {self.capacity}, free {self.free}")

    def _backfill(self, now: int, lo: int, n: int) -> None:
        first = lo + 1
        free = self.free
        cand_units = self._np_units[first:n]
        fits = cand_units <= free
        fits &= self._np_alive[first:n]
        if not fits.any():
            return
        shadow, extra = self.shadow(self._units[lo])
        cand_est = self._np_est[first:n]
        fits &= (cand_est <= shadow - now) | (cand_units <= extra)
        picks = np.flatnonzero(fits)
        units, est = self._units, self._est
        horizon = shadow - now
        while picks.size:
            # Take candidates a chunk at a time (the shortest first under SJBF, ties by queue
            # order): a pass usually fills the machine within the first few, so sorting or
            # walking thousands of candidates in Python would be wasted.
            chunk, picks = self._next_chunk(picks, cand_est)
            for i in chunk.tolist():
                slot = first + i
                u = units[slot]
                if u > free:
                    continue
                if est[slot] > horizon:
                    if u > extra:
                        continue
                    extra -= u
                free -= u
                self._take(slot, now)
                if free <= 0:
                    return
            if picks.size:  # free and extra only shrank: re-filter the rest, exactly
                rest_units = cand_units[picks]
                picks = picks[(rest_units <= free) & ((cand_est[picks] <= horizon) | (rest_units <= extra))]

    def _next_chunk(self, picks: np.ndarray, cand_est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the next candidates in backfill order, the others), at most _CHUNK at a time."""
        if not self.sjbf:
            return picks[:_CHUNK], picks[_CHUNK:]
        keys = cand_est[picks] * (len(cand_est) + 1) + picks  # unique: estimate, then queue position
        if picks.size <= _CHUNK:
            return picks[np.argsort(keys)], picks[:0]
        sel = np.argpartition(keys, _CHUNK)[:_CHUNK]
        rest = np.ones(picks.size, np.bool_)
        rest[sel] = False
        return picks[sel[np.argsort(keys[sel])]], picks[rest]
