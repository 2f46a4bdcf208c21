"""An acknowledged batch survives kill -9: a real child process is SIGKILLed mid-ingest 20 times."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore
from tests.conftest import ROOT

KILLS = 20


@pytest.mark.slow
def test_no_acknowledged_batch_is_lost_over_20_kills(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    rng = random.Random(20261121)
    acked: set[int] = set()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.telemetry.ingest_child", str(db)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY", child.stderr.read() if child.stderr else ""
        want = rng.randint(1, 15)
        got = 0
        while got < want:
            line = child.stdout.readline()
            assert line.startswith("ACK "), line
            acked.add(int(line.split()[1]))
            got += 1
        time.sleep(rng.uniform(0, 0.03))  # land the kill somewhere inside the next append
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate()
        acked.update(int(x.split()[1]) for x in rest.splitlines() if x.startswith("ACK "))
        assert child.returncode == -signal.SIGKILL

    store = DuckDBStore(db, memory_limit="256MB")
    try:
        stored = set(int(v) for v in store.query(Selection(metrics=("crash_seq",)))["value"].to_list())
        lost = acked - stored
        assert not lost, f"{len(lost)} acknowledged batches lost: {sorted(lost)[:10]}"
        # and no torn batch: every stored batch has its full payload
        assert store.count(Selection(metrics=("crash_payload",))) == len(stored) * 2000
    finally:
        store.close()
    assert len(acked) >= KILLS
