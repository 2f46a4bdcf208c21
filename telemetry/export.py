"""Dataset export for analysts: a file plus a manifest that says exactly what is in it.

The store streams the rows (DuckDB COPY, bounded memory); this module adds the manifest (query,
row count, schema, time of export, file hash) so a dataset can be traced back to its selection.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

from telemetry.jobs import JOB_JOIN
from telemetry.stores.base import ProgressCallback, Selection, Store

__all__ = [
    "PSEUDONYMISED",
    "ExportManifest",
    "advice_dataset",
    "export_advice",
    "export_jobs",
    "export_samples",
    "manifest_path",
    "pseudonymise",
    "salt_fingerprint",
]

PSEUDONYMISED: tuple[str, ...] = ("user", "group")
"""Job-history columns that identify people; exports replace them with salted hashes."""
PSEUDONYM_METHOD = "HMAC-SHA256 keyed with a secret salt, first 16 hex digits, prefixed u_/g_"

FORMAT_VERSION = 1


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
    """How rows of the file join each other (the job history: a pod to the remote job it became)."""
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
) -> ExportManifest:
    started = time.perf_counter()
    result = store.export(selection, path, fmt, progress)
    manifest = ExportManifest(
        file=result.path.name,
        format=fmt,
        rows=result.rows,
        schema=[{"name": n, "type": t} for n, t in result.schema],
        query={"kind": "samples", **selection.describe()},
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        sha256=_sha256(result.path),
        bytes=result.path.stat().st_size,
    )
    manifest_path(result.path).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


def _pseudonym(key: bytes, prefix: str, value: str) -> str:
    return prefix + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def salt_fingerprint(salt: str) -> str:
    """Tells two exports made with the same salt apart from others without revealing the salt."""
    return hmac.new(salt.encode("utf-8"), b"ctwin-salt-fingerprint", hashlib.sha256).hexdigest()[:8]


def pseudonymise(jobs: pl.DataFrame, salt: str, columns: Sequence[str] = PSEUDONYMISED) -> pl.DataFrame:
    """Replace user and group names with keyed hashes: stable for one salt (an analyst can still
    follow a user's jobs), not reversible without it, and unlinkable across salts. The hash is
    keyed (HMAC), not a bare hash of salt+name, and computed once per distinct name."""
    if len(salt) < 16:
        raise ValueError("the pseudonymisation salt must be at least 16 characters")
    key = salt.encode("utf-8")
    out = jobs
    for column in columns:
        if column not in jobs.columns:
            continue
        prefix = f"{column[0]}_"
        names = jobs[column].drop_nulls().unique().to_list()
        mapping = {name: _pseudonym(key, prefix, str(name)) for name in names}
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
    submitted_from_s: int | None = None,
    submitted_to_s: int | None = None,
    progress: ProgressCallback | None = None,
) -> ExportManifest:
    """Write the job history (JOB_SCHEMA) with users and groups pseudonymised, plus a manifest.
    The salt never reaches the file or the manifest (only its fingerprint does)."""
    started = time.perf_counter()
    jobs = store.jobs(site=site, states=states, submitted_from_s=submitted_from_s, submitted_to_s=submitted_to_s)
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
        schema=[{"name": n, "type": str(t)} for n, t in jobs.schema.items()],
        query={
            "kind": "jobs",
            "site": site,
            "states": list(states),
            "submitted_from_s": submitted_from_s,
            "submitted_to_s": submitted_to_s,
        },
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        sha256=_sha256(path),
        bytes=path.stat().st_size,
        pseudonymisation={
            "columns": list(PSEUDONYMISED),
            "method": PSEUDONYM_METHOD,
            "salt_fingerprint": salt_fingerprint(salt),
        },
        joins=[
            {
                **JOB_JOIN,
                "meaning": "a pod on an interLink virtual node (remote_site, remote_job_id) is the job"
                " (site, job_id) it became at the remote site, a row of the same history",
            }
        ],
    )
    manifest_path(path).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


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
    manifest = ExportManifest(
        file=path.name,
        format=fmt,
        rows=frame.height,
        schema=[{"name": n, "type": str(t)} for n, t in frame.schema.items()],
        query={"kind": "advice", "created_from_s": created_from_s, "created_to_s": created_to_s},
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        sha256=_sha256(path),
        bytes=path.stat().st_size,
        pseudonymisation={"columns": ["user"], "method": PSEUDONYM_METHOD, "salt_fingerprint": salt_fingerprint(salt)},
    )
    manifest_path(path).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest
