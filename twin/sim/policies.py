"""Scheduling policies: FCFS, EASY backfilling and EASY++, and the prediction corrections.

- FCFS: jobs start strictly in queue order; the first job that does not fit blocks all others.
- EASY (Lifka 1995; Mu'alem and Feitelson 2001): FCFS, plus one reservation for the queue head at
  its shadow time (when enough running jobs will have ended, by their predicted ends); a later job
  may start now ("backfill") when it fits now and either ends by the shadow time or uses only the
  processors the head will leave spare ("extra"). Planning uses the runtime predictor; with
  `RequestedTime` this is plain EASY.
- EASY++ (Tsafrir, Etsion and Feitelson 2007): EASY planning with predicted run times (`Ave2`),
  backfilling shortest-predicted-first (SJBF), and when a running job outlives its prediction the
  prediction is corrected upward (`correction`), which moves the head's reservation.
- `reserve="p90"` (for a quantile model): a job is judged as a backfill candidate by its predicted
  median, but once it runs its end is planned at its predicted p90 (when the predictor gives one,
  see `RuntimePrediction`). The median is the best guess of whether a job fits before the
  reservation; the p90 is the end the reservation can count on: with the median, half of the
  running jobs outlive their plan, and each correction moves the head's reservation. Measured in
  bench/models_easypp.py: AVEbsld at or below the SC'15 artefact's EASY++ AVE2 on all five logs,
  and much less sensitive to 1 s perturbations of the plans than AVE2.

Every policy kills a job at its requested time (admission makes run = min(run, req)).

Corrections, given the current prediction, the job's initial one, its requested time and the
number of this correction (1 for the first), return the new prediction:

- "reqtime": the requested time (predictsim `reqtime`);
- "tsafrir": the initial prediction plus 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 5 h, 10 h, 20 h,
  50 h, 100 h for the 1st..11th correction, then the requested time (predictsim `tsafrir`);
- "doubling": twice the current prediction (predictsim `recursive_doubling`).

The engine bounds every correction to (current, requested time]: strictly increasing, so a job is
re-planned a finite number of times; never past the kill time (predictsim's doubling is not capped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["CORRECTIONS", "TSAFRIR_STEPS_S", "BackfillOrder", "CorrectionName", "Policy", "ReserveName"]

BackfillOrder = Literal["fcfs", "sjbf"]
CorrectionName = Literal["reqtime", "tsafrir", "doubling"]
ReserveName = Literal["prediction", "p90"]

TSAFRIR_STEPS_S: tuple[int, ...] = (0, 60, 300, 900, 1800, 3600, 7200, 18000, 36000, 72000, 180000, 360000)
"""Added to the initial prediction at the n-th correction (predictsim's common_correctors.tsafrir)."""


def _reqtime(current: int, initial: int, req: int, n: int) -> int:
    return req


def _tsafrir(current: int, initial: int, req: int, n: int) -> int:
    return initial + TSAFRIR_STEPS_S[n] if n < len(TSAFRIR_STEPS_S) else req


def _doubling(current: int, initial: int, req: int, n: int) -> int:
    return 2 * current


CORRECTIONS: dict[str, Callable[[int, int, int, int], int]] = {
    "reqtime": _reqtime,
    "tsafrir": _tsafrir,
    "doubling": _doubling,
}


@dataclass(frozen=True)
class Policy:
    """How the queue is served. Build with `fcfs()`, `easy()` or `easy_plus_plus()`."""

    name: str
    backfill: bool
    order: BackfillOrder = "fcfs"
    """The order backfill candidates are tried in: queue order, or shortest predicted first."""
    correction: CorrectionName = "reqtime"
    reserve: ReserveName = "prediction"
    """What a running job's end is planned at: its prediction, or its predicted p90 when known."""

    def __post_init__(self) -> None:
        if self.order not in ("fcfs", "sjbf"):
            raise ValueError(f"backfill order must be 'fcfs' or 'sjbf', got {self.order!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {sorted(CORRECTIONS)}, got {self.correction!r}")
        if self.reserve not in ("prediction", "p90"):
            raise ValueError(f"reserve must be 'prediction' or 'p90', got {self.reserve!r}")

    @classmethod
    def fcfs(cls) -> Policy:
        return cls("FCFS", backfill=False)

    @classmethod
    def easy(cls, order: BackfillOrder = "fcfs", correction: CorrectionName = "reqtime") -> Policy:
        name = "EASY" if order == "fcfs" else "EASY-SJBF"
        return cls(name, backfill=True, order=order, correction=correction)

    @classmethod
    def easy_plus_plus(cls, correction: CorrectionName = "reqtime", reserve: ReserveName = "prediction") -> Policy:
        name = f"EASY++ ({correction})" if reserve == "prediction" else f"EASY++ ({correction}, running at p90)"
        return cls(name, backfill=True, order="sjbf", correction=correction, reserve=reserve)

    def corrected(self, current: int, initial: int, req: int, n: int) -> int:
        """The n-th correction of a prediction the job has outlived, bounded to (current, req]."""
        new = CORRECTIONS[self.correction](current, initial, req, n)
        return min(req, max(new, current + 1))
