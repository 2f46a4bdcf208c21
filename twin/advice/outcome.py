"""What advice answers: per site, the predicted outcome of running the job there (each part with
p10 / p50 / p90), whether it can run there at all and why, and the ranking."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Advice", "Band", "SiteOutcome", "human_duration"]


@dataclass(slots=True)
class Band:
    """p10 <= p50 <= p90 of one quantity. Treated as immutable; not frozen because a frozen
    dataclass's constructor costs 3.5x (an answer builds ~20 of them per site)."""

    p10: float
    p50: float
    p90: float

    @classmethod
    def point(cls, value: float) -> Band:
        return cls(value, value, value)

    def __add__(self, other: Band) -> Band:
        """Quantiles added: exact for the median of sums only when the parts move together; a
        conservative (wider) band otherwise, which is what advice should err towards."""
        return Band(self.p10 + other.p10, self.p50 + other.p50, self.p90 + other.p90)

    def scaled(self, factor: float) -> Band:
        return Band(self.p10 * factor, self.p50 * factor, self.p90 * factor)

    def at(self, q: Literal["p10", "p50", "p90"]) -> float:
        return float(getattr(self, q))

    def as_dict(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}


@dataclass(frozen=True)
class SiteOutcome:
    """One candidate site. Durations are seconds of the site's own time (a replayed site's trace
    runs faster than the wall clock; `clock_speed` says how much), instants wall-clock unix s."""

    site: str
    kind: str
    feasible: bool
    reason: str
    """One line a person can read: why it ranks where it does, or why it cannot run the job."""
    excluded_because: str | None = None
    """A stable word when not feasible: capacity, gpus, partition, walltime, down, stale, no_data,
    no_route, not_allowed, max_cost, deadline, quota."""
    stage_in_s: Band | None = None
    wait_s: Band | None = None
    run_s: Band | None = None
    stage_out_s: Band | None = None
    turnaround_s: Band | None = None
    cost: Band | None = None
    energy_kwh: Band | None = None
    co2_g: Band | None = None
    start_at_s: float | None = None
    """Wall clock when the job starts (p50)."""
    end_at_s: float | None = None
    """Wall clock when its output is back (p50)."""
    jobs_ahead: int | None = None
    clock_speed: float = 1.0
    data_age_s: Mapping[str, float | None] = field(default_factory=dict)
    """Age of every input of this outcome: the site's state, its queue, its links, the model."""
    score: float | None = None
    """The ranking's measure (lower is better), in the objective's unit."""
    scored_for: tuple[str, str] | None = None
    """(objective, risk) `score` was computed for; another ranking computes its own."""


@dataclass(frozen=True)
class Advice:
    advice_id: str
    created_s: float
    objective: str
    risk: str
    home: str
    recommended: str | None
    """The site to run at (None: no site can run the job)."""
    ranked: tuple[SiteOutcome, ...]
    """Feasible sites best first, then the excluded ones."""
    summary: str
    """Why the recommendation: the best site and its margin, or the stay-home rule's verdict."""
    stayed_home: bool = False
    """True when a better-looking site was passed over because its gain is inside the band."""
    currency: str = "EUR"


def human_duration(seconds: float) -> str:
    """`2 h 10 min`, `16 s`, `3 d 4 h`: how a person reads a wait."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f} s"
    minutes = s / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours, mins = divmod(round(minutes), 60)
    if hours < 48:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
