"""Real logs for the model tests: KTH-SP2 and SDSC-SP2 as shipped in collectors/traces."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from service.cli_models import load_swf

KTH = Path(__file__).resolve().parents[2] / "collectors" / "traces" / "KTH-SP2-1996-2.1-cln.swf.gz"


@pytest.fixture(scope="session")
def kth_history() -> pl.DataFrame:
    """All 28,467 KTH-SP2 jobs the SC'15 strong filter keeps, as job-history rows."""
    return load_swf(KTH, "KTH-SP2").collect()


@pytest.fixture(scope="session")
def kth_features(kth_history: pl.DataFrame) -> pl.DataFrame:
    from models.features import collect_features

    return collect_features(kth_history)


SDSC = KTH.parent / "SDSC-SP2-1998-4.2-cln.swf.gz"


@pytest.fixture(scope="session")
def sdsc_features() -> pl.DataFrame:
    """All 53,999 SDSC-SP2 jobs after the strong filter, with features, in submit order: 7.7 % of
    them ran past their request, which is what the band calibration tests need."""
    from models.features import collect_features

    return collect_features(load_swf(SDSC, "SDSC-SP2").collect()).sort("submit_s", maintain_order=True)
