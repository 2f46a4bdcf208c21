"""Advice handed out counts as load where it sent the job, until the job shows up there.

Without this, fifty identical requests in a row all go to the site that looked best for the
first: each answer is right alone and wrong together (the herd effect of grid meta-schedulers).
Every recommendation books its cores at its site for its predicted start and run (a batch site:
in the site's clock, on the free-capacity profile; an edge or cloud site: off its idle cores or
quota). A booking ends when the job is seen in the site's queue (the caller reported its job id
and the collector saw it), when the caller reports that it ran elsewhere, or after `ttl_s` wall
seconds, whichever comes first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

__all__ = ["Booking", "HerdingLedger"]


@dataclass(frozen=True)
class Booking:
    advice_id: str
    site: str
    cores: int
    start_s: int | None
    """Site clock (batch sites); None for edge and cloud sites (held now)."""
    end_s: int | None
    expires_wall_s: float
    job_id: str | None = None


class HerdingLedger:
    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._bookings: dict[str, Booking] = {}
        self._lock = threading.Lock()
        self.version = 0
        """Moves on every change, so cached profiles with the bookings applied can be checked."""

    def book(self, advice_id: str, site: str, cores: int, start_s: int | None, end_s: int | None) -> None:
        with self._lock:
            self._bookings[advice_id] = Booking(advice_id, site, cores, start_s, end_s, self.clock() + self.ttl_s)
            self.version += 1

    def reported(self, advice_id: str, site: str, job_id: str) -> None:
        """The caller ran the job at `site` as `job_id`: a booking elsewhere is dropped at once;
        at the advised site it stays until the job is seen there."""
        with self._lock:
            booking = self._bookings.get(advice_id)
            if booking is None:
                return
            if booking.site != site:
                del self._bookings[advice_id]
            else:
                self._bookings[advice_id] = Booking(
                    booking.advice_id,
                    site,
                    booking.cores,
                    booking.start_s,
                    booking.end_s,
                    booking.expires_wall_s,
                    job_id,
                )
            self.version += 1

    def seen(self, site: str, job_ids: set[str]) -> None:
        """The site's collector saw these jobs: their bookings are now in its queue."""
        with self._lock:
            gone = [
                a for a, b in self._bookings.items() if b.site == site and b.job_id is not None and b.job_id in job_ids
            ]
            for advice_id in gone:
                del self._bookings[advice_id]
            if gone:
                self.version += 1

    def observe(self, site: str, rows: pl.DataFrame) -> None:
        """A job observer of the live state: reported jobs seen in the site's rows end their booking."""
        if any(b.site == site and b.job_id is not None for b in list(self._bookings.values())):
            self.seen(site, set(rows["job_id"].cast(pl.String).to_list()))

    def active(self, site: str) -> list[Booking]:
        now = self.clock()
        with self._lock:
            expired = [a for a, b in self._bookings.items() if b.expires_wall_s <= now]
            for advice_id in expired:
                del self._bookings[advice_id]
            if expired:
                self.version += 1
            return [b for b in self._bookings.values() if b.site == site]

    def __len__(self) -> int:
        return len(self._bookings)
