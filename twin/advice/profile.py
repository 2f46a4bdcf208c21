"""Free capacity over time at a batch site, and where a new job fits into it.

From a forecast's occupancy (every running and queued job with its simulated start and end), the
free processors form a step function from the site's `now`: `times[i]` is when `free[i]` begins,
the last step lasting forever. A new job of `units` processors asking for a hole of `hole_s`
seconds (its requested time: what a backfill scheduler reserves) starts at the earliest instant
t >= `not_before` such that free >= units throughout [t, t + hole_s): the conservative-backfill
insertion, which never delays a job already planned. One insertion is a few numpy passes over the
steps (thousands of queued jobs: tens of microseconds), so advice over many sites reuses the
forecast instead of simulating the queue again for every request.

Advice handed out but not yet seen in the queue is booked with `reserve` (herding: the next
identical request must see the capacity the previous one was told to take).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.sim import Occupancy

__all__ = ["FreeProfile"]


@dataclass(frozen=True)
class FreeProfile:
    times: np.ndarray
    """Step start times (site clock, seconds), strictly increasing; times[0] is now."""
    free: np.ndarray
    """Free units during [times[i], times[i+1]); the last value lasts forever."""
    capacity: int

    @classmethod
    def of(cls, occupancy: Occupancy, capacity: int, now_s: int, partition: int = 0) -> FreeProfile:
        """The free units of `partition` from `now_s` on, given every job's [start, end)."""
        mine = occupancy.partition == partition
        start = np.maximum(occupancy.start_s[mine], now_s)
        end = occupancy.end_s[mine]
        units = occupancy.units[mine]
        live = end > start
        start, end, units = start[live], end[live], units[live]
        edges = np.concatenate([start, end])
        deltas = np.concatenate([-units, units])
        order = np.argsort(edges, kind="stable")
        edges, deltas = edges[order], deltas[order]
        times, first = np.unique(edges, return_index=True)
        summed = np.add.reduceat(deltas, first) if len(first) else deltas
        free = capacity + np.cumsum(summed)
        if len(times) == 0 or times[0] > now_s:
            times = np.concatenate([[now_s], times])
            free = np.concatenate([[capacity], free])
        return cls(times.astype(np.int64), free.astype(np.int64), capacity)

    def earliest(self, units: int, hole_s: int, not_before: int | None = None) -> int | None:
        """Earliest start of a job of `units` needing `hole_s` seconds, at or after `not_before`
        (default: now); None when it can never fit (wider than the capacity)."""
        if units > self.capacity:
            return None
        t0 = int(self.times[0]) if not_before is None else max(int(self.times[0]), not_before)
        times, free = self.times, self.free
        bad = free < units
        if not bad.any():
            return t0
        bad_starts = times[bad]
        # A job can start at t0 or where a too-full stretch ends; it fits if the next too-full
        # stretch begins at least hole_s later.
        ends_idx = np.flatnonzero(bad) + 1
        bad_ends = times[ends_idx[ends_idx < len(times)]]
        candidates = np.concatenate([[t0], bad_ends[bad_ends > t0]])  # sorted, distinct (times increase)
        # a candidate inside a too-full stretch is pushed to the stretch's end by the rule above;
        # the one that is not (t0) is checked against the stretch it falls in
        k = np.searchsorted(times, candidates, side="right") - 1
        inside_bad = bad[np.clip(k, 0, len(bad) - 1)]
        nxt = np.searchsorted(bad_starts, candidates, side="right")
        next_bad = np.where(
            nxt < len(bad_starts), bad_starts[np.minimum(nxt, len(bad_starts) - 1)], np.iinfo(np.int64).max
        )
        fits = (~inside_bad) & (next_bad - candidates >= hole_s)
        hit = np.flatnonzero(fits)
        if hit.size:
            return int(candidates[hit[0]])
        return None  # only when a stretch lasts forever: cannot happen with units <= capacity

    def reserve(self, start_s: int, end_s: int, units: int) -> FreeProfile:
        """The profile with `units` taken during [start_s, end_s) (a booking of handed-out advice)."""
        start_s = max(start_s, int(self.times[0]))
        if end_s <= start_s or units <= 0:
            return self
        times, free = self.times, self.free.copy()
        for cut in (start_s, end_s):  # split the steps the booking begins and ends in
            i = int(np.searchsorted(times, cut))
            if i == len(times) or times[i] != cut:
                times = np.insert(times, i, cut)
                free = np.insert(free, i, free[i - 1])
        lo, hi = np.searchsorted(times, start_s), np.searchsorted(times, end_s)
        free[lo:hi] -= units
        return FreeProfile(times, free, self.capacity)

    def free_at(self, t: int) -> int:
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        return int(self.free[max(i, 0)])
