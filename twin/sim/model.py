"""Jobs, partitions and sites as the simulator sees them, and the admission check that turns raw job
records into jobs the engine can trust.

Resources are counted, not placed: a partition is either processor-granular (a job takes `procs`
processors; every SWF log is, with MaxProcs from its header) or node-granular (the partition has
`nodes` × `cores_per_node` and a job takes whole nodes: its `nodes`, or ceil(procs / cores_per_node)
when it gives only processors). The engine works in these "units" (processors or nodes) and never
models which node a job lands on, so there is no fragmentation: the counted-resource model that
predictsim's pyss (the SC'15 simulator) uses for the Parallel Workloads Archive logs.

Admission (`Admission.admit`) applies the documented, counted corrections and raises on the rest:

- run time > requested time: the job is killed at its requested time (run := req), counted as
  `killed_at_request`; every policy here kills at the limit, as batch schedulers do;
- run time missing: it runs to its requested time (run := req), counted as `runtime_from_request`;
- run time <= 0: it holds its resources for one second (run := 1), counted as `runtime_raised`;
- requested time missing or <= 0: the run time stands in for it (req := run), counted as
  `request_from_runtime`; with neither known the job is refused (SimInputError);
- more processors (or nodes) than the partition has: SimInputError, or with `oversize="drop"` the
  job is left out of the simulation and counted as `dropped_oversize` (a forecast reports it with a
  null start);
- procs < 1, or a partition the site does not have: SimInputError / UnknownPartitionError.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import polars as pl

from twin.sim.errors import SimInputError, UnknownPartitionError

if TYPE_CHECKING:
    from twin.sim.predictors import History

__all__ = [
    "Admission",
    "Corrections",
    "Job",
    "Oversize",
    "Partition",
    "RunningJob",
    "Site",
    "SiteState",
    "jobs_from_frame",
    "jobs_from_history",
]

Oversize = Literal["error", "drop"]


@dataclass(frozen=True, slots=True)
class Job:
    """One batch job. Times are whole seconds (unix or log-relative, as long as they agree)."""

    job_id: str
    submit_s: int
    run_s: int | None
    """Actual run time; None when unknown (a pending job in a forecast)."""
    req_s: int | None
    """Requested time (the wall-clock limit, the user's estimate)."""
    procs: int
    nodes: int | None = None
    user: str | None = None
    partition: str | None = None
    """None: the site's first partition."""


@dataclass(frozen=True, slots=True)
class Partition:
    """Processor-granular (`processors` only) or node-granular (`nodes` × `cores_per_node`)."""

    name: str
    processors: int
    nodes: int | None = None
    cores_per_node: int | None = None

    def __post_init__(self) -> None:
        if self.processors < 1:
            raise SimInputError(f"partition {self.name!r}: needs at least one processor, got {self.processors}")
        if (self.nodes is None) != (self.cores_per_node is None):
            raise SimInputError(f"partition {self.name!r}: give both nodes and cores_per_node, or neither")
        nodes, cores = self.nodes, self.cores_per_node
        if nodes is not None and cores is not None and (nodes < 1 or cores < 1 or nodes * cores != self.processors):
            raise SimInputError(
                f"partition {self.name!r}: {nodes} nodes × {cores} cores != {self.processors} processors"
            )

    @classmethod
    def of_nodes(cls, name: str, nodes: int, cores_per_node: int) -> Partition:
        return cls(name, nodes * cores_per_node, nodes, cores_per_node)

    @property
    def node_granular(self) -> bool:
        return self.cores_per_node is not None

    @property
    def capacity(self) -> int:
        """Units the engine counts: nodes when node-granular, else processors."""
        return self.nodes if self.nodes is not None else self.processors

    def units(self, job: Job) -> int:
        """What `job` takes here: whole nodes on a node-granular partition, else processors."""
        if self.cores_per_node is None:
            return job.procs
        by_procs = -(-job.procs // self.cores_per_node)
        return max(job.nodes or 0, by_procs)

    def cores(self, units: int) -> int:
        """Processors held by `units` (a node-granular job holds its nodes' every core)."""
        return units * self.cores_per_node if self.cores_per_node is not None else units


@dataclass(frozen=True)
class Site:
    name: str
    partitions: tuple[Partition, ...]

    def __post_init__(self) -> None:
        if not self.partitions:
            raise SimInputError(f"site {self.name!r}: needs at least one partition")
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise SimInputError(f"site {self.name!r}: duplicate partition names {names}")

    @classmethod
    def single(cls, name: str, processors: int, partition: str = "batch") -> Site:
        """One processor-granular partition: how every SWF log is simulated (MaxProcs processors)."""
        return cls(name, (Partition(partition, processors),))

    def index(self, partition: str | None) -> int:
        if partition is None:
            return 0
        for i, p in enumerate(self.partitions):
            if p.name == partition:
                return i
        known = ", ".join(p.name for p in self.partitions)
        raise UnknownPartitionError(f"site {self.name!r} has no partition {partition!r} (known: {known})")


@dataclass(frozen=True, slots=True)
class RunningJob:
    job: Job
    start_s: int


@dataclass(frozen=True)
class SiteState:
    """A site at one instant, as a forecast starts from it (live from Slurm, or from a replay).

    `pending` is in the scheduler's priority order (only the relative order within a partition
    matters); the partitions give the resources in service (a down node is not in them)."""

    now_s: int
    site: Site
    running: tuple[RunningJob, ...] = ()
    pending: tuple[Job, ...] = ()
    history: History | None = None
    """Recent completions for history-based predictors (None: none known)."""


@dataclass
class Corrections:
    """How many jobs admission changed or left out, by reason (see the module docstring)."""

    killed_at_request: int = 0
    runtime_from_request: int = 0
    runtime_raised: int = 0
    request_from_runtime: int = 0
    dropped_oversize: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    """The first 100 dropped job ids, for the message a caller shows."""

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


@dataclass
class Admission:
    """Checks jobs against a site, applies the counted corrections, raises on the rest."""

    site: Site
    oversize: Oversize = "error"
    runtime_known: bool = True
    """False for forecasts: a pending job's run time is unknown by nature and is not corrected."""
    counts: Corrections = field(default_factory=Corrections)

    def admit(self, job: Job) -> tuple[Job, int, int] | None:
        """(the corrected job, its partition index, its units), or None when dropped."""
        part_index = self.site.index(job.partition)
        part = self.site.partitions[part_index]
        if job.procs is None or job.procs < 1:
            raise SimInputError(f"job {job.job_id}: needs at least one processor, got {job.procs}")
        units = part.units(job)
        if units > part.capacity:
            what = "nodes" if part.node_granular else "processors"
            if self.oversize == "drop":
                self.counts.dropped_oversize += 1
                if len(self.counts.dropped_ids) < 100:
                    self.counts.dropped_ids.append(job.job_id)
                return None
            raise SimInputError(
                f"job {job.job_id}: needs {units} {what}, partition {part.name!r} has {part.capacity}"
                " (pass oversize='drop' to leave such jobs out, counted)"
            )
        run, req = job.run_s, job.req_s
        if req is not None and req <= 0:
            req = None
        if run is None:
            if self.runtime_known:
                if req is None:
                    raise SimInputError(f"job {job.job_id}: has neither a run time nor a requested time")
                run = req
                self.counts.runtime_from_request += 1
        elif run <= 0:
            run = 1
            self.counts.runtime_raised += 1
        if req is None:
            if run is None:
                raise SimInputError(f"job {job.job_id}: has neither a run time nor a requested time")
            req = run
            self.counts.request_from_runtime += 1
        if run is not None and run > req:
            run = req
            self.counts.killed_at_request += 1
        if run != job.run_s or req != job.req_s:
            job = replace(job, run_s=run, req_s=req)
        return job, part_index, units


def jobs_from_frame(frame: pl.DataFrame | pl.LazyFrame) -> list[Job]:
    """Jobs from a frame with the simulator's column names: job_id, submit_s, run_s, req_s, procs,
    and optionally nodes, user, partition (any integer or string types; nulls where unknown)."""
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    required = ("job_id", "submit_s", "run_s", "req_s", "procs")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SimInputError(f"job frame lacks columns {missing} (has {df.columns})")
    if df["submit_s"].null_count():
        raise SimInputError(f"job frame: {df['submit_s'].null_count()} jobs have no submit time")
    cols = [
        df["job_id"].cast(pl.String),
        df["submit_s"].cast(pl.Int64),
        df["run_s"].cast(pl.Int64),
        df["req_s"].cast(pl.Int64),
        df["procs"].cast(pl.Int64),
        df["nodes"].cast(pl.Int64) if "nodes" in df.columns else pl.Series([None] * df.height, dtype=pl.Int64),
        df["user"].cast(pl.String) if "user" in df.columns else pl.Series([None] * df.height, dtype=pl.String),
        df["partition"].cast(pl.String)
        if "partition" in df.columns
        else pl.Series([None] * df.height, dtype=pl.String),
    ]
    return [Job(*row) for row in zip(*(c.to_list() for c in cols), strict=True)]


def jobs_from_history(frame: pl.DataFrame | pl.LazyFrame) -> list[Job]:
    """Jobs from job-history rows (telemetry.jobs.JOB_SCHEMA): run = end - start, req = the
    requested walltime, procs = allocated (else requested) cores, nodes likewise."""
    lf = frame.lazy()
    mapped = lf.select(
        pl.col("job_id"),
        pl.col("submit_s"),
        (pl.col("end_s") - pl.col("start_s")).alias("run_s"),
        pl.col("req_walltime_s").alias("req_s"),
        pl.coalesce("alloc_cores", "req_cores").alias("procs"),
        pl.coalesce("alloc_nodes", "req_nodes").alias("nodes"),
        pl.col("user"),
        pl.col("partition"),
    )
    return jobs_from_frame(mapped)
