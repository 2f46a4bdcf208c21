"""Advice handed out counts as load where it sent the job, until the job shows up there.

Without this, fifty identical requests in a row all go to the site that looked best for the
first: each answer is right alone and wrong together (the herd effect of grid meta-schedulers).
Every recommendation books its cores at its site for its predicted start and run (a batch site:
in the site's clock, on the free-capacity profile; an edge or cloud site: off its idle cores or
quota). A booking ends when the job is seen in the site's queue (the caller reported its job id
and the collector saw it), when the caller reports that it ran elsewhere, or after `ttl_s` wall
seconds, whichever comes first.

A cloud site has no queue to see the job in, and nothing else tells the twin what its quota is
running: there a booking is *held* until the job's predicted end (wall clock), however long that
is, since the instance holds its share of the quota for the whole run. Ending it at `ttl_s` would
offer the same quota again ten minutes later while the first jobs still run.
"""

from __future__ import annotations

import bisect
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
    """Site clock (batch sites), wall clock (a held cloud booking); None for edge sites (held now)."""
    end_s: int | None
    expires_wall_s: float
    job_id: str | None = None


class HerdingLedger:
    """Bookings by site, oldest first. Every booking lives `ttl_s`, so the expired ones are always
    the oldest: expiry pops from the front. A site's `removed` count moves whenever a booking there
    ends early or expires, so a profile that has the first n bookings applied knows that exactly
    `tail(site, n)` is new (advice over a thousand jobs must not rescan the earlier bookings)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._by_site: dict[str, list[Booking]] = {}
        self._site_of: dict[str, str] = {}
        self._removed: dict[str, int] = {}
        self._held: dict[str, list[Booking]] = {}
        """Per site, bookings held until their end (wall clock), soonest end first."""
        self._lock = threading.Lock()

    def removed(self, site: str) -> int:
        return self._removed.get(site, 0)

    def count(self, site: str) -> int:
        return len(self._by_site.get(site, ())) + len(self._held.get(site, ()))

    def book(self, advice_id: str, site: str, cores: int, start_s: int | None, end_s: int | None) -> None:
        with self._lock:
            booking = Booking(advice_id, site, cores, start_s, end_s, self.clock() + self.ttl_s)
            self._by_site.setdefault(site, []).append(booking)
            self._site_of[advice_id] = site

    def hold(self, advice_id: str, site: str, cores: int, start_wall_s: int, end_wall_s: int) -> None:
        """Book cores at a site that will never show the job (a cloud site) until `end_wall_s`."""
        with self._lock:
            booking = Booking(advice_id, site, cores, start_wall_s, end_wall_s, float(end_wall_s))
            held = self._held.setdefault(site, [])
            bisect.insort(held, booking, key=lambda b: b.expires_wall_s)
            self._site_of[advice_id] = site

    def held(self, site: str) -> list[Booking]:
        """The site's held bookings not yet ended, soonest end first."""
        with self._lock:
            return list(self._expire_held(site, self.clock()))

    def _drop(self, site: str, keep: Callable[[Booking], bool]) -> None:
        held = self._held.get(site)
        if held:
            for b in held:
                if not keep(b):
                    self._site_of.pop(b.advice_id, None)
            self._held[site] = [b for b in held if keep(b)]
        bookings = self._by_site.get(site, [])
        kept = [b for b in bookings if keep(b)]
        if len(kept) != len(bookings):
            for b in bookings:
                if not keep(b):
                    self._site_of.pop(b.advice_id, None)
            self._by_site[site] = kept
            self._removed[site] = self._removed.get(site, 0) + 1

    def reported(self, advice_id: str, site: str, job_id: str) -> None:
        """The caller ran the job at `site` as `job_id`: a booking elsewhere is dropped at once;
        at the advised site it stays until the job is seen there."""
        with self._lock:
            booked_at = self._site_of.get(advice_id)
            if booked_at is None:
                return
            if booked_at != site:
                self._drop(booked_at, lambda b: b.advice_id != advice_id)
                return
            bookings = self._by_site.get(site, [])  # a held booking (cloud) has no queue to look in
            for i, b in enumerate(bookings):  # same booking, now with the job id to look for
                if b.advice_id == advice_id:
                    bookings[i] = Booking(b.advice_id, site, b.cores, b.start_s, b.end_s, b.expires_wall_s, job_id)

    def seen(self, site: str, job_ids: set[str]) -> None:
        """The site's collector saw these jobs: their bookings are now in its queue."""
        with self._lock:
            self._drop(site, lambda b: b.job_id is None or b.job_id not in job_ids)

    def observe(self, site: str, rows: pl.DataFrame) -> None:
        """A job observer of the live state: reported jobs seen in the site's rows end their booking."""
        if any(b.job_id is not None for b in list(self._by_site.get(site, ()))):
            self.seen(site, set(rows["job_id"].cast(pl.String).to_list()))

    def _pop_expired(self, bookings: list[Booking], now: float) -> int:
        """Drop the bookings (soonest expiry first) expired by `now`; returns how many."""
        if not bookings or bookings[0].expires_wall_s > now:
            return 0
        n = bisect.bisect_right(bookings, now, key=lambda b: b.expires_wall_s)
        for b in bookings[:n]:
            self._site_of.pop(b.advice_id, None)
        del bookings[:n]
        return n

    def _expire(self, site: str, now: float) -> list[Booking]:
        bookings = self._by_site.get(site, [])
        if self._pop_expired(bookings, now):
            self._removed[site] = self._removed.get(site, 0) + 1
        return bookings

    def _expire_held(self, site: str, now: float) -> list[Booking]:
        held = self._held.get(site, [])
        self._pop_expired(held, now)
        return held

    def active(self, site: str) -> list[Booking]:
        """The site's live bookings, oldest first (expired ones dropped now)."""
        with self._lock:
            return list(self._expire(site, self.clock()))

    def tail(self, site: str, applied: int) -> tuple[int, list[Booking]]:
        """(the site's removed count, its live bookings after the first `applied`), expiring first."""
        with self._lock:
            bookings = self._expire(site, self.clock())
            return self._removed.get(site, 0), bookings[applied:]

    def booked_cores(self, site: str) -> int:
        """Cores the site's live and held bookings take (an edge or cloud site's capacity)."""
        with self._lock:
            now = self.clock()
            return sum(b.cores for b in self._expire(site, now)) + sum(b.cores for b in self._expire_held(site, now))

    def __len__(self) -> int:
        return len(self._site_of)
