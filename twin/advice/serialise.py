"""Advice as JSON-ready dicts: the API's answer and the advice log's rows share this one shape.
Instants are given twice: unix seconds and ISO-8601 UTC (`…Z`), so a person and a program both
read them without a time-zone guess."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from twin.advice.outcome import Advice, Band, SiteOutcome
from twin.advice.request import JobRequest

__all__ = ["advice_to_dict", "iso_utc", "request_to_dict"]


def iso_utc(unix_s: float | None) -> str | None:
    if unix_s is None:
        return None
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _band(band: Band | None) -> dict[str, float] | None:
    return None if band is None else {k: round(v, 6) for k, v in band.as_dict().items()}


def _site(o: SiteOutcome) -> dict[str, Any]:
    return {
        "site": o.site,
        "kind": o.kind,
        "feasible": o.feasible,
        "reason": o.reason,
        "excluded_because": o.excluded_because,
        "score": o.score,
        "stage_in_s": _band(o.stage_in_s),
        "wait_s": _band(o.wait_s),
        "run_s": _band(o.run_s),
        "stage_out_s": _band(o.stage_out_s),
        "turnaround_s": _band(o.turnaround_s),
        "cost": _band(o.cost),
        "energy_kwh": _band(o.energy_kwh),
        "co2_g": _band(o.co2_g),
        "start_at": iso_utc(o.start_at_s),
        "end_at": iso_utc(o.end_at_s),
        "start_at_s": o.start_at_s,
        "end_at_s": o.end_at_s,
        "jobs_ahead": o.jobs_ahead,
        "clock_speed": o.clock_speed,
        "data_age_s": dict(o.data_age_s),
    }


def advice_to_dict(advice: Advice) -> dict[str, Any]:
    return {
        "advice_id": advice.advice_id,
        "created_at": iso_utc(advice.created_s),
        "created_s": advice.created_s,
        "objective": advice.objective,
        "risk": advice.risk,
        "home": advice.home,
        "recommended": advice.recommended,
        "stayed_home": advice.stayed_home,
        "summary": advice.summary,
        "currency": advice.currency,
        "sites": [_site(o) for o in advice.ranked],
    }


def request_to_dict(request: JobRequest) -> dict[str, Any]:
    return asdict(request)
