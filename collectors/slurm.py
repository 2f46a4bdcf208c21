"""The Slurm collector: a batch site's nodes, CPUs, memory and queue as catalog samples, and the
latest job snapshot for the job history.

Each gather fetches, concurrently and each with its own timeout, the controller's jobs (squeue /
`/slurm/vX/jobs`), the nodes (sinfo / `/nodes`), the partitions (`/partitions`; for the CLI they
are derived from sinfo) and recent accounting records (sacct / `/slurmdb/vX/jobs`, unless
`accounting: false`). Transports live in `slurm_transport`, parsing in `slurm_json`.

Partial failures (decided here, documented for the pipeline): every source that answered is parsed
and emitted, the job snapshot is updated from whatever job data arrived, and only then is the
cycle's trouble raised as SlurmPartialError (a CollectorError with `partial = True` and the list of
`errors`, each naming its source and field or command). A pipeline that honours `partial` keeps the
samples and still counts the cycle as failed, so the collector shows as stale; one that does not
drops them, which is the safe default. If no source answered at all, a plain CollectorError.
An unknown JSON version is reported the same way after a best-effort parse, unless
`allow_unknown_version` says the operator has checked the new version.

Emitted families (telemetry.catalog.batch, shared with the trace replay): batch_nodes{state},
batch_cpus{state} and batch_memory_bytes{state} with allocated/idle/other, batch_jobs and
batch_jobs_cpus{partition,state} for pending/running (and suspended when present), and the
submitted/started/finished counters, which count events after the collector's first look.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Literal

import httpx
import polars as pl
from pydantic import Field, SecretStr, model_validator

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.registry import register
from collectors.slurm_fields import FINISHED_STATES
from collectors.slurm_json import Parsed, parse_jobs, parse_nodes, parse_partitions
from collectors.slurm_nodes import partitions_from_nodes
from collectors.slurm_transport import KINDS, CliTransport, CommandRunner, RestTransport, Transport, run_command
from telemetry.catalog import batch
from telemetry.jobs import empty_jobs
from telemetry.schema import Duration

__all__ = ["SlurmCollector", "SlurmConfig", "SlurmPartialError", "merge_snapshot"]

_API_VERSION = r"^v\d+\.\d+\.\d+$"
_REST_ONLY = ("url", "api_version", "user", "token", "token_file")


class SlurmConfig(CollectorConfig):
    transport: Literal["cli", "rest"] = "cli"
    timeout_s: Duration = 10.0
    """Per command or HTTP request; the sources are fetched concurrently."""
    accounting: bool = True
    """Read finished jobs from slurmdbd (sacct / slurmdb); turn off where there is no accounting."""
    accounting_window: Duration = 3600.0
    """How far back accounting is read each cycle ("1h")."""
    allow_unknown_version: bool = False
    """Accept a Slurm JSON version this parser does not know (parsed best-effort) without an error."""
    site: str | None = None
    """Written in the `site` column of job rows; the pipeline may fill it instead."""
    # transport: cli
    command_prefix: tuple[str, ...] = ()
    """Prepended to every command, e.g. ["ssh", "login1"] to run on a login node."""
    slurm_conf: str | None = None
    """SLURM_CONF for the commands (through `env` inside the command when there is a prefix)."""
    # transport: rest
    url: str | None = None
    api_version: str | None = Field(None, pattern=_API_VERSION)
    """The slurmrestd plugin version to call, e.g. "v0.0.38" (Slurm 22.05) or "v0.0.40" (23.11)."""
    user: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    """File holding the JWT (`scontrol token` output works); re-read every cycle."""
    verify_tls: bool = True

    @model_validator(mode="after")
    def _transport_fields(self) -> SlurmConfig:
        if self.transport == "rest":
            missing = [k for k in ("url", "api_version", "user") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"transport rest needs {', '.join(missing)}")
            if (self.token is None) == (self.token_file is None):
                raise ValueError("transport rest needs exactly one of token and token_file")
        else:
            stray = [k for k in _REST_ONLY if getattr(self, k) is not None]
            if stray:
                raise ValueError(f"{', '.join(stray)} only apply to transport rest")
        return self


class SlurmPartialError(CollectorError):
    """Some sources failed or were incomplete; what did arrive was emitted before this was raised."""

    partial = True

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def merge_snapshot(active: pl.DataFrame | None, accounting: pl.DataFrame | None) -> pl.DataFrame:
    """One row per job: accounting wins for finished jobs (authoritative), the controller for
    pending and running ones (it has the start estimates); either fills in for the other.

    Exit codes are the exception: when the controller still shows a finished job, its exit code
    is kept, because Slurm 22.05's `sacct --json` reports SUCCESS/0 for jobs that exited 3 (the
    text sacct shows 3:0; seen on the captures and on a live 22.05.8).
    """
    finished = pl.col("state").is_in(list(FINISHED_STATES))
    frames = []
    if accounting is not None:
        done = accounting.filter(finished)
        if active is not None:
            controller_exit = active.filter(finished & pl.col("exit_code").is_not_null()).select(
                "job_id", pl.col("exit_code").alias("_controller_exit")
            )
            done = (
                done.join(controller_exit, on="job_id", how="left", maintain_order="left")
                .with_columns(pl.coalesce("_controller_exit", "exit_code").alias("exit_code"))
                .drop("_controller_exit")
            )
        frames.append(done)
    if active is not None:
        frames += [active.filter(finished), active.filter(~finished)]
    if accounting is not None:
        frames.append(accounting.filter(~finished))
    if not frames:
        return empty_jobs()
    return pl.concat(frames).unique("job_id", keep="first", maintain_order=True)


_ALWAYS_NODE_STATES = ("allocated", "idle", "mixed", "down")
_UNUSABLE_BASE = frozenset({"DOWN", "FUTURE", "UNKNOWN"})
_UNUSABLE_FLAGS = frozenset({"DRAIN", "FAIL", "NOT_RESPONDING"})


def node_label(state: list[str]) -> str:
    """One bounded label per node: the base state, or drained/draining, failing/failed."""
    base = state[0].lower() if state else "unknown"
    flags = set(state[1:])
    if "DRAIN" in flags:
        return "drained" if base in ("idle", "down") else "draining"
    if "FAIL" in flags:
        return "failed" if base in ("idle", "down") else "failing"
    return base


def _usable(state: list[str]) -> bool:
    return bool(state) and state[0] not in _UNUSABLE_BASE and not _UNUSABLE_FLAGS.intersection(state[1:])


class _EventCounters:
    """Jobs submitted / started / finished since the collector's first look, per partition.

    The first look is the baseline: whatever it shows has already happened and is not counted.
    After that an event counts once, when first reported by any source, provided it happened at
    or after the first look (a source that was down may later reveal older jobs). An array counts
    as one submission (`7_[1-4]`, `7_1`, ... share `7`); its tasks start and finish one by one.
    Ids are forgotten only after a fully successful cycle no longer reports them and their event
    is older than `horizon_s`, so a source failing for a cycle cannot make a job count twice.
    """

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self.t0: int | None = None
        self.submitted: dict[str, int] = {}
        self.started: dict[str, int] = {}
        self.finished: dict[tuple[str, str], int] = {}
        self._seen: dict[str, dict[str, int]] = {"submitted": {}, "started": {}, "finished": {}}

    def update(self, jobs: pl.DataFrame, now_s: int, prune: bool) -> None:
        baseline = self.t0 is None
        if self.t0 is None:
            self.t0 = now_s
        t0 = self.t0
        cols = jobs.select("job_id", "partition", "submit_s", "start_s", "end_s", "state")
        for job_id, partition, submit, start, end, state in cols.iter_rows():
            part = _partition_label(partition)
            # _new() runs first: on the baseline it only marks the event as seen
            if submit is not None and self._new("submitted", job_id.split("_")[0], submit) and not baseline:
                self.submitted[part] = self.submitted.get(part, 0) + (submit >= t0)
            if start is not None and self._new("started", job_id, start) and not baseline:
                self.started[part] = self.started.get(part, 0) + (start >= t0)
            if state in FINISHED_STATES and end is not None and self._new("finished", job_id, end) and not baseline:
                final = (part, state.lower())
                self.finished[final] = self.finished.get(final, 0) + (end >= t0)
        if prune:
            ids = cols["job_id"].to_list()
            present = set(ids) | {j.split("_")[0] for j in ids}
            cutoff = now_s - self.horizon_s
            for seen in self._seen.values():
                for gone in [k for k, at in seen.items() if at < cutoff and k not in present]:
                    del seen[gone]

    def _new(self, event: str, key: str, at: int) -> bool:
        seen = self._seen[event]
        if key in seen:
            return False
        seen[key] = at
        return True

    def emit(self, emit: Emit, partitions: Iterable[str]) -> None:
        parts = sorted(set(partitions) | set(self.submitted) | set(self.started) | {p for p, _ in self.finished})
        finals = sorted({s for _, s in self.finished})
        for part in parts:
            emit(batch.SUBMITTED, self.submitted.get(part, 0), {"partition": part})
            emit(batch.STARTED, self.started.get(part, 0), {"partition": part})
            for final in finals:
                emit(batch.FINISHED, self.finished.get((part, final), 0), {"partition": part, "state": final})


def _partition_label(partition: str | None) -> str:
    """A pending job may name several partitions ("batch,debug"); it is counted in the first."""
    return (partition or "unknown").split(",")[0]


@register
class SlurmCollector(Collector):
    name = "slurm"
    config_model = SlurmConfig
    config: SlurmConfig

    def __init__(
        self,
        config: SlurmConfig | None = None,
        *,
        runner: CommandRunner | None = None,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config)
        self._runner = runner or run_command
        self._http_client = http_client
        self.clock = clock
        self._transport: Transport | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._snapshot = empty_jobs()
        horizon = max(self.config.accounting_window, 600.0) + 600.0
        self._counters = _EventCounters(horizon)
        self.last_errors: list[str] = []

    # --- the collector contract -----------------------------------------------------------------

    def availability(self) -> str | None:
        if self.config.transport == "rest":
            return None
        program = self.config.command_prefix[0] if self.config.command_prefix else "squeue"
        if shutil.which(program) is None:
            hint = "" if self.config.command_prefix else " (install slurm-client, or set command_prefix)"
            return f"{program} not found on PATH{hint}"
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._transport is not None:
            self._transport.close()

    def jobs_snapshot(self) -> pl.DataFrame:
        """Pending and running jobs and recently finished ones (JOB_SCHEMA, source "slurm"), as of
        the last gather; `observed_s` says when. Pending jobs carry Slurm's expected start."""
        return self._snapshot

    def job_updates(self) -> pl.DataFrame:
        return self._snapshot

    def gather(self, emit: Emit) -> None:
        observed = int(self.clock())
        requests = self._get_transport().requests()
        bodies, errors = self._fetch_all(requests)
        parsed: dict[str, Parsed] = {}
        for kind, body in bodies.items():
            source = requests[kind]
            try:
                if kind in ("jobs", "accounting"):
                    parsed[kind] = parse_jobs(body, source, site=self.config.site, observed_s=observed, strict=False)
                elif kind == "nodes":
                    parsed[kind] = parse_nodes(body, source, strict=False)
                    if "partitions" not in requests:  # the CLI: partitions as sinfo shows them
                        parsed["partitions"] = parse_partitions(body, source, strict=False)
                else:
                    parsed[kind] = parse_partitions(body, source, strict=False)
            except CollectorError as exc:
                errors.append(str(exc))
                continue
            errors.extend(parsed[kind].issues(self.config.allow_unknown_version))
        self.last_errors = errors
        if not parsed:
            raise CollectorError("; ".join(errors))

        nodes = parsed["nodes"].frame if "nodes" in parsed else None
        partitions = self._partition_names(parsed, nodes)
        if nodes is not None:
            self._emit_nodes(emit, nodes)
        active = parsed["jobs"].frame if "jobs" in parsed else None
        accounting = parsed["accounting"].frame if "accounting" in parsed else None
        if active is not None or accounting is not None:
            self._snapshot = merge_snapshot(active, accounting)
            job_parts = self._snapshot["partition"].drop_nulls().unique().to_list()
            partitions = sorted(set(partitions) | {_partition_label(p) for p in job_parts})
            self._emit_jobs(emit, self._snapshot, partitions)
            self._counters.update(self._snapshot, observed, prune=not errors)
            self._counters.emit(emit, partitions)
        if errors:
            raise SlurmPartialError(errors)

    # --- fetching -------------------------------------------------------------------------------

    def _get_transport(self) -> Transport:
        if self._transport is None:
            c = self.config
            window = c.accounting_window if c.accounting else None
            if c.transport == "rest":
                assert c.url is not None and c.api_version is not None and c.user is not None  # validated
                self._transport = RestTransport(
                    url=c.url,
                    api_version=c.api_version,
                    user=c.user,
                    token=c.token.get_secret_value() if c.token else None,
                    token_file=c.token_file,
                    timeout_s=c.timeout_s,
                    verify_tls=c.verify_tls,
                    accounting_window_s=window,
                    client=self._http_client,
                )
            else:
                self._transport = CliTransport(
                    prefix=c.command_prefix,
                    timeout_s=c.timeout_s,
                    slurm_conf=c.slurm_conf,
                    accounting_window_s=window,
                    runner=self._runner,
                )
        return self._transport

    def _fetch_all(self, requests: dict[str, str]) -> tuple[dict[str, bytes], list[str]]:
        """All sources at once, so a hung one costs one timeout, not one per source."""
        transport = self._get_transport()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(KINDS), thread_name_prefix="slurm-fetch")
        futures = {kind: self._pool.submit(transport.fetch, kind) for kind in requests}
        # the transports bound every call; this only guards against a runner that ignores its timeout
        deadline = time.monotonic() + 2 * self.config.timeout_s + 5
        bodies: dict[str, bytes] = {}
        errors: list[str] = []
        for kind, future in futures.items():
            try:
                bodies[kind] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                errors.append(f"{requests[kind]}: no answer within {self.config.timeout_s:g}s")
            except CollectorError as exc:
                errors.append(str(exc))
            except Exception as exc:  # a bug in a runner or client must not hide the other sources
                errors.append(f"{requests[kind]}: {type(exc).__name__}: {exc}")
        return bodies, errors

    # --- samples --------------------------------------------------------------------------------

    @staticmethod
    def _partition_names(parsed: Mapping[str, Parsed], nodes: pl.DataFrame | None) -> list[str]:
        if "partitions" in parsed:
            return parsed["partitions"].frame["name"].to_list()
        if nodes is not None:
            return partitions_from_nodes(nodes)["name"].to_list()
        return []

    @staticmethod
    def _emit_nodes(emit: Emit, nodes: pl.DataFrame) -> None:
        counts = dict.fromkeys(_ALWAYS_NODE_STATES, 0)
        cpus = {"allocated": 0, "idle": 0, "other": 0}
        memory = {"allocated": 0, "idle": 0, "other": 0}
        for state, cpu_total, cpu_alloc, mem_total, mem_alloc in nodes.select(
            "state", "cpus_total", "cpus_allocated", "memory_total_bytes", "memory_allocated_bytes"
        ).iter_rows():
            label = node_label(state)
            counts[label] = counts.get(label, 0) + 1
            free_key = "idle" if _usable(state) else "other"
            _split(cpus, cpu_total, cpu_alloc, free_key)
            _split(memory, mem_total, mem_alloc, free_key)
        for label, n in counts.items():
            emit(batch.NODES, n, {"state": label})
        for label, n in cpus.items():
            emit(batch.CPUS, n, {"state": label})
        for label, n in memory.items():
            emit(batch.MEMORY, n, {"state": label})

    @staticmethod
    def _emit_jobs(emit: Emit, jobs: pl.DataFrame, partitions: list[str]) -> None:
        stats: dict[tuple[str, str], list[int]] = {}
        for partition, state, req, alloc in jobs.select("partition", "state", "req_cores", "alloc_cores").iter_rows():
            if state not in ("PENDING", "RUNNING", "SUSPENDED"):
                continue
            cell = stats.setdefault((_partition_label(partition), state.lower()), [0, 0])
            cell[0] += 1
            cell[1] += (req or 0) if state == "PENDING" else (alloc if alloc is not None else req or 0)
        for part in sorted(set(partitions) | {p for p, _ in stats}):
            for state in ("pending", "running", "suspended"):
                count, cores = stats.get((part, state), [0, 0])
                if state == "suspended" and not count:
                    continue
                emit(batch.JOBS, count, {"partition": part, "state": state})
                emit(batch.JOBS_CPUS, cores, {"partition": part, "state": state})


def _split(acc: dict[str, int], total: Any, allocated: Any, free_key: str) -> None:
    total, allocated = total or 0, allocated or 0
    acc["allocated"] += allocated
    acc[free_key] += max(0, total - allocated)
