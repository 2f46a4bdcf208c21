"""The job-history schema shared by every job source (Slurm, SWF traces, replay, Kubernetes pods).

Times are unix seconds (Int64, null when unknown): batch schedulers work in whole seconds and the
simulator and models need integer arithmetic. Users and groups are kept as the source gives them
in memory; exports pseudonymise them (see telemetry.export). Container-configuration fields are
null for jobs that did not run in a container.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

__all__ = [
    "JOB_JOIN",
    "JOB_SCHEMA",
    "JOB_STATES",
    "LIFECYCLE_STAGE",
    "JobState",
    "conform_jobs",
    "empty_jobs",
    "lifecycle_stage",
]

JobState = Literal[
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "SUSPENDED",
    "UNKNOWN",
]
JOB_STATES: tuple[str, ...] = JobState.__args__  # type: ignore[attr-defined]

LIFECYCLE_STAGE: dict[str, int] = {
    "PENDING": 0,
    "RUNNING": 1,
    "SUSPENDED": 1,  # a suspended job has started; it may run again, never wait again
    **{s: 2 for s in JOB_STATES if s not in ("PENDING", "RUNNING", "SUSPENDED", "UNKNOWN")},
}
"""Where a state sits in a job's lifecycle (waiting 0, started 1, ended 2). A job only moves
forward: the job history never replaces a row by one of an earlier stage, whatever the source
(a replay restarted from an older trace instant, a Slurm snapshot that raced its accounting).
UNKNOWN and states outside JOB_STATES say nothing about progress and count as stage 0."""

JOB_SCHEMA: dict[str, pl.DataType] = {
    "site": pl.String(),
    "source": pl.String(),  # "slurm", "swf", "replay", ...
    "job_id": pl.String(),  # as the source names it ("1234", "1234_5" for array tasks)
    "name": pl.String(),
    "user": pl.String(),
    "group": pl.String(),
    "partition": pl.String(),
    "submit_s": pl.Int64(),
    "eligible_s": pl.Int64(),
    "start_s": pl.Int64(),
    "end_s": pl.Int64(),
    "expected_start_s": pl.Int64(),  # the scheduler's own estimate for a pending job
    "req_cores": pl.Int64(),
    "alloc_cores": pl.Int64(),
    "req_nodes": pl.Int64(),
    "alloc_nodes": pl.Int64(),
    "gpus": pl.Int64(),
    "req_mem_bytes": pl.Int64(),
    "req_walltime_s": pl.Int64(),
    "state": pl.String(),  # one of JOB_STATES
    "exit_code": pl.Int64(),
    "container_runtime": pl.String(),
    "container_image": pl.String(),
    "ranks_per_container": pl.Int64(),
    "affinity": pl.String(),
    "interconnect": pl.String(),
    "observed_s": pl.Int64(),  # when this record was read from the source
    # Added after the first release (stores migrate older files by adding them, null): keep new
    # columns at the end, so a table migrated with ALTER TABLE ADD COLUMN has JOB_SCHEMA's order.
    "nodes": pl.String(),  # the nodes it ran (runs) on, comma-separated ("c1,c2"; a pod: its node)
    "reason": pl.String(),  # why it is still pending, as the scheduler says (Unschedulable, Priority)
    "remote_site": pl.String(),  # a pod on an interLink virtual node: the ctwin site the node fronts
    "remote_job_id": pl.String(),  # ... and the remote job (the pod's interLink JobID annotation)
    # How it was containerised, with container_runtime, container_image, ranks_per_container,
    # affinity (none | cpu | cpu+memory) and interconnect (the fabric) above: the container
    # configuration of models.containers.config, as the job ran.
    "containers_per_node": pl.Int64(),
    "threads_per_rank": pl.Int64(),
    "container_network": pl.String(),  # host | private (the containers' network namespace)
}
JOB_JOIN = {"left": ["remote_site", "remote_job_id"], "right": ["site", "job_id"]}
"""How a pod's row joins the remote job it became (both rows are in the same job history)."""


def empty_jobs() -> pl.DataFrame:
    return pl.DataFrame(schema=JOB_SCHEMA)


def conform_jobs(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Add missing columns as nulls, cast, and order columns as JOB_SCHEMA says."""
    lf = frame.lazy()
    have = set(lf.collect_schema().names())
    return lf.select(
        [(pl.col(name) if name in have else pl.lit(None)).cast(dtype).alias(name) for name, dtype in JOB_SCHEMA.items()]
    )


def lifecycle_stage(state: str = "state") -> pl.Expr:
    """LIFECYCLE_STAGE of the column `state` (Int8; 0 for null, UNKNOWN and unlisted states)."""
    return pl.col(state).replace_strict(LIFECYCLE_STAGE, default=0, return_dtype=pl.Int8).fill_null(0)
