"""Pure parsers for Slurm's JSON: `squeue/sinfo/sacct --json` and slurmrestd's jobs, nodes,
partitions and slurmdb jobs, for openapi/v0.0.37 (21.08), v0.0.38 (22.05), data_parser/v0.0.39
(23.02) and v0.0.40 (23.11). This module is the public surface; nodes and partitions live in
`slurm_nodes`, the document layer (versions, errors) in `slurm_doc`, value shapes in `slurm_fields`.

Why one code path for all versions rather than one parser per version: the versions differ in
value shapes (plain numbers vs `{set, infinite, number}`, state strings vs lists, raw wait status
vs `{status, return_code, signal}`), not in meaning, and real documents mix shapes (22.05 already
wraps some fields; a 23.11 slurmrestd may still serve v0.0.39).

Unknown versions and bad records: see `slurm_doc` (strict → UnknownSlurmVersion; `strict=False` →
best-effort parse, the version reported by `Parsed.issues()`; a bad record is skipped and named).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from collectors.slurm_doc import (
    KNOWN_API_VERSIONS,
    Parsed,
    SlurmJSONError,
    SlurmVersion,
    UnknownSlurmVersion,
    detect_version,
    load_document,
    open_document,
    records,
)
from collectors.slurm_fields import (
    FINISHED_STATES,
    exit_status,
    expand_hostlist,
    gpus_from_tres_per,
    gpus_in,
    integer,
    job_state,
    mem_mib_to_bytes,
    num,
    parse_tres,
    tres_from_list,
    unix_time,
)
from collectors.slurm_nodes import (
    NODE_SCHEMA,
    PARTITION_SCHEMA,
    parse_nodes,
    parse_partitions,
    partitions_from_nodes,
)
from telemetry.jobs import JOB_SCHEMA, conform_jobs

__all__ = [
    "KNOWN_API_VERSIONS",
    "NODE_SCHEMA",
    "PARTITION_SCHEMA",
    "Parsed",
    "SlurmJSONError",
    "SlurmVersion",
    "UnknownSlurmVersion",
    "detect_version",
    "load_document",
    "parse_jobs",
    "parse_nodes",
    "parse_partitions",
    "partitions_from_nodes",
]


# --- jobs -------------------------------------------------------------------------------------

_JOB_COLUMNS = (
    "site", "source", "job_id", "name", "user", "group", "partition", "submit_s", "eligible_s", "start_s",
    "end_s", "expected_start_s", "req_cores", "alloc_cores", "req_nodes", "alloc_nodes", "gpus",
    "req_mem_bytes", "req_walltime_s", "state", "exit_code", "container_runtime", "container_image",
    "observed_s", "nodes", "reason",
)  # fmt: skip
_JOB_ROW_SCHEMA = {name: JOB_SCHEMA[name] for name in _JOB_COLUMNS}


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _job_id(raw_id: Any, array_job: Any, array_task: Any, array_tasks: Any, het_job: Any, het_offset: Any) -> str:
    """As squeue prints it: `7_3` for an array task, `7_[1-4]` for the pending rest, `9+1` for het."""
    aj, at = integer(array_job), integer(array_task)
    if aj and at is not None:
        return f"{aj}_{at}"
    if aj and isinstance(array_tasks, str) and array_tasks:
        return f"{aj}_[{array_tasks}]"
    hj = integer(het_job)
    if hj:
        return f"{hj}+{integer(het_offset) or 0}"
    jid = integer(raw_id)
    if jid is None:
        raise KeyError("job_id")
    return str(jid)


def _name_or_id(name: Any, ident: Any) -> str | None:
    if name:
        return str(name)
    n = integer(ident)
    return None if n is None else str(n)


def _gpus(
    alloc: Mapping[str, int], req: Mapping[str, int], per_job: Any, per_node: Any, nodes: int | None
) -> int | None:
    per_node_gpus = gpus_from_tres_per(per_node)
    found = _first(
        gpus_in(alloc),
        gpus_in(req),
        gpus_from_tres_per(per_job),
        None if per_node_gpus is None else per_node_gpus * (nodes or 1),
    )
    if found is None and (alloc or req):
        return 0  # the scheduler told us the request and it holds no GPU
    return found


def _nodes(value: Any) -> str | None:
    """The job's nodes, expanded and comma-joined (`c[1-2]` → "c1,c2"); None before it has any.
    A host list this parser cannot expand is kept as Slurm wrote it rather than dropped."""
    try:
        names = expand_hostlist(value)
    except ValueError:
        return str(value)
    return ",".join(names) or None


def _reason(value: Any, state: str) -> str | None:
    """Why a pending job waits (Priority, Resources, Dependency, ...); Slurm writes "None" otherwise."""
    if state != "PENDING" or not isinstance(value, str) or value in ("", "None"):
        return None
    return value


def _minutes(value: Any) -> int | None:
    n = num(value)
    return None if n is None else int(n) * 60


def _squeue_job(j: Mapping[str, Any], site: str | None, observed_s: int | None) -> tuple[Any, ...]:
    """A job as squeue/slurmrestd report it (controller view: pending jobs carry an estimate)."""
    state = job_state(j.get("job_state"))
    req = parse_tres(j.get("tres_req_str"))
    alloc = parse_tres(j.get("tres_alloc_str"))
    res = j.get("job_resources") or {}
    ran = bool(alloc) or bool(res)
    start_time = unix_time(j.get("start_time"))
    if state == "PENDING":
        start, expected = None, start_time
    else:  # a job cancelled while pending reports its cancel time as start_time: not a start
        start, expected = (start_time if ran or state in ("RUNNING", "SUSPENDED") else None), None
    finished = state in FINISHED_STATES
    req_nodes = _first(req.get("node"), integer(j.get("node_count")))
    cpus = integer(j.get("cpus"))
    alloc_cores = alloc_nodes = None
    if ran:
        alloc_cores = _first(alloc.get("cpu"), integer(res.get("allocated_cpus", res.get("allocated_cores"))))
        alloc_nodes = _first(alloc.get("node"), integer(res.get("allocated_hosts")))
    mem_node, mem_cpu = mem_mib_to_bytes(j.get("memory_per_node")), mem_mib_to_bytes(j.get("memory_per_cpu"))
    req_mem = _first(
        req.get("mem"),
        None if mem_node is None else mem_node * (req_nodes or 1),
        None if mem_cpu is None or cpus is None else mem_cpu * cpus,
    )
    container = j.get("container") or None
    return (
        site,
        "slurm",
        _job_id(j["job_id"], j.get("array_job_id"), j.get("array_task_id"), j.get("array_task_string"),
                j.get("het_job_id"), j.get("het_job_offset")),
        j.get("name"),
        _name_or_id(j.get("user_name"), j.get("user_id")),
        _name_or_id(j.get("group_name"), j.get("group_id")),
        j.get("partition") or None,
        unix_time(j.get("submit_time")),
        unix_time(j.get("eligible_time")),
        start,
        unix_time(j.get("end_time")) if finished else None,
        expected,
        _first(req.get("cpu"), cpus),
        alloc_cores,
        req_nodes,
        alloc_nodes,
        _gpus(alloc, req, j.get("tres_per_job"), j.get("tres_per_node"), _first(alloc_nodes, req_nodes)),
        req_mem,
        _minutes(j.get("time_limit")),
        state,
        exit_status(j.get("exit_code")) if finished else None,
        "oci" if container else None,
        container,
        observed_s,
        _nodes(j.get("nodes")),
        _reason(j.get("state_reason"), state),
    )  # fmt: skip


def _sacct_job(j: Mapping[str, Any], site: str | None, observed_s: int | None) -> tuple[Any, ...]:
    """A job as slurmdbd records it (sacct, /slurmdb/vX/jobs): actual times, no estimates."""
    t = j.get("time") or {}
    state = job_state((j.get("state") or {}).get("current"))
    tres = j.get("tres") or {}
    req, alloc = tres_from_list(tres.get("requested")), tres_from_list(tres.get("allocated"))
    required = j.get("required") or {}
    array, het = j.get("array") or {}, j.get("het") or {}
    finished = state in FINISHED_STATES
    req_nodes = req.get("node")
    alloc_nodes = _first(alloc.get("node"), integer(j.get("allocation_nodes")) or None) if alloc else None
    mem_node = mem_mib_to_bytes(required.get("memory_per_node", required.get("memory")))
    return (
        site,
        "slurm",
        _job_id(j["job_id"], array.get("job_id"), array.get("task_id"), array.get("task"),
                het.get("job_id"), het.get("job_offset")),
        j.get("name"),
        j.get("user") or None,
        j.get("group") or None,
        j.get("partition") or None,
        unix_time(t.get("submission")),
        unix_time(t.get("eligible")),
        unix_time(t.get("start")) if state != "PENDING" else None,
        unix_time(t.get("end")) if finished else None,
        None,
        _first(req.get("cpu"), integer(required.get("CPUs"))),
        alloc.get("cpu"),
        req_nodes,
        alloc_nodes,
        _gpus(alloc, req, None, None, _first(alloc_nodes, req_nodes)),
        _first(req.get("mem"), mem_node * (req_nodes or 1) if mem_node else None),
        _minutes(t.get("limit")),
        state,
        exit_status(j.get("exit_code")) if finished else None,
        "oci" if j.get("container") else None,
        j.get("container") or None,
        observed_s,
        _nodes(j.get("nodes")),
        _reason((j.get("state") or {}).get("reason"), state),
    )  # fmt: skip


def _any_job(j: Mapping[str, Any], site: str | None, observed_s: int | None) -> tuple[Any, ...]:
    if "job_state" in j:
        return _squeue_job(j, site, observed_s)
    if isinstance(j.get("state"), Mapping) and isinstance(j.get("time"), Mapping):
        return _sacct_job(j, site, observed_s)
    raise KeyError("job_state")


def parse_jobs(
    data: str | bytes | Mapping[str, Any],
    source: str,
    *,
    site: str | None = None,
    observed_s: int | None = None,
    strict: bool = True,
) -> Parsed:
    """Jobs from squeue/sacct/slurmrestd JSON as a frame in JOB_SCHEMA (source "slurm").

    Controller documents (squeue, /slurm/vX/jobs) give pending jobs' backfill estimate as
    `expected_start_s`; accounting documents (sacct, /slurmdb/vX/jobs) give actual times only.
    End times are kept for finished jobs only (for others Slurm writes start + time limit).
    """
    doc, version, key, problems = open_document(data, source, ("jobs",), strict)
    rows = records(doc[key], lambda j: _any_job(j, site, observed_s), source, "jobs", problems, _JOB_ROW_SCHEMA)
    frame = pl.DataFrame(rows, schema=_JOB_ROW_SCHEMA, orient="row")
    return Parsed(conform_jobs(frame).collect(), version, source, tuple(problems))
