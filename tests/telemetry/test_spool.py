"""The spool and the forwarder in front of it: order, bound, restart and crash safety.

The target here is a double that refuses while `down` is set; the real servers behind the
forwarder (VictoriaMetrics, a central ctwin serve across network namespaces) have their own
integration tests. The crash test kills a real child process mid-put."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from telemetry.forwarder import SpooledForwarder
from telemetry.jobs import empty_jobs
from telemetry.schema import Batch, Sample
from telemetry.spool import Spool, SpoolError


def batch(start: int, n: int = 10) -> Batch:
    return Batch.from_samples(Sample("m", float(i), {"k": "v"}, 1_000_000 + i) for i in range(start, start + n))


def values(batches: list[Batch]) -> list[float]:
    return [v for b in batches for v in b.frame["value"].to_list()]


class Target:
    name = "test-server"

    def __init__(self) -> None:
        self.down = False
        self.got: list[Batch] = []
        self.jobs: list[pl.DataFrame] = []
        self.attempts = 0

    def send(self, batch: Batch) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("connection refused")
        self.got.append(batch)

    def send_jobs(self, jobs: pl.DataFrame) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        self.jobs.append(jobs)


def test_records_come_back_in_order_and_survive_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10**8)
    for i in range(5):
        spool.put(batch(i * 10))
    jobs = empty_jobs()
    spool.put(jobs)
    assert spool.pending_records == 6 and spool.pending_samples == 50
    head = spool.head()
    assert head is not None
    spool.ack(head)
    reopened = Spool(tmp_path / "s", max_bytes=10**8)
    assert reopened.pending_records == 5 and reopened.pending_samples == 40
    out = []
    while (record := reopened.head()) is not None:
        out.append(record.load())
        reopened.ack(record)
    assert values([b for b in out if isinstance(b, Batch)]) == [float(v) for v in range(10, 50)]
    assert isinstance(out[-1], pl.DataFrame) and out[-1].columns == jobs.columns
    assert reopened.replayed_samples == 40 and list((tmp_path / "s").iterdir()) == []


def test_ack_out_of_order_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**8)
    spool.put(batch(0))
    second = spool.put(batch(10))
    with pytest.raises(ValueError, match="out of order"):
        spool.ack(second)


def test_a_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    one = Spool(tmp_path / "probe", max_bytes=10**8).put(batch(0, 100)).size_bytes
    spool = Spool(tmp_path / "s", max_bytes=3 * one + one // 2)
    for i in range(6):
        spool.put(batch(i * 100, 100))
    assert spool.pending_records == 3
    assert spool.dropped_samples == 300
    head = spool.head()
    assert head is not None and values([head.load()])[0] == 300.0  # type: ignore[list-item]


def test_an_unreadable_record_is_moved_aside_and_the_rest_replays(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**8)
    bad = spool.put(batch(0))
    spool.put(batch(10))
    bad.path.write_bytes(b"not arrow")
    target = Target()
    forwarder = SpooledForwarder(target, spool)
    assert forwarder.replay() == 2
    assert values(target.got) == [float(v) for v in range(10, 20)]
    assert spool.corrupt_records == 1 and any(p.name.endswith(".corrupt") for p in tmp_path.iterdir())


def test_spool_directory_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpoolError, match="cannot be used"):
        Spool(tmp_path / "f", max_bytes=100)


def test_forwarder_spools_while_the_server_is_away_and_replays_in_order(tmp_path: Path) -> None:
    target = Target()
    forwarder = SpooledForwarder(target, Spool(tmp_path, max_bytes=10**8), retry_min_s=0.01, retry_max_s=0.05).start()
    try:
        forwarder.write(batch(0))
        target.down = True
        for i in range(1, 6):
            forwarder.write(batch(i * 10))
        forwarder.write_jobs(empty_jobs().vstack(empty_jobs()))  # empty: nothing to forward
        assert not forwarder.connected and "unreachable" in (forwarder.problem() or "")
        assert forwarder.spool.pending_samples == 50
        target.down = False
        forwarder.write(batch(60))  # queued behind the spool, not sent ahead of it
        deadline = time.monotonic() + 5
        while (forwarder.spool.head() is not None or not forwarder.connected) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert values(target.got) == [float(v) for v in range(70)]
        assert forwarder.connected and forwarder.problem() is None
        assert forwarder.sent_samples == 10 and forwarder.spool.replayed_samples == 60
        forwarder.write(batch(70))
        assert forwarder.sent_samples == 20  # straight through again
    finally:
        forwarder.close(timeout_s=1)


def test_backoff_bounds_the_attempts_while_down(tmp_path: Path) -> None:
    target = Target()
    target.down = True
    forwarder = SpooledForwarder(target, Spool(tmp_path, max_bytes=10**8), retry_min_s=0.05, retry_max_s=0.2).start()
    try:
        for i in range(50):
            forwarder.write(batch(i))
            time.sleep(0.01)
        # 0.5 s down: one direct try, then replays at ~0, 0.05, 0.15, 0.35 s — not one per write
        assert target.attempts <= 8
    finally:
        forwarder.close(timeout_s=0.1)


def test_what_remains_at_close_is_replayed_by_the_next_process(tmp_path: Path) -> None:
    target = Target()
    target.down = True
    forwarder = SpooledForwarder(target, Spool(tmp_path, max_bytes=10**8)).start()
    forwarder.write(batch(0))
    forwarder.write(batch(10))
    forwarder.close(timeout_s=0.1)
    target.down = False
    again = SpooledForwarder(target, Spool(tmp_path, max_bytes=10**8))
    assert again.replay() == 2
    assert values(target.got) == [float(v) for v in range(20)]


_CHILD = """
import sys
from telemetry.schema import Batch, Sample
from telemetry.spool import Spool
spool = Spool(sys.argv[1], max_bytes=10**9)
i = 0
while True:
    spool.put(Batch.from_samples(Sample("m", float(i * 100 + j), {}, 1 + j) for j in range(100)))
    print(i, flush=True)
    i += 1
"""


def test_every_put_that_returned_survives_a_kill(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    acknowledged = -1
    for line in child.stdout:
        acknowledged = int(line)
        if acknowledged >= 40:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    spool = Spool(tmp_path, max_bytes=10**9)
    got = []
    while (record := spool.head()) is not None:
        got.append(record.load())
        spool.ack(record)
    assert len(got) >= acknowledged + 1
    assert values(got)[: (acknowledged + 1) * 100] == [float(v) for v in range((acknowledged + 1) * 100)]
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
