"""Free capacity over time at a batch site, and where a new job fits into it.

From a forecast's occupancy (every running and queued job with its simulated start and end), the
free processors form a step function from the site's `now`: `times[i]` is when `free[i]` begins,
the last step lasting forever. A new job of `units` processors asking for a hole of `hole_s`
seconds (its requested time: what a backfill scheduler reserves) starts at the earliest instant
t >= `not_before` such that free >= units throughout [t, t + hole_s): the conservative-backfill
insertion, which never delays a job already planned. The stretches with enough free units are
found once per width and kept; an insertion is then a binary search and a pass over them (tens
of microseconds for thousands of queued jobs), so advice over many sites reuses the forecast
instead of simulating the queue again for every request.

Advice handed out but not yet seen in the queue is booked with `reserve` (herding: the next
identical request must see the capacity the previous one was told to take).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twin.sim import Occupancy

__all__ = ["FreeProfile"]

_NEVER = np.iinfo(np.int64).max // 2
"""The end of a stretch that lasts forever (halved: adding a hole to it cannot overflow)."""


@dataclass(frozen=True)
class FreeProfile:
    times: np.ndarray
    """Step start times (site clock, seconds), strictly increasing; times[0] is now."""
    free: np.ndarray
    """Free units during [times[i], times[i+1]); the last value lasts forever."""
    capacity: int
    _stretches: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, compare=False, repr=False)

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
        starts, ends = self._runs(units)
        k = int(np.searchsorted(ends, t0, side="right"))  # the first stretch that ends after t0
        if k == len(ends):
            return None
        begin = np.maximum(starts[k:], t0)
        fits = np.flatnonzero(ends[k:] - begin >= hole_s)
        return int(begin[fits[0]]) if fits.size else None

    def _runs(self, units: int) -> tuple[np.ndarray, np.ndarray]:
        """The maximal stretches [start, end) with at least `units` free (the last may end never),
        cached per width: requests come in a few widths, and a stretch list is much shorter
        than the steps it is made of."""
        hit = self._stretches.get(units)
        if hit is not None:
            return hit
        good = (self.free >= units).astype(np.int8)
        edges = np.diff(np.concatenate([[0], good, [0]]))
        first, past = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        starts = self.times[first]
        ends = np.where(past < len(self.times), self.times[np.minimum(past, len(self.times) - 1)], _NEVER)
        self._stretches[units] = (starts, ends)
        return starts, ends

    def reserve(self, start_s: int, end_s: int, units: int) -> FreeProfile:
        """The profile with `units` taken during [start_s, end_s) (a booking of handed-out advice)."""
        start_s = max(start_s, int(self.times[0]))
        if end_s <= start_s or units <= 0:
            return self
        times, free = self.times, self.free.copy()
        for cut in (start_s, end_s):  # split the steps the booking begins and ends in
            i = int(np.searchsorted(times, cut))
            if i == len(times) or times[i] != cut:
                times = np.concatenate((times[:i], np.array([cut], np.int64), times[i:]))
                free = np.concatenate((free[:i], free[i - 1 : i], free[i:]))
        lo, hi = np.searchsorted(times, start_s), np.searchsorted(times, end_s)
        free[lo:hi] -= units
        return FreeProfile(times, free, self.capacity)

    def free_at(self, t: int) -> int:
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        return int(self.free[max(i, 0)])
