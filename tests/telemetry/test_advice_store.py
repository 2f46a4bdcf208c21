"""The advice log's table in the DuckDB store across versions of its schema."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from telemetry.advice import ADVICE_SCHEMA
from telemetry.stores.duckdb_store import DuckDBStore


def test_an_advice_log_written_before_the_hook_column_gains_it(tmp_path: Path) -> None:
    """A data dir from before scheduler hooks: its answers read back as 'api', new ones keep theirs."""
    old = {k: v for k, v in ADVICE_SCHEMA.items() if k != "hook"}
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    columns = ", ".join(f'"{k}" {"DOUBLE" if isinstance(v, pl.Float64) else "VARCHAR"}' for k, v in old.items())
    con.execute(f"CREATE TABLE advice ({columns}, PRIMARY KEY (advice_id))")
    con.execute("INSERT INTO advice (advice_id, created_s, ranked) VALUES ('a-old', 1.0, '[]')")
    con.close()
    store = DuckDBStore(tmp_path / "old.duckdb")
    try:
        store.append_advice(pl.DataFrame({"advice_id": ["a-new"], "created_s": [2.0], "hook": ["sbatch"]}))
        rows = store.advice()
    finally:
        store.close()
    assert rows.columns == list(ADVICE_SCHEMA)
    assert dict(zip(rows["advice_id"], rows["hook"], strict=True)) == {"a-old": "api", "a-new": "sbatch"}
