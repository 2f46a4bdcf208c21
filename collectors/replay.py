"""Replay an SWF workload log as if it were a live HPC site.

Why: a new user with no cluster should still see a living continuum, and models need batch sites
that behave like real ones. The replay is faithful, not a simulation: every job waits, starts and
ends exactly when the log says (start = submit + wait, end = start + run), so the state at any
instant is a pure function of the log and the clock. Wall time maps to trace time as

    trace_offset = start_offset + (wall - wall_at_first_gather) * speed

counted from the log's first submit; with `loop` the log starts over after its last job ends
(every job of one pass has ended by then, so passes never overlap).

A restarted service must not play the same hours again (the history would hold them twice and the
job rows would go back to pending), so before the first gather the composition hands the last
trace instant it stored to `resume(trace_time_s)`: the virtual clock then continues one trace
second after it, across loop passes too (the instant carries the pass), and the first gather emits
only the events after it. The clock stands still while the service is down.

Each gather emits the batch-site families of telemetry.catalog.batch, the same ones the Slurm
collector emits, plus `batch_replay_trace_time_seconds{trace}`, which marks the site as a replay.
The replay flag is that series (and `source="replay"` in job rows), not a label on every family:
the families keep exactly the Slurm shape, and the site and host labels come from the pipeline.

Job state, like the Slurm collector's: `jobs_snapshot()` gives the pending and running jobs at the
last gather and `job_events()` the jobs submitted, started and finished since the gather before
(finished rows are the final job-history records). Both use trace time: unix seconds of the
original log (observed_s = the instant shown), shifted by one log period per completed pass, so
waits and runtimes keep their real length; pass n > 0 adds `~n` to job ids so rows of different
passes do not replace each other in the store. Pending rows carry no expected start: the replay
knows the recorded start, and handing it out would leak the future to models. Jobs whose submit,
wait or run time the log does not give cannot be placed and are left out (`unplayable`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import polars as pl
from pydantic import BeforeValidator, Field

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.registry import register
from collectors.swf import SwfLog, SwfProblem, read_swf, strong_filter, to_job_history
from collectors.traces import TRACES_DIR
from telemetry.catalog import batch
from telemetry.jobs import JOB_SCHEMA, empty_jobs
from telemetry.schema import parse_duration

__all__ = ["EVENT_SCHEMA", "ReplayCollector", "ReplayConfig"]

log = logging.getLogger(__name__)

EVENT_SCHEMA: dict[str, pl.DataType] = {"event": pl.String(), "event_s": pl.Int64(), **JOB_SCHEMA}
"""Job events: "submitted", "started" or "finished", when (trace time), and the job as it was then."""
_MAX_PASSES_PER_GATHER = 2  # a clock jump over many log periods counts only the events of the last two


def _offset(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


class ReplayConfig(CollectorConfig):
    trace: str
    """Path of an SWF log (.swf or .swf.gz), or the file name of a trace shipped in collectors/traces."""
    speed: float = Field(3600.0, gt=0)
    """Trace seconds per wall second (3600: one trace hour per second)."""
    start_offset: Annotated[float, BeforeValidator(_offset), Field(ge=0)] = 0.0
    """Where the replay begins, in trace seconds after the first submit ("7d" works too)."""
    loop: bool = True
    site_cpus: int | None = Field(None, gt=0)
    """Defaults to the header's MaxProcs."""
    site_nodes: int | None = Field(None, gt=0)
    """Defaults to the header's MaxNodes; node counts are not emitted when neither is known."""
    site: str | None = None
    """Written in the `site` column of job rows; the pipeline may fill it instead."""
    clean: bool = False
    """Apply the SC'15 strong filter first (it caps runtimes, so the replay is no longer faithful)."""


def resolve_trace(trace: str) -> Path:
    path = Path(trace).expanduser()
    if not path.exists() and (TRACES_DIR / trace).is_file():
        return TRACES_DIR / trace
    return path


def trace_name(path: Path) -> str:
    """The `trace` label of a log: its file name without .swf/.swf.gz."""
    return path.name.removesuffix(".gz").removesuffix(".swf")


