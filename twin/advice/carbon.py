"""Grid carbon intensity by country, from the table shipped with the package (codecarbon's, see
data/PROVENANCE.md), for sites whose config names a country but no intensity."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

__all__ = ["WORLD_AVERAGE_G_PER_KWH", "carbon_intensity"]

WORLD_AVERAGE_G_PER_KWH = 475.0
"""codecarbon's world average (IEA Global Energy & CO2 Status Report 2019)."""
_TABLE = Path(__file__).with_name("data") / "carbon_intensity.csv"


@cache
def _table() -> dict[str, tuple[str, float, str]]:
    with _TABLE.open(encoding="utf-8") as fh:
        return {r["iso_code"]: (r["country"], float(r["g_co2e_per_kwh"]), r["year"]) for r in csv.DictReader(fh)}


def carbon_intensity(configured: float | None, country: str | None) -> tuple[float, str]:
    """(gCO2e per kWh, where it comes from): the configured figure, else the country's, else the
    world average."""
    if configured is not None:
        return configured, "configured"
    if country is not None:
        known = _table().get(country.upper())
        if known is not None:
            name, value, year = known
            return value, f"{name} {year} grid average (codecarbon)"
        return WORLD_AVERAGE_G_PER_KWH, f"world average (no figure for {country})"
    return WORLD_AVERAGE_G_PER_KWH, "world average (codecarbon)"
