"""Dataset export for analysts: a file plus a manifest that says exactly what is in it.

The store streams the rows (DuckDB COPY, bounded memory); this module adds the manifest (query,
row count, schema, time of export, file hash) so a dataset can be traced back to its selection.
The manifest is the dataset's whole documentation: every column's type (one vocabulary for every
table and format, TYPE_VOCABULARY) and unit (metric units from the one catalog), the ctwin
version, the time bounds actually used (wall UTC and, for replayed sites, trace time), how the
tables join (JOINS) and how a replayed site's trace clock maps to wall time (`clocks`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl

from telemetry.catalog import catalog
from telemetry.jobs import JOB_JOIN, JOB_STATES
from telemetry.stores.base import ProgressCallback, Selection, Store

__all__ = [
    "JOINS",
    "NAMESPACES",
    "PSEUDONYMISED",
    "TYPE_VOCABULARY",
    "ExportManifest",
    "ReplayClock",
    "ReplayClockUnknownError",
    "advice_dataset",
    "check_job_states",
    "column_unit",
    "ctwin_version",
    "export_advice",
    "export_jobs",
    "export_samples",
    "jobs_submitted",
    "manifest_path",
    "pseudonymise",
    "replay_clocks",
    "salt_fingerprint",
    "site_submit_bounds",
    "stored_replay_clocks",
    "vocabulary_type",
]

PSEUDONYMISED: tuple[str, ...] = ("user", "group")
"""Job-history columns that identify people; exports replace them with salted hashes."""
NAMESPACES: dict[str, str] = {"user": "ctwin:user", "group": "ctwin:group"}
"""Each pseudonymised column hashes in its own namespace: a user and a group with the same name
("alice" the user, "alice" the group) get unrelated pseudonyms, so neither reveals the other."""
PSEUDONYM_METHOD = (
    "HMAC-SHA256 keyed with a secret salt over '<namespace>\\0<name>', first 16 hex digits,"
    " prefixed u_ (users) / g_ (groups)"
)

FORMAT_VERSION = 2

TYPE_VOCABULARY: dict[str, str] = {
    "int64": "signed 64-bit integer",
    "float64": "IEEE 754 double",
    "string": "UTF-8 text (JSON text where the column says so)",
    "bool": "true / false",
    "timestamp_ns": "an instant, nanoseconds since the unix epoch, UTC (Parquet TIMESTAMP, CSV ISO-8601)",
}
"""The one set of type words every manifest uses, whatever the engine (polars, DuckDB) called it."""

_CLOCK_UNIT = "unix_s"  # seconds since the unix epoch in the row's site clock (see `clocks`)
_JOB_UNITS: dict[str, str] = {
    **{c: _CLOCK_UNIT for c in ("submit_s", "eligible_s", "start_s", "end_s", "expected_start_s", "observed_s")},
    **{c: "cores" for c in ("req_cores", "alloc_cores", "cores")},
    **{c: "nodes" for c in ("req_nodes", "alloc_nodes", "nodes")},
    "gpus": "gpus",
    "req_mem_bytes": "bytes",
    "req_walltime_s": "s",
    "created_s": "unix_s (wall clock UTC)",
    "predicted_cost": "cost units of the site's price list",
    "predicted_co2_g": "g CO2e",
    "ranks_per_container": "ranks",
    "containers_per_node": "containers",
    "threads_per_rank": "threads",
    "feasible_sites": "sites",
}
_METRIC_UNITS = {"seconds": "s", "bytes": "bytes", "ratio": "ratio (0..1)", "celsius": "degC"}

JOINS: list[dict[str, Any]] = [
    {
        "name": "advice_to_job",
        "left": {"table": "advice", "columns": ["chosen_site", "job_id"]},
        "right": {"table": "jobs", "columns": ["site", "job_id"]},
        "meaning": "the job the caller reported running on the advice (its realised wait and run are the"
        " job's start_s - submit_s and end_s - start_s); advice rows without a report have null keys",
    },
    {
        "name": "advice_user_to_job_user",
        "left": {"table": "advice", "columns": ["user"]},
        "right": {"table": "jobs", "columns": ["user"]},
        "meaning": "the same person: both use the user namespace with the same salt (same salt_fingerprint)",
    },
    {
        "name": "pod_to_remote_job",
        "left": {"table": "jobs", "columns": list(JOB_JOIN["left"])},
        "right": {"table": "jobs", "columns": list(JOB_JOIN["right"])},
        "meaning": "a pod on an interLink virtual node (remote_site, remote_job_id) is the job (site, job_id)"
        " it became at the remote site, a row of the same history",
    },
    {
        "name": "samples_to_jobs",
        "left": {"table": "samples", "columns": ["site", "time"]},
        "right": {"table": "jobs", "columns": ["site", "start_s", "end_s"]},
        "meaning": "a site's telemetry while a job ran: sample time is wall clock; on a replayed site map it"
        " to trace time with `clocks` before comparing with start_s/end_s (which are in trace time there)",
    },
]
"""How exported tables join; every manifest carries all of them so one file documents the set."""


def ctwin_version() -> str:
    """The installed ctwin's version; from a source checkout, its pyproject.toml's."""
    try:
        return metadata.version("ctwin")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown (not installed)"


def vocabulary_type(source: str) -> str:
    """`source` (a polars or DuckDB type name) in TYPE_VOCABULARY."""
    t = source.strip().upper()
    if t.startswith(("INT", "UINT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT")):
        return "int64"
    if t.startswith(("FLOAT", "DOUBLE", "REAL", "DECIMAL")):
        return "float64"
    if t.startswith(("STRING", "VARCHAR", "UTF8", "TEXT", "CATEGORICAL", "ENUM")):
        return "string"
    if t.startswith(("BOOL",)):
        return "bool"
    if t.startswith(("DATETIME", "TIMESTAMP")):
        return "timestamp_ns"
    raise ValueError(f"no vocabulary type for {source!r}")


def column_unit(name: str, kind: str) -> str:
    """A column's unit; a samples `value` is in its metric's unit (the manifest's `metrics`)."""
    if kind == "samples":
        return {"time": "timestamp (wall clock UTC)", "value": "per metric, see metrics"}.get(name, "label")
    if kind == "jobs" and name == "nodes":
        return ""  # the job's node names, comma-separated (the advice request's `nodes` is a count)
    if name in _JOB_UNITS:
        return _JOB_UNITS[name]
    if name.endswith("_bytes"):
        return "bytes"
    if name.endswith("_s"):
        return "s"
    return ""


def _schema(items: Iterable[tuple[str, str]], kind: str) -> list[dict[str, str]]:
    return [{"name": n, "type": vocabulary_type(t), "source_type": t, "unit": column_unit(n, kind)} for n, t in items]


def _metric_units(names: Iterable[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name in sorted(set(names)):
        if name in catalog:
            m = catalog.get(name)
            out[name] = {"unit": _METRIC_UNITS.get(m.unit, m.unit or "1"), "type": m.type}
        else:
            out[name] = {"unit": "unknown (not in the ctwin catalog)", "type": "unknown"}
    return out


@dataclass(frozen=True)
class ReplayClock:
    """A replayed site's clock: trace_s = trace_origin_s + (wall_s - wall_origin_s) * speed."""

    site: str
    wall_origin_s: float
    trace_origin_s: float
    speed: float

    def trace_of(self, wall_s: float) -> float:
        return self.trace_origin_s + (wall_s - self.wall_origin_s) * self.speed

    def wall_of(self, trace_s: float) -> float:
        return self.wall_origin_s + (trace_s - self.trace_origin_s) / self.speed

    def describe(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "clock": "trace",
            "formula": "trace_s = trace_origin_s + (wall_s - wall_origin_s) * speed",
            "wall_origin_s": self.wall_origin_s,
            "trace_origin_s": self.trace_origin_s,
            "speed": self.speed,
            "applies_to": "jobs submit_s/eligible_s/start_s/end_s/expected_start_s/observed_s are trace time;"
            " samples time and advice created_s are wall time",
        }


class _ShownSite(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def is_replay(self) -> bool: ...
    @property
    def trace_time_s(self) -> float | None: ...
    @property
    def trace_wall_s(self) -> float | None: ...
    @property
    def trace_speed(self) -> float | None: ...


def replay_clocks(sites: Iterable[_ShownSite]) -> list[ReplayClock]:
    """The clocks of the replayed sites among `sites` (twin SiteViews) whose mapping is known."""
    return [
        ReplayClock(s.name, s.trace_wall_s, s.trace_time_s, s.trace_speed)
        for s in sites
        if s.is_replay and s.trace_wall_s is not None and s.trace_time_s is not None and s.trace_speed
    ]


REPLAY_CLOCK_METRIC = "batch_replay_trace_time_seconds"
"""The replay's shown trace instant, stamped with the wall time it was shown at."""


def stored_replay_clocks(store: Store, speeds: Mapping[str, float]) -> list[ReplayClock]:
    """The clocks of the replayed sites in `speeds` (site -> configured replay speed) from the
    store alone (an offline `ctwin export`): each site's newest trace-time reading is the origin."""
    if not speeds:
        return []
    newest: dict[str, tuple[int, float]] = {}
    for row in store.latest(Selection(metrics=(REPLAY_CLOCK_METRIC,))).iter_rows(named=True):
        site = json.loads(row["labels"] or "{}").get("site")
        if site in speeds and (site not in newest or row["ts_ns"] > newest[site][0]):
            newest[site] = (row["ts_ns"], row["value"])
    return [ReplayClock(site, ts / 1e9, value, speeds[site]) for site, (ts, value) in sorted(newest.items())]


def check_job_states(states: Iterable[str]) -> list[str]:
    """`states` upper-cased, or ValueError naming the valid ones: the job history holds exactly
    JOB_STATES (Slurm's states, UNKNOWN for what a source does not say), the API's Literal too."""
    chosen = [s.upper() for s in states]
    unknown = sorted(set(chosen) - set(JOB_STATES))
    if unknown:
        raise ValueError(f"unknown job state(s) {unknown}; valid: {', '.join(JOB_STATES)}")
    return chosen


def unmapped_replays(clocks: Sequence[ReplayClock], replayed: Sequence[str]) -> list[str]:
    """The replayed sites among `replayed` with no known clock."""
    known = {c.site for c in clocks}
    return sorted(set(replayed) - known)


def site_submit_bounds(
    wall_from_s: float | None, wall_to_s: float | None, clock: ReplayClock | None
) -> tuple[int | None, int | None]:
    """A wall-clock range [from, to) as the integer `submit_s` bounds of one site: mapped to the
    site's trace clock when it is replayed (its job times are trace times), else as it is.
    Both ends are rounded up, so `submit_s >= lo and submit_s < hi` is exactly the range."""

    def side(wall_s: float | None) -> int | None:
        if wall_s is None:
            return None
        return math.ceil(clock.trace_of(wall_s) if clock is not None else wall_s)

    return side(wall_from_s), side(wall_to_s)


class ReplayClockUnknownError(ValueError):
    """A wall-clock range asked of a replayed site whose trace clock is not known yet (the replay
    has shown no trace instant): its job times cannot be compared with the range."""

    def __init__(self, site: str) -> None:
        self.site = site
        super().__init__(
            f"{site} is replayed and its trace clock is not known yet (the replay has shown no trace "
            "instant), so a wall-clock range cannot be mapped to its job times; retry once the replay "
            "runs, or leave out the start and end"
        )


def jobs_submitted(
    store: Store,
    *,
    site: str | None = None,
    states: Sequence[str] = (),
    wall_from_s: float | None = None,
    wall_to_s: float | None = None,
    clocks: Sequence[ReplayClock] = (),
    replayed: Sequence[str] = (),
) -> pl.DataFrame:
    """The jobs submitted in a wall-clock range, each site's range in its own clock
    (site_submit_bounds): one store query for a site or for all live sites, plus one per replayed
    site. The export, its row estimate on the Export page and the CLI all select through this.
    `replayed` names every replayed site: one among them without a clock is not read as a live
    site (its trace times against a wall range): asked for alone it raises
    ReplayClockUnknownError, in an all-sites export it is left out (unmapped_replays says which)."""
    if wall_from_s is None and wall_to_s is None:
        return store.jobs(site=site, states=states)
    by_site = {c.site: c for c in clocks}
    unmapped = unmapped_replays(clocks, replayed)
    if site is not None and site in unmapped:
        raise ReplayClockUnknownError(site)

    def of(name: str | None, clock: ReplayClock | None) -> pl.DataFrame:
        lo, hi = site_submit_bounds(wall_from_s, wall_to_s, clock)
        return store.jobs(site=name, states=states, submitted_from_s=lo, submitted_to_s=hi)

    if site is not None:
        return of(site, by_site.get(site))
    live = of(None, None).filter(~pl.col("site").is_in([*by_site, *unmapped]))
    parts = [live, *(of(c.site, c) for c in clocks)]
    return pl.concat(parts).sort(["submit_s", "site", "job_id"], nulls_last=True)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _clocks_section(clocks: Sequence[ReplayClock], unmapped: Sequence[str] = ()) -> dict[str, Any]:
    section: dict[str, Any] = {
        "default": "wall clock UTC (a live site)",
        "replayed": [c.describe() for c in clocks],
    }
    if unmapped:
        section["unmapped_replays"] = {
            "sites": list(unmapped),
            "why": "replayed, with no trace clock known yet: left out of a wall-clock range",
        }
    return section


def _resolved(start_s: float | None, end_s: float | None) -> dict[str, Any]:
    return {
        "resolved_from": {
            "start": "requested" if start_s is not None else "data",
            "end": "requested" if end_s is not None else "data",
        },
        "interval": "[start, end): start inclusive, end exclusive",
    }


def _wall(lo: float | None, hi: float | None) -> dict[str, Any]:
    return {"start_s": lo, "end_s": hi, "start": _iso(lo), "end": _iso(hi)}


def _bounds(
    start_s: float | None,
    end_s: float | None,
    data: tuple[float | None, float | None],
    clocks: Sequence[ReplayClock],
) -> dict[str, Any]:
    """The wall-clock bounds used (samples, advice): the requested ones, or where none was given,
    those of the rows exported (`resolved_from` says which), and each replayed site's trace time."""
    lo = start_s if start_s is not None else data[0]
    hi = end_s if end_s is not None else data[1]
    trace = {
        c.site: {"start_s": None if lo is None else c.trace_of(lo), "end_s": None if hi is None else c.trace_of(hi)}
        for c in clocks
    }
    return {**_resolved(start_s, end_s), "trace": trace, "wall_utc": _wall(lo, hi)}


def _job_bounds(
    wall_from_s: float | None,
    wall_to_s: float | None,
    jobs: pl.DataFrame,
    clocks: Sequence[ReplayClock],
    site: str | None,
) -> dict[str, Any]:
    """The bounds of a job export. They are asked for in wall clock and applied to `submit_s` in
    each site's own clock (jobs_submitted), so `wall_utc` is the requested range (or the rows'
    submit times mapped to wall time) and `trace` each replayed site's `submit_s` bounds (the
    requested range mapped to its trace clock, or its rows' own): never one clock labelled as the other."""
    by_site = {c.site: c for c in clocks}
    spans = {
        row["site"]: (row["lo"], row["hi"] + 1)
        for row in jobs.filter(pl.col("submit_s").is_not_null())
        .group_by("site")
        .agg(lo=pl.col("submit_s").min(), hi=pl.col("submit_s").max())
        .iter_rows(named=True)
    }

    def wall(name: str, site_s: float) -> float:
        clock = by_site.get(name)
        return clock.wall_of(site_s) if clock is not None else float(site_s)

    walls = [(wall(name, lo), wall(name, hi)) for name, (lo, hi) in spans.items()]
    lo = wall_from_s if wall_from_s is not None else min((w[0] for w in walls), default=None)
    hi = wall_to_s if wall_to_s is not None else max((w[1] for w in walls), default=None)
    trace: dict[str, Any] = {}
    for c in clocks:
        if site is not None and c.site != site:
            continue
        asked_lo, asked_hi = site_submit_bounds(wall_from_s, wall_to_s, c)
        data_lo, data_hi = spans.get(c.site, (None, None))
        trace[c.site] = {
            "start_s": asked_lo if wall_from_s is not None else data_lo,
            "end_s": asked_hi if wall_to_s is not None else data_hi,
        }
    out: dict[str, Any] = {**_resolved(wall_from_s, wall_to_s), "trace": trace, "wall_utc": _wall(lo, hi)}
    if site is None and trace:
        out["note"] = (
            "submit_s is in each site's own clock: trace time on the replayed sites (their bounds under"
            " trace, their mapping under clocks), wall clock UTC elsewhere"
        )
    return out


def _pseudonymisation(columns: Sequence[str], salt: str) -> dict[str, Any]:
    return {
        "columns": list(columns),
        "namespaces": {c: NAMESPACES[c] for c in columns},
        "method": PSEUDONYM_METHOD,
        "salt_fingerprint": salt_fingerprint(salt),
    }


@dataclass(frozen=True)
class ExportManifest:
    file: str
    format: str
    rows: int
    schema: list[dict[str, str]]
    query: dict[str, object]
    exported_at: str
    duration_s: float
    sha256: str
    bytes: int
    pseudonymisation: dict[str, Any] | None = None
    joins: list[dict[str, Any]] | None = None
    """How exported tables join (JOINS): advice to jobs, a pod to its remote job, samples to jobs."""
    ctwin_version: str = ""
    time_bounds: dict[str, Any] | None = None
    clocks: dict[str, Any] | None = None
    metrics: dict[str, dict[str, str]] | None = None
    """A samples export: each metric's unit and type, from the one catalog (help texts stay in
    telemetry/catalog: left out so the manifest still fits an HTTP response header)."""
    type_vocabulary: dict[str, str] | None = None
    manifest_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_samples(
    store: Store,
    selection: Selection,
    path: Path,
    fmt: Literal["parquet", "csv"],
    progress: ProgressCallback | None = None,
    clocks: Sequence[ReplayClock] = (),
) -> ExportManifest:
    """Stream samples to `path`; the manifest names each metric's unit and the time bounds used."""
    started = time.perf_counter()
    result = store.export(selection, path, fmt, progress)
    scan = pl.scan_parquet(result.path) if fmt == "parquet" else pl.scan_csv(result.path, try_parse_dates=True)
    seen = scan.select(
        pl.col("metric").unique().implode().alias("metrics"),
        pl.col("time").min().alias("lo"),
        pl.col("time").max().alias("hi"),
    ).collect()
    row = seen.row(0, named=True) if seen.height else {"metrics": [], "lo": None, "hi": None}

    def secs(v: object) -> float | None:
        return v.replace(tzinfo=v.tzinfo or UTC).timestamp() if isinstance(v, datetime) else None

    ns = 1_000_000_000
    manifest = ExportManifest(
        file=result.path.name,
        format=fmt,
        rows=result.rows,
        schema=_schema(result.schema, "samples"),
        query={"kind": "samples", **selection.describe()},
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        sha256=_sha256(result.path),
        bytes=result.path.stat().st_size,
        joins=JOINS,
        ctwin_version=ctwin_version(),
        time_bounds=_bounds(
            None if selection.start_ns is None else selection.start_ns / ns,
            None if selection.end_ns is None else selection.end_ns / ns,
            (secs(row["lo"]), _after(secs(row["hi"]))),
            clocks,
        ),
        clocks=_clocks_section(clocks),
        metrics=_metric_units(row["metrics"] or []),
        type_vocabulary=TYPE_VOCABULARY,
    )
    manifest_path(result.path).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


def _pseudonym(key: bytes, namespace: str, prefix: str, value: str) -> str:
    message = f"{namespace}\0{value}".encode()
    return prefix + hmac.new(key, message, hashlib.sha256).hexdigest()[:16]


def salt_fingerprint(salt: str) -> str:
    """Tells two exports made with the same salt apart from others without revealing the salt."""
    return hmac.new(salt.encode("utf-8"), b"ctwin-salt-fingerprint", hashlib.sha256).hexdigest()[:8]


def pseudonymise(jobs: pl.DataFrame, salt: str, columns: Sequence[str] = PSEUDONYMISED) -> pl.DataFrame:
    """Replace user and group names with keyed hashes: stable for one salt (an analyst can still
    follow a user's jobs), not reversible without it, and unlinkable across salts. The hash is
    keyed (HMAC), not a bare hash of salt+name, computed once per distinct name, and each column
    hashes in its own namespace (NAMESPACES), so a user and a group of one name differ."""
    if len(salt) < 16:
        raise ValueError("the pseudonymisation salt must be at least 16 characters")
    key = salt.encode("utf-8")
    out = jobs
    for column in columns:
        if column not in jobs.columns:
            continue
        prefix = f"{column[0]}_"
        namespace = NAMESPACES.get(column, f"ctwin:{column}")
        names = jobs[column].drop_nulls().unique().to_list()
        mapping = {name: _pseudonym(key, namespace, prefix, str(name)) for name in names}
        out = out.with_columns(pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.String))
    return out


def export_jobs(
    store: Store,
    path: Path,
    fmt: Literal["parquet", "csv"],
    salt: str,
    *,
    site: str | None = None,
    states: Sequence[str] = (),
    wall_from_s: float | None = None,
    wall_to_s: float | None = None,
    progress: ProgressCallback | None = None,
    clocks: Sequence[ReplayClock] = (),
    replayed: Sequence[str] = (),
) -> ExportManifest:
    """Write the job history (JOB_SCHEMA) with users and groups pseudonymised, plus a manifest.
    The range is wall clock, as a user gives it; jobs_submitted maps it to each replayed site's
    trace clock (`clocks`), where its job times are. The salt never reaches the file or the
    manifest (only its fingerprint does)."""
    started = time.perf_counter()
    jobs = jobs_submitted(
        store,
        site=site,
        states=states,
        wall_from_s=wall_from_s,
        wall_to_s=wall_to_s,
        clocks=clocks,
        replayed=replayed,
    )
    ranged = wall_from_s is not None or wall_to_s is not None
    left_out = unmapped_replays(clocks, replayed) if ranged and site is None else []
    if progress:
        progress(0.4)
    jobs = pseudonymise(jobs, salt)
    if progress:
        progress(0.6)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        jobs.write_csv(path)
    else:
        jobs.write_parquet(path, compression="zstd")
    if progress:
        progress(1.0)
    manifest = ExportManifest(
        file=path.name,
        format=fmt,
        rows=jobs.height,
        schema=_schema(((n, str(t)) for n, t in jobs.schema.items()), "jobs"),
        query={
            "kind": "jobs",
            "site": site,
            "states": list(states),
            "submitted_from_wall_s": wall_from_s,
            "submitted_to_wall_s": wall_to_s,
        },
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        sha256=_sha256(path),
        bytes=path.stat().st_size,
        pseudonymisation=_pseudonymisation(PSEUDONYMISED, salt),
        joins=JOINS,
        ctwin_version=ctwin_version(),
        time_bounds={"column": "submit_s", **_job_bounds(wall_from_s, wall_to_s, jobs, clocks, site)},
        clocks=_clocks_section(clocks, left_out),
        type_vocabulary=TYPE_VOCABULARY,
    )
    manifest_path(path).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


def _after(seconds: float | None) -> float | None:
    """An exclusive end just after the last row's instant (1 µs: float64 keeps it at unix times)."""
    return None if seconds is None else seconds + 1e-6


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _p50(band: object) -> float | None:
    return band.get("p50") if isinstance(band, dict) else None


def advice_dataset(rows: pl.DataFrame, salt: str) -> pl.DataFrame:
    """The advice log flattened for analysis, one row per answer: the request, the recommendation
    and its predicted p50s, what the caller ran where, and the realised outcome with its errors
    and regret. The user is pseudonymised as in the job export (the same salt gives the same
    pseudonym, so advice joins to exported jobs); the full ranked answer stays as JSON."""
    out = []
    for row in rows.iter_rows(named=True):
        request = json.loads(row["request"]) if row["request"] else {}
        ranked = json.loads(row["ranked"]) if row["ranked"] else []
        outcome = json.loads(row["outcome"]) if row["outcome"] else {}
        by_site = {s["site"]: s for s in ranked}
        best = by_site.get(row["recommended"] or "", {})
        chosen = by_site.get(row["chosen_site"] or "", {})
        realised = outcome.get("realised") or {}
        errors = outcome.get("error_s") or {}
        request.pop("user", None)
        out.append(
            {
                "advice_id": row["advice_id"],
                "created_s": row["created_s"],
                "user": row["user"],
                "home": row["home"],
                "objective": row["objective"],
                "cores": request.get("cores"),
                "nodes": request.get("nodes"),
                "gpus": request.get("gpus"),
                "walltime_s": request.get("walltime_s"),
                "input_bytes": (request.get("input") or {}).get("size_bytes"),
                "input_site": (request.get("input") or {}).get("site"),
                "feasible_sites": sum(1 for s in ranked if s.get("feasible")),
                "recommended": row["recommended"],
                "predicted_wait_s": _p50(best.get("wait_s")),
                "predicted_run_s": _p50(best.get("run_s")),
                "predicted_turnaround_s": _p50(best.get("turnaround_s")),
                "predicted_cost": _p50(best.get("cost")),
                "predicted_co2_g": _p50(best.get("co2_g")),
                "chosen_site": row["chosen_site"],
                "job_id": row["job_id"],
                "chosen_predicted_turnaround_s": _p50(chosen.get("turnaround_s")),
                "realised_stage_in_s": realised.get("stage_in_s"),
                "realised_wait_s": realised.get("wait_s"),
                "realised_run_s": realised.get("run_s"),
                "realised_turnaround_s": realised.get("turnaround_s"),
                "error_wait_s": errors.get("wait_s"),
                "error_run_s": errors.get("run_s"),
                "error_turnaround_s": errors.get("turnaround_s"),
                "regret_s": outcome.get("regret_s"),
                "followed_advice": outcome.get("followed_advice"),
                "state": outcome.get("state"),
                "request": json.dumps(request),
                "ranked": row["ranked"],
            }
        )
    schema = {
        "advice_id": pl.String, "created_s": pl.Float64, "user": pl.String, "home": pl.String, "objective": pl.String,
        "cores": pl.Int64, "nodes": pl.Int64, "gpus": pl.Int64, "walltime_s": pl.Int64, "input_bytes": pl.Float64,
        "input_site": pl.String, "feasible_sites": pl.Int64, "recommended": pl.String,
        "predicted_wait_s": pl.Float64, "predicted_run_s": pl.Float64, "predicted_turnaround_s": pl.Float64,
        "predicted_cost": pl.Float64, "predicted_co2_g": pl.Float64, "chosen_site": pl.String, "job_id": pl.String,
        "chosen_predicted_turnaround_s": pl.Float64, "realised_stage_in_s": pl.Float64,
        "realised_wait_s": pl.Float64, "realised_run_s": pl.Float64, "realised_turnaround_s": pl.Float64,
        "error_wait_s": pl.Float64, "error_run_s": pl.Float64, "error_turnaround_s": pl.Float64,
        "regret_s": pl.Float64, "followed_advice": pl.Boolean, "state": pl.String, "request": pl.String,
        "ranked": pl.String,
    }  # fmt: skip
    return pseudonymise(pl.DataFrame(out, schema=schema), salt, ("user",))


def export_advice(
    store: Store,
    path: Path,
    fmt: Literal["parquet", "csv"],
    salt: str,
    *,
    created_from_s: float | None = None,
    created_to_s: float | None = None,
    progress: ProgressCallback | None = None,
    clocks: Sequence[ReplayClock] = (),
) -> ExportManifest:
    """Write the advice log joined with outcomes (advice_dataset), plus a manifest."""
    started = time.perf_counter()
    rows = store.advice(created_from_s=created_from_s, created_to_s=created_to_s)
    if progress:
        progress(0.3)
    frame = advice_dataset(rows, salt)
    if progress:
        progress(0.7)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path, compression="zstd")
    if progress:
        progress(1.0)
    lo = frame["created_s"].min() if frame.height else None
    hi = frame["created_s"].max() if frame.height else None
    manifest = ExportManifest(
        file=path.name,
        format=fmt,
        rows=frame.height,
        schema=_schema(((n, str(t)) for n, t in frame.schema.items()), "advice"),
        query={"kind": "advice", "created_from_s": created_from_s, "created_to_s": created_to_s},
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        sha256=_sha256(path),
        bytes=path.stat().st_size,
        pseudonymisation=_pseudonymisation(("user",), salt),
        joins=JOINS,
        ctwin_version=ctwin_version(),
        time_bounds={
            "column": "created_s",
            **_bounds(created_from_s, created_to_s, (_num(lo), _after(_num(hi))), clocks),
        },
        clocks=_clocks_section(clocks),
        type_vocabulary=TYPE_VOCABULARY,
    )
    manifest_path(path).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest
