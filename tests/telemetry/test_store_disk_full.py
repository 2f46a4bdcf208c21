"""The DuckDB store on a real full disk (a small tmpfs): a refused append leaves everything
acknowledged in place, and the store takes appends again once there is room, by itself.

Two ways a full disk hits DuckDB, both here: the write-ahead log cannot grow (the transaction is
rolled back, the next append may succeed), and a checkpoint cannot write the database file
(DuckDB invalidates the database for this process: every statement fails until the file is opened
again, which the store now does at its next use)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from telemetry.schema import Batch
from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore
from tests.conftest import fill_disk, small_tmpfs

N = 50_000


def _batch(i: int) -> Batch:
    """50,000 samples of 50 series with random values: they do not compress, so the WAL grows fast."""
    rng = np.random.default_rng(i)
    return Batch(
        pl.DataFrame(
            {
                "metric": ["m"] * N,
                "labels": [f'{{"k":"{j % 50}"}}' for j in range(N)],
                "ts_ns": np.arange(i * N, (i + 1) * N, dtype=np.int64),
                "value": rng.random(N),
            }
        )
    )


def _count_on_reopen(path: Path) -> int:
    store = DuckDBStore(path, read_only=True)
    try:
        return store.count()
    finally:
        store.close()


def test_a_failed_checkpoint_invalidates_duckdb_and_the_store_reopens_when_there_is_room(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "40m") as disk:
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * (16 << 20))
        store = DuckDBStore(disk / "s.duckdb", memory_limit="256MB")
        acked, refused = 0, None
        for i in range(100):  # the WAL passes 16 MB: DuckDB checkpoints into a file with no room
            try:
                acked += store.append(_batch(i))
            except duckdb.Error as exc:
                refused = exc
                break
        assert isinstance(refused, duckdb.FatalException), refused
        assert "No space left on device" in str(refused)
        with pytest.raises(duckdb.Error):  # still full: refused again (reopened, then refused), no crash
            for j in range(100, 110):
                store.append(_batch(j))
        ballast.unlink()  # room again
        assert store.append(_batch(1000)) == N  # no restart: the store reopened the file
        assert store.reopens >= 1
        assert store.count() == acked + N  # everything acknowledged is there, nothing refused is
        assert store.count(Selection(start_ns=1000 * N)) == N
        store.close()
        assert _count_on_reopen(disk / "s.duckdb") == acked + N


def test_a_wal_that_cannot_grow_refuses_the_append_and_the_next_one_succeeds_when_there_is_room(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk", "16m") as disk:
        store = DuckDBStore(disk / "s.duckdb", memory_limit="256MB")
        acked = store.append(_batch(0))
        ballast = disk / "ballast"
        fill_disk(ballast)
        with pytest.raises(duckdb.Error, match="No space left on device"):
            store.append(_batch(1))
        assert store.count() == acked  # reads go on; the refused batch is not there
        ballast.unlink()
        assert store.append(_batch(2)) == N
        assert store.reopens == 0  # not fatal to DuckDB: no reopen needed
        assert store.count() == acked + N
        store.close()
        assert _count_on_reopen(disk / "s.duckdb") == acked + N
