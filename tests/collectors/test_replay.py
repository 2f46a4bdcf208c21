"""Trace replay on a shipped real log (collectors/traces), driven by a fake clock.

The expected values are computed straight from the log text with plain polars (no collectors.swf),
so the replay is checked against the log itself, not against its own reader.
"""

from __future__ import annotations

import gzip
import re

import polars as pl
import pytest

from collectors import registry
from collectors.base import CollectorError, Recorder
from collectors.replay import EVENT_SCHEMA, ReplayCollector, ReplayConfig
from collectors.traces import TRACES_DIR, shipped_traces
from telemetry.jobs import JOB_SCHEMA

TRACE = "SDSC-SP2-1998-4.2-cln.swf.gz"
# from the header of that log ("; Queue:  0  interactive" ...)
QUEUES = {0: "interactive", 1: "express", 2: "high", 3: "normal", 4: "low", 5: "standby", 6: "No_Class"}
DAY = 86400


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def log() -> pl.DataFrame:
    """Jobs with known submit, wait and run, as unix times, straight from the text."""
    text = gzip.decompress((TRACES_DIR / TRACE).read_bytes()).decode()
    unix_start = int(re.search(r"^; UnixStartTime: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(";")]
    raw = pl.DataFrame({"submit": [int(r[1]) for r in rows], "wait": [int(r[2]) for r in rows],
                        "run": [int(r[3]) for r in rows], "alloc": [int(r[4]) for r in rows],
                        "req": [int(r[7]) for r in rows], "queue": [int(r[14]) for r in rows]})  # fmt: skip
    known = raw.filter((pl.col("submit") >= 0) & (pl.col("wait") >= 0) & (pl.col("run") >= 0))
    return known.select(
        (pl.col("submit") + unix_start).alias("submit"),
        (pl.col("submit") + pl.col("wait") + unix_start).alias("start"),
        (pl.col("submit") + pl.col("wait") + pl.col("run") + unix_start).alias("end"),
        pl.when(pl.col("alloc") > 0).then("alloc").otherwise("req").alias("alloc"),
        pl.when(pl.col("req") > 0).then("req").otherwise("alloc").alias("req"),
        pl.col("queue").replace_strict(QUEUES, default="unknown").alias("partition"),
    )


def state_at(log: pl.DataFrame, t: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(partition, state) → (jobs, cpus) at trace instant t."""
    pending = log.filter((pl.col("submit") <= t) & (t < pl.col("start")))
    running = log.filter((pl.col("start") <= t) & (t < pl.col("end")))
    out = {}
    for state, frame, cpus in (("pending", pending, "req"), ("running", running, "alloc")):
        for partition, n, c in frame.group_by("partition").agg(pl.len(), pl.col(cpus).sum()).iter_rows():
            out[partition, state] = (n, c)
    return out


def replay(clock: FakeClock, **config: object) -> ReplayCollector:
    return ReplayCollector(ReplayConfig(trace=TRACE, **config), clock=clock)


def test_counts_at_an_instant_match_the_log(log: pl.DataFrame) -> None:
    clock = FakeClock()
    collector = replay(clock, start_offset="300d")
    rec = Recorder()
    collector.gather(rec)
    t = int(log["submit"].min()) + 300 * DAY  # type: ignore[arg-type]
    assert rec.get("batch_replay_trace_time_seconds", trace="SDSC-SP2-1998-4.2-cln") == t
    expected = state_at(log, t)
    assert sum(n for n, _ in expected.values()) > 20  # a busy instant, not a trivial one
    for partition in log["partition"].unique():  # partitions no playable job uses are not emitted
        for state in ("pending", "running"):
            n, cpus = expected.get((partition, state), (0, 0))
            assert rec.get("batch_jobs", partition=partition, state=state) == n, (partition, state)
            assert rec.get("batch_jobs_cpus", partition=partition, state=state) == cpus, (partition, state)
    allocated = sum(c for (_, s), (_, c) in expected.items() if s == "running")
    assert rec.get("batch_cpus", state="allocated") == allocated
    assert rec.get("batch_cpus", state="idle") == 128 - allocated  # MaxProcs from the header
    assert rec.get("batch_nodes", state="allocated") == allocated  # 128 nodes, 1 CPU each

    assert collector.unplayable == 59715 - log.height  # jobs with submit, wait or run unknown (-1)

    snapshot = collector.jobs_snapshot()
    assert snapshot.schema == JOB_SCHEMA
    assert dict(snapshot.group_by("state").len().iter_rows()) == {
        "PENDING": sum(n for (_, s), (n, _) in expected.items() if s == "pending"),
        "RUNNING": sum(n for (_, s), (n, _) in expected.items() if s == "running"),
    }
    assert set(snapshot["source"]) == {"replay"} and set(snapshot["observed_s"]) == {t}
    pending = snapshot.filter(pl.col("state") == "PENDING")
    assert (
        pending["start_s"].null_count() == pending.height and pending["expected_start_s"].null_count() == pending.height
    )
    running = snapshot.filter(pl.col("state") == "RUNNING")
    assert running["end_s"].null_count() == running.height
    assert (running["start_s"] <= t).all() and (pending["submit_s"] <= t).all()


def test_speed_maps_wall_seconds_to_trace_hours_and_events_match_the_log(log: pl.DataFrame) -> None:
    clock = FakeClock()
    collector = replay(clock, start_offset="300d")  # default speed: 3600 trace s per wall s
    collector.gather(Recorder())
    t0 = int(log["submit"].min()) + 300 * DAY  # type: ignore[arg-type]
    clock.now += 6  # six trace hours
    rec = Recorder()
    collector.gather(rec)
    t1 = t0 + 6 * 3600
    assert rec.get("batch_replay_trace_time_seconds") == t1
    assert (
        rec.get("batch_jobs", partition="normal", state="running")
        == state_at(log, t1).get(("normal", "running"), (0, 0))[0]
    )

    def happened(column: str) -> pl.DataFrame:
        return log.filter((pl.col(column) > t0) & (pl.col(column) <= t1))

    events = collector.job_events()
    assert events.schema == EVENT_SCHEMA
    counts = dict(events.group_by("event").len().iter_rows())
    assert counts == {"submitted": happened("submit").height, "started": happened("start").height,
                      "finished": happened("end").height}  # fmt: skip
    assert counts["submitted"] > 0 and counts["finished"] > 0
    assert events["event_s"].is_sorted() and (events["event_s"] > t0).all() and (events["event_s"] <= t1).all()
    finished = events.filter(pl.col("event") == "finished")
    assert (finished["end_s"] == finished["event_s"]).all()
    assert set(finished["state"]) <= {"COMPLETED", "FAILED", "CANCELLED"}
    # counters count the same events, by partition
    for partition in log["partition"].unique():
        assert (
            rec.get("batch_jobs_submitted_total", partition=partition)
            == happened("submit").filter(pl.col("partition") == partition).height
        )


def test_clock_going_back_emits_no_events_and_keeps_counters(log: pl.DataFrame) -> None:
    clock = FakeClock()
    collector = replay(clock, start_offset="300d")
    collector.gather(Recorder())
    clock.now += 24
    rec1 = Recorder()
    collector.gather(rec1)
    clock.now -= 12
    rec2 = Recorder()
    collector.gather(rec2)
    assert collector.job_events().height == 0
    assert rec2.get("batch_jobs_submitted_total", partition="normal") == rec1.get(
        "batch_jobs_submitted_total", partition="normal"
    )


def test_loop_restarts_with_shifted_times_and_distinct_ids(log: pl.DataFrame) -> None:
    first, last_end = int(log["submit"].min()), int(log["end"].max())  # type: ignore[arg-type]
    period = last_end - first
    once = replay(FakeClock(), start_offset=100 * DAY)
    once.gather(Recorder())
    again = replay(FakeClock(), start_offset=period + 100 * DAY)
    rec = Recorder()
    again.gather(rec)
    a, b = once.jobs_snapshot(), again.jobs_snapshot()
    assert b.height == a.height > 0
    assert b["job_id"].to_list() == [f"{j}~1" for j in a["job_id"]]
    assert (b["submit_s"] - a["submit_s"] == period).all()
    assert rec.get("batch_replay_trace_time_seconds") == first + period + 100 * DAY

    no_loop = replay(FakeClock(), start_offset=period + 100 * DAY, loop=False)
    rec = Recorder()
    no_loop.gather(rec)
    assert no_loop.jobs_snapshot().height == 0
    assert rec.get("batch_cpus", state="allocated") == 0


def test_events_across_the_loop_boundary_are_all_counted(log: pl.DataFrame) -> None:
    first, last_end = int(log["submit"].min()), int(log["end"].max())  # type: ignore[arg-type]
    period = last_end - first
    clock = FakeClock()
    collector = replay(clock, start_offset=period - DAY, speed=DAY)
    collector.gather(Recorder())
    clock.now += 2  # the last day of pass 0 and the first day of pass 1
    collector.gather(Recorder())
    events = collector.job_events()
    end_of_pass = events.filter(~pl.col("job_id").str.contains("~"))
    next_pass = events.filter(pl.col("job_id").str.ends_with("~1"))
    assert end_of_pass.filter(pl.col("event") == "finished").height == log.filter(pl.col("end") > last_end - DAY).height
    assert next_pass.filter(pl.col("event") == "submitted").height == log.filter(pl.col("submit") <= first + DAY).height


def test_site_size_can_be_overridden_and_site_name_fills_job_rows() -> None:
    collector = replay(FakeClock(), start_offset="300d", site_cpus=256, site_nodes=32, site="sdsc")
    rec = Recorder()
    collector.gather(rec)
    allocated = rec.get("batch_cpus", state="allocated")
    assert rec.get("batch_cpus", state="idle") == 256 - allocated
    assert rec.get("batch_nodes", state="allocated") + rec.get("batch_nodes", state="idle") == 32
    assert set(collector.jobs_snapshot()["site"]) == {"sdsc"}


def test_shipped_traces_and_registration() -> None:
    assert shipped_traces() == ["KTH-SP2-1996-2.1-cln.swf.gz", "SDSC-SP2-1998-4.2-cln.swf.gz"]
    assert registry.get("replay") is ReplayCollector
    kth = ReplayCollector(ReplayConfig(trace="KTH-SP2-1996-2.1-cln.swf.gz", start_offset="30d"), clock=FakeClock())
    assert kth.availability() is None
    rec = Recorder()
    kth.gather(rec)
    assert rec.get("batch_jobs", partition="unknown", state="running") > 0  # KTH has no queue numbers


def test_missing_trace_is_unavailable_and_gather_fails_naming_it(tmp_path: object) -> None:
    collector = ReplayCollector(ReplayConfig(trace="/nonexistent/log.swf"), clock=FakeClock())
    assert "/nonexistent/log.swf" in (collector.availability() or "")
    with pytest.raises(CollectorError, match=r"/nonexistent/log\.swf"):
        collector.gather(Recorder())


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        ReplayConfig(trace=TRACE, speed=0)
    with pytest.raises(ValueError):
        ReplayConfig(trace=TRACE, unknown_key=1)  # type: ignore[call-arg]
    assert ReplayConfig(trace=TRACE, start_offset="2d").start_offset == 2 * DAY


def _play(collector: ReplayCollector, clock: FakeClock, steps: list[float]) -> tuple[list[int], pl.DataFrame]:
    """Gather after each wall step; the trace instants shown and every event emitted."""
    times, events = [], []
    for step in steps:
        clock.now += step
        rec = Recorder()
        collector.gather(rec)
        times.append(int(rec.get("batch_replay_trace_time_seconds")))
        events.append(collector.job_events())
    return times, pl.concat(events)


@pytest.mark.parametrize(
    ("start_days", "speed", "steps"),
    [(300, 3600.0, [0, 5, 5]), (-1, float(DAY), [0, 0.5, 0.25])],  # -1: a day before the log starts over
    ids=["within-a-pass", "across-the-loop"],
)
def test_resume_continues_after_the_last_instant_without_repeating_it_or_its_events(
    log: pl.DataFrame, start_days: int, speed: float, steps: list[float]
) -> None:
    first, period = int(log["submit"].min()), int(log["end"].max()) - int(log["submit"].min())  # type: ignore[arg-type]
    start = start_days * DAY if start_days >= 0 else period - DAY
    before = replay(clock := FakeClock(), start_offset=start, speed=speed)
    shown, events = _play(before, clock, steps)
    # the service stops, stays down for a while, and comes back with the same config
    after = replay(clock := FakeClock(clock.now + 10_000), start_offset=start, speed=speed)
    after.resume(shown[-1])
    shown_after, events_after = _play(after, clock, steps)
    assert shown_after[0] == shown[-1] + 1  # the clock went on from the stored instant
    assert after.jobs_snapshot()["observed_s"].unique().to_list() == [shown_after[-1]]
    times = shown + shown_after
    assert times == sorted(set(times))  # no trace instant shown twice, never back

    both = pl.concat([events, events_after])
    assert both.select("event", "job_id").is_unique().all()  # no event emitted twice
    lo, hi = shown[0], shown_after[-1]
    for event, column in (("submitted", "submit"), ("started", "start"), ("finished", "end")):
        expected = sum(  # straight from the log, pass by pass
            log.filter((pl.col(column) > lo - k * period) & (pl.col(column) <= hi - k * period)).height for k in (0, 1)
        )
        assert both.filter(pl.col("event") == event).height == expected > 0, event
    if start_days < 0:
        assert after.jobs_snapshot()["job_id"].str.ends_with("~1").all()  # the second pass, as before
        assert (events_after["event_s"] > first + period).any()


def test_resume_never_goes_back_and_only_before_the_first_gather() -> None:
    clock = FakeClock()
    ahead = replay(clock, start_offset="300d")
    ahead.resume(1_000)  # older than where the config starts: the config wins
    rec = Recorder()
    ahead.gather(rec)
    started_at = rec.get("batch_replay_trace_time_seconds")
    assert started_at > 1_000 and ahead.job_events().height == 0
    with pytest.raises(RuntimeError, match="before the first gather"):
        ahead.resume(started_at)
    with pytest.raises(ValueError, match="nan"):
        replay(clock).resume(float("nan"))
    assert replay(clock).trace_name == "SDSC-SP2-1998-4.2-cln"  # the label, before the log is read