class _Trace:
    """The log prepared once: job rows with times relative to the first submit, and site sizes."""

    def __init__(self, swf: SwfLog, config: ReplayConfig) -> None:
        if config.clean:
            swf = strong_filter(swf)
        self.name = trace_name(swf.path)
        rows = to_job_history(swf, config.site or "").collect()
        if config.site is None:
            rows = rows.with_columns(pl.lit(None, pl.String).alias("site"))
        playable = rows.filter(pl.col("submit_s").is_not_null() & pl.col("end_s").is_not_null())
        self.unplayable = rows.height - playable.height
        if playable.height == 0:
            raise CollectorError(f"{swf.path}: no job has known submit, wait and run times; nothing to replay")
        self.t0 = int(playable["submit_s"].min())  # type: ignore[arg-type]
        self.period = max(1, int(playable["end_s"].max()) - self.t0)  # type: ignore[arg-type]
        cpus = config.site_cpus or swf.header.max_procs
        if cpus is None:
            raise CollectorError(f"{swf.path}: the header has no MaxProcs; set site_cpus in the replay config")
        self.cpus: int = cpus
        self.nodes = config.site_nodes or swf.header.max_nodes
        per_node = max(1, self.cpus // self.nodes) if self.nodes else 1
        self.jobs = playable.with_columns(
            (pl.col("submit_s") - self.t0).alias("_submit"),
            (pl.col("start_s") - self.t0).alias("_start"),
            (pl.col("end_s") - self.t0).alias("_end"),
            pl.coalesce("req_cores", "alloc_cores", pl.lit(0)).alias("_req"),
            pl.coalesce("alloc_cores", "req_cores", pl.lit(0)).alias("_alloc"),
            pl.col("partition").fill_null("unknown").alias("_partition"),
            pl.col("state").str.to_lowercase().alias("_final"),
        ).with_columns(((pl.col("_alloc") + per_node - 1) // per_node).alias("_nodes"))
        self.partitions: list[str] = sorted(self.jobs["_partition"].unique().to_list())
        self.final_states: list[str] = sorted(self.jobs["_final"].unique().to_list())


@register
class ReplayCollector(Collector):
    name = "replay"
    config_model = ReplayConfig
    config: ReplayConfig

    def __init__(self, config: ReplayConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self.clock = clock
        self.problems: list[SwfProblem] = []
        """Lines of the trace skipped as malformed (read once, at the first gather)."""
        self._trace: _Trace | None = None
        self._wall0: float | None = None
        self._last_offset: float | None = None
        self._resume_s: int | None = None
        self._start = self.config.start_offset
        self._snapshot = empty_jobs()
        self._events = pl.DataFrame(schema=EVENT_SCHEMA)
        self._submitted: Counter[str] = Counter()
        self._started: Counter[str] = Counter()
        self._finished: Counter[tuple[str, str]] = Counter()

    def availability(self) -> str | None:
        path = resolve_trace(self.config.trace)
        return None if path.is_file() else f"trace {path} not found"

    @property
    def trace_name(self) -> str:
        """The `trace` label of batch_replay_trace_time_seconds (known before the log is read)."""
        return trace_name(resolve_trace(self.config.trace))

    def resume(self, trace_time_s: float) -> None:
        """Continue after `trace_time_s`, the last batch_replay_trace_time_seconds a previous run of
        this replay emitted: the first gather shows the trace second after it, and emits only the
        events after it (those up to it were emitted then). A configured `start_offset` beyond it
        still wins: the replay only ever moves forward. Call before the first gather."""
        if self._wall0 is not None:
            raise RuntimeError("resume() must be called before the first gather")
        if not math.isfinite(trace_time_s):
            raise ValueError(f"cannot resume at trace time {trace_time_s!r}")
        self._resume_s = math.floor(trace_time_s)

    def jobs_snapshot(self) -> pl.DataFrame:
        """Pending and running jobs at the last gather (JOB_SCHEMA, source "replay")."""
        return self._snapshot

    def job_events(self) -> pl.DataFrame:
        """Jobs submitted, started and finished between the two last gathers (EVENT_SCHEMA)."""
        return self._events

    def job_updates(self) -> pl.DataFrame:
        """The live queue plus the final records of jobs that finished since the gather before."""
        finished = self._events.filter(pl.col("event") == "finished").drop("event", "event_s")
        if finished.is_empty():
            return self._snapshot
        done = set(finished["job_id"].to_list())
        return pl.concat([self._snapshot.filter(~pl.col("job_id").is_in(done)), finished])

    @property
    def unplayable(self) -> int:
        """Jobs left out because the log does not give their submit, wait or run time."""
        return self._trace.unplayable if self._trace else 0

    def _offset_now(self, trace: _Trace) -> float:
        """Virtual trace seconds since the first submit (keeps growing across passes)."""
        now = self.clock()
        if self._wall0 is None:
            self._wall0 = now
            self._start = self.config.start_offset
            if self._resume_s is not None and self._resume_s - trace.t0 + 1 >= self._start:
                # the emitted instant was t0 + floor(offset): every event up to it was emitted
                self._last_offset = float(self._resume_s - trace.t0)
                self._start = self._last_offset + 1
        return self._start + (now - self._wall0) * self.config.speed

    def gather(self, emit: Emit) -> None:
        trace = self._load()
        offset = self._offset_now(trace)
        passes, within = divmod(offset, trace.period) if self.config.loop else (0.0, offset)
        k = int(passes)
        jobs = trace.jobs
        pending = jobs.filter((pl.col("_submit") <= within) & (within < pl.col("_start")))
        running = jobs.filter((pl.col("_start") <= within) & (within < pl.col("_end")))
        now_s = trace.t0 + k * trace.period + int(within)
        self._snapshot = pl.concat([_as_pending(pending, trace, k), _as_running(running, trace, k)]).with_columns(
            pl.lit(now_s, pl.Int64).alias("observed_s")
        )
        if self._last_offset is not None and offset > self._last_offset:
            self._events = self._collect_events(trace, self._last_offset, offset)
        else:
            self._events = pl.DataFrame(schema=EVENT_SCHEMA)
        self._last_offset = offset
        self._emit(emit, trace, pending, running, now_s)

    def _load(self) -> _Trace:
        if self._trace is None:
            path = resolve_trace(self.config.trace)
            swf = read_swf(path)
            if swf.skipped:
                first = swf.problems[0]
                log.warning(
                    "%s: skipped %d malformed lines (first: line %d, %s)", path, swf.skipped, first.line, first.message
                )
            self.problems = list(swf.problems)
            self._trace = _Trace(swf, self.config)
        return self._trace

    def _collect_events(self, trace: _Trace, lo: float, hi: float) -> pl.DataFrame:
        """Events with lo < virtual time <= hi, pass by pass (a gather can straddle a restart)."""
        passes = [0]
        if self.config.loop:
            last = int(hi // trace.period)
            passes = list(range(max(int(lo // trace.period), last - _MAX_PASSES_PER_GATHER + 1), last + 1))
        frames: list[pl.DataFrame] = []
        for k in passes:
            a, b = lo - k * trace.period, hi - k * trace.period
            submitted, started, finished = (
                trace.jobs.filter((pl.col(c) > a) & (pl.col(c) <= b)) for c in ("_submit", "_start", "_end")
            )
            self._submitted.update(submitted["_partition"].to_list())
            self._started.update(started["_partition"].to_list())
            self._finished.update(zip(finished["_partition"].to_list(), finished["_final"].to_list(), strict=True))
            frames += [
                _event("submitted", submitted["_submit"], _as_pending(submitted, trace, k), trace, k),
                _event("started", started["_start"], _as_running(started, trace, k), trace, k),
                _event("finished", finished["_end"], _shifted(finished, trace, k), trace, k),
            ]
        return pl.concat(frames).sort("event_s", maintain_order=True)

    def _emit(self, emit: Emit, trace: _Trace, pending: pl.DataFrame, running: pl.DataFrame, now_s: int) -> None:
        allocated = int(running["_alloc"].sum())
        emit(batch.CPUS, allocated, {"state": "allocated"})
        emit(batch.CPUS, max(0, trace.cpus - allocated), {"state": "idle"})
        if trace.nodes:
            busy_nodes = min(trace.nodes, int(running["_nodes"].sum()))
            emit(batch.NODES, busy_nodes, {"state": "allocated"})
            emit(batch.NODES, trace.nodes - busy_nodes, {"state": "idle"})
        for state, frame, cpus in (("pending", pending, "_req"), ("running", running, "_alloc")):
            stats = frame.group_by("_partition").agg(pl.len(), pl.col(cpus).sum())
            by_partition = {p: (n, c) for p, n, c in stats.iter_rows()}
            for partition in trace.partitions:
                count, total = by_partition.get(partition, (0, 0))
                emit(batch.JOBS, count, {"partition": partition, "state": state})
                emit(batch.JOBS_CPUS, total, {"partition": partition, "state": state})
        for partition in trace.partitions:
            emit(batch.SUBMITTED, self._submitted[partition], {"partition": partition})
            emit(batch.STARTED, self._started[partition], {"partition": partition})
            for final in trace.final_states:
                emit(batch.FINISHED, self._finished[partition, final], {"partition": partition, "state": final})
        emit(batch.REPLAY_TIME, now_s, {"trace": trace.name})


def _shifted(frame: pl.DataFrame, trace: _Trace, k: int) -> pl.DataFrame:
    """Job rows of pass k (JOB_SCHEMA): times moved by k periods, ids suffixed so passes stay distinct."""
    rows = frame.with_columns(pl.lit("replay").alias("source"))
    if k:
        rows = rows.with_columns(
            (pl.col("job_id") + f"~{k}").alias("job_id"),
            *(pl.col(c) + k * trace.period for c in ("submit_s", "start_s", "end_s")),
        )
    return rows.select(list(JOB_SCHEMA))


def _as_pending(frame: pl.DataFrame, trace: _Trace, k: int) -> pl.DataFrame:
    unknown = pl.lit(None, pl.Int64)
    return _shifted(frame, trace, k).with_columns(
        pl.lit("PENDING").alias("state"),
        unknown.alias("start_s"),
        unknown.alias("end_s"),
        unknown.alias("alloc_cores"),
    )


def _as_running(frame: pl.DataFrame, trace: _Trace, k: int) -> pl.DataFrame:
    return _shifted(frame.with_columns(pl.col("_alloc").alias("alloc_cores")), trace, k).with_columns(
        pl.lit("RUNNING").alias("state"), pl.lit(None, pl.Int64).alias("end_s")
    )


def _event(kind: str, at: pl.Series, rows: pl.DataFrame, trace: _Trace, k: int) -> pl.DataFrame:
    """Rows as of the event, observed when it happened (trace time of pass k)."""
    when = (at + trace.t0 + k * trace.period).alias("event_s")
    return rows.with_columns(observed_s=when).select(pl.lit(kind).alias("event"), when, pl.all())
