"""Dataset export for analysts: a file plus a manifest that says exactly what is in it.

The store streams the rows (DuckDB COPY, bounded memory); this module adds the manifest (query,
row count, schema, time of export, file hash) so a dataset can be traced back to its selection.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from telemetry.stores.base import ProgressCallback, Selection, Store

__all__ = ["ExportManifest", "export_samples", "manifest_path"]

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
