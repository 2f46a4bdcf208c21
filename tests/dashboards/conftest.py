"""Fixtures for the dashboard tests: a reader with a known continuum behind it."""

from __future__ import annotations

import pytest

from tests.dashboards.twin_double import FakeReader, continuum


@pytest.fixture
def reader() -> FakeReader:
    return continuum()
