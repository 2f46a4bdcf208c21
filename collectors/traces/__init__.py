"""Workload traces shipped with ctwin (see PROVENANCE.md), so a replayed HPC site works out of the box.

A package (not a plain folder) so that setuptools' package-data ships the .gz files in the wheel.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TRACES_DIR", "shipped_traces"]

TRACES_DIR = Path(__file__).resolve().parent


def shipped_traces() -> list[str]:
    """File names of the shipped SWF logs."""
    return sorted(p.name for p in TRACES_DIR.glob("*.swf.gz"))
