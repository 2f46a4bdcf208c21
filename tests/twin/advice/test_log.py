"""The advice log keeps every answer until the store takes it, within a bound, and says once
when writing fails and once when it works again."""

from __future__ import annotations

import logging
import time

import polars as pl
import pytest

from twin.advice.log import AdviceLog
from twin.advice.outcome import Advice
from twin.advice.request import JobRequest


class FlakyStore:
    """Refuses appends while `full` (a disk that filled), keeps what it took."""

    def __init__(self) -> None:
        self.full = True
        self.rows: list[pl.DataFrame] = []

    def append_advice(self, rows: pl.DataFrame) -> int:
        if self.full:
            raise OSError(28, "No space left on device")
        self.rows.append(rows)
        return rows.height

    def advice(self, *args: object, **kwargs: object) -> pl.DataFrame:
        from telemetry.advice import empty_advice

        return pl.concat(self.rows) if self.rows else empty_advice()


def _advice(i: int) -> Advice:
    return Advice(f"adv-{i:011x}-00000000", 1.0 * i, "turnaround", "p50", "home", "home", (), "run at home")


def test_answers_wait_within_a_bound_and_the_failure_is_logged_once_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    log = AdviceLog(store, flush_every_s=0.02, max_unwritten=5)  # type: ignore[arg-type]
    log.start()
    with caplog.at_level(logging.INFO, logger="twin.advice.log"):
        for i in range(8):
            log.record(_advice(i), JobRequest(cores=1, walltime_s=60))
        time.sleep(0.3)  # several failed flushes
        store.full = False
        time.sleep(0.3)
        log.close()
    written = pl.concat(store.rows)["advice_id"].to_list()
    assert written == [_advice(i).advice_id for i in range(3, 8)] and log.dropped == 3  # the oldest went
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "No space left" in warnings[0].getMessage()
    assert any("written again" in r.getMessage() and "3 answers dropped" in r.getMessage() for r in caplog.records)


def test_outcomes_pair_each_joined_answers_prediction_with_what_happened(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The models page's source: per joined answer, runtime, wait and turnaround predicted vs
    realised, joined at or after `since_s`; the same from memory and from the DuckDB store."""
    from telemetry.stores.duckdb_store import DuckDBStore
    from tests.dashboards.model_data import Clock, joined_log

    memory = joined_log(Clock(1e9), [(1e9 + 600 * i, 100.0, 1000.0, 150.0, 1200.0 + i) for i in range(3)])
    rows = memory.outcomes()
    assert rows.height == 9 and set(rows["kind"]) == {"runtime", "wait", "advice"}
    runs = rows.filter(pl.col("kind") == "runtime")
    assert runs["predicted_s"].to_list() == [1000.0] * 3 and runs["realised_s"].to_list() == [1200.0, 1201.0, 1202.0]
    assert memory.outcomes(1e9 + 600).filter(pl.col("kind") == "runtime")["realised_s"].to_list() == [1201.0, 1202.0]
    store = DuckDBStore(tmp_path / "s.duckdb")
    stored = AdviceLog(store, Clock(1e9))
    for row in memory._memory.values():  # the same rows, through the store
        store.append_advice(pl.DataFrame([row], schema=stored_schema()))
    assert stored.outcomes(1e9 + 600).equals(memory.outcomes(1e9 + 600))
    store.close()


def stored_schema() -> dict[str, pl.DataType]:
    from telemetry.advice import ADVICE_SCHEMA

    return ADVICE_SCHEMA
