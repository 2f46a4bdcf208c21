"""The document layer shared by the Slurm JSON parsers: decoding, version detection, Slurm's own
error lists, and per-record error capture.

Versions are read from `meta.plugin.data_parser`, `meta.plugins.data_parser` or `meta.plugin.type`
(the spelling moved between releases). A version outside KNOWN_API_VERSIONS raises
UnknownSlurmVersion, naming version and source, when `strict`; with `strict=False` a document whose
structure is recognisable (it has the expected `jobs`/`nodes`/`sinfo`/`partitions` list) is parsed
best-effort and `Parsed.issues()` reports the version, so a caller can keep the data and still
surface the version (or accept it, with `allow_unknown_version`). Invalid JSON, an unrecognisable
structure, or a document that carries only Slurm's `errors` always raises SlurmJSONError.

A record that cannot be converted is skipped and described (source, index, job id or node name,
field) in `Parsed.problems` rather than sinking the whole document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from collectors.base import CollectorError
from collectors.slurm_fields import num

__all__ = [
    "KNOWN_API_VERSIONS",
    "Parsed",
    "SlurmJSONError",
    "SlurmVersion",
    "UnknownSlurmVersion",
    "detect_version",
    "load_document",
    "open_document",
    "records",
    "unknown_version_message",
]

KNOWN_API_VERSIONS: tuple[str, ...] = ("v0.0.37", "v0.0.38", "v0.0.39", "v0.0.40")
_EMPTY_RESULT = 9003  # ESLURM_REST_EMPTY_RESULT: sacct/slurmdb say "Nothing found" for an empty window


class SlurmJSONError(CollectorError):
    """A Slurm JSON document could not be read; the message names the source and the field."""


class UnknownSlurmVersion(SlurmJSONError):
    """The document comes from a plugin version this parser was not written against."""


@dataclass(frozen=True, slots=True)
class SlurmVersion:
    plugin: str  # as the document spells it: "openapi/v0.0.38", "data_parser/v0.0.40", "" if absent
    api: str | None  # "v0.0.38"
    release: str | None  # Slurm release, "22.05.8"

    @property
    def known(self) -> bool:
        return self.api in KNOWN_API_VERSIONS

    def describe(self) -> str:
        plugin = self.plugin or "none (no meta.plugin in the document)"
        return plugin + (f" (Slurm {self.release})" if self.release else "")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed document: the frame, the version it came in, and the records that were skipped."""

    frame: pl.DataFrame
    version: SlurmVersion
    source: str
    problems: tuple[str, ...] = field(default=())  # skipped records and Slurm's own `errors`

    def issues(self, allow_unknown_version: bool = False) -> tuple[str, ...]:
        """Everything a caller should report: an unknown version (unless allowed), then problems."""
        if self.version.known or allow_unknown_version:
            return self.problems
        return (unknown_version_message(self.version, self.source) + "; parsed best-effort", *self.problems)


# --- documents and versions -------------------------------------------------------------------

_API = re.compile(r"v\d+\.\d+\.\d+")


def load_document(data: str | bytes | Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """The decoded JSON object; SlurmJSONError for empty output, invalid JSON or a non-object."""
    if isinstance(data, Mapping):
        return data
    if not data or not data.strip():
        raise SlurmJSONError(f"{source}: empty output, expected a JSON document")
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise SlurmJSONError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise SlurmJSONError(f"{source}: output is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:  # an integer of 4,300+ digits; nesting past the stack
        raise SlurmJSONError(f"{source}: unreadable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SlurmJSONError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    return doc


def detect_version(doc: Mapping[str, Any]) -> SlurmVersion:
    meta: Mapping[str, Any] = doc["meta"] if isinstance(doc.get("meta"), Mapping) else {}
    plugin: Mapping[str, Any] = meta["plugin"] if isinstance(meta.get("plugin"), Mapping) else {}
    plugins: Mapping[str, Any] = meta["plugins"] if isinstance(meta.get("plugins"), Mapping) else {}
    # data_parser names the schema; plugin.type is "openapi/slurmctld" from 23.11 on.
    candidates = [plugin.get("data_parser"), plugins.get("data_parser"), plugin.get("type")]
    spelled = next((str(c) for c in candidates if c and _API.search(str(c))), None)
    if spelled is None:
        spelled = next((str(c) for c in candidates if c), "")
    if spelled.startswith("v"):  # 23.11 serving v0.0.39 writes data_parser: "v0.0.39"
        spelled = f"data_parser/{spelled}"
    api_match = _API.search(spelled)
    slurm = meta.get("Slurm") or meta.get("slurm")
    release = slurm.get("release") if isinstance(slurm, Mapping) else None
    return SlurmVersion(spelled, api_match.group(0) if api_match else None, str(release) if release else None)


def unknown_version_message(version: SlurmVersion, source: str) -> str:
    return (
        f"{source}: unknown Slurm JSON version {version.describe()}; this parser knows "
        f"openapi/v0.0.37, openapi/v0.0.38, data_parser/v0.0.39 and data_parser/v0.0.40"
    )


def _slurm_errors(doc: Mapping[str, Any], source: str) -> list[str]:
    """Slurm's own `errors` list, as readable lines; an empty result is not an error."""
    out = []
    listed = doc.get("errors") or []
    for err in listed if isinstance(listed, list) else [listed]:  # a lone error, not in a list
        if isinstance(err, Mapping) and err.get("error_number") == _EMPTY_RESULT:
            continue
        if isinstance(err, Mapping):
            text = err.get("description") or err.get("error") or json.dumps(err)
            number = err.get("error_number", err.get("errno"))
            out.append(f"{source}: Slurm error{f' {number}' if number else ''}: {text}")
        else:
            out.append(f"{source}: Slurm error: {err}")
    return out


def open_document(
    data: str | bytes | Mapping[str, Any], source: str, keys: Sequence[str], strict: bool
) -> tuple[Mapping[str, Any], SlurmVersion, str, list[str]]:
    doc = load_document(data, source)
    version = detect_version(doc)
    errors = _slurm_errors(doc, source)
    key = next((k for k in keys if isinstance(doc.get(k), list)), None)
    if key is None:
        if errors:
            raise SlurmJSONError("; ".join(errors))
        wanted = " or ".join(f"'{k}'" for k in keys)
        raise SlurmJSONError(f"{source}: no {wanted} list in the document (top-level keys: {sorted(doc)})")
    if strict and not version.known:
        raise UnknownSlurmVersion(unknown_version_message(version, source))
    return doc, version, key, errors


def records(
    items: Iterable[Any],
    convert: Callable[[Mapping[str, Any]], Any],
    source: str,
    kind: str,
    problems: list[str],
    schema: Mapping[str, pl.DataType] | None = None,
) -> list[Any]:
    """Convert each record; a record that fails is skipped and described (field, not a traceback).

    With `schema`, each converted row (or each row of a list of rows) must also fit its columns:
    a list where a name belongs, or a number past 64 bits (a time limit in minutes times 60, MiB
    times 2^20), would otherwise sink the whole document when the frame is built."""
    check = _row_checker(schema) if schema is not None else None
    rows = []
    for i, rec in enumerate(items):
        try:
            if not isinstance(rec, Mapping):
                raise TypeError(f"expected an object, got {type(rec).__name__}")
            row = convert(rec)
            if check is not None:
                for one in row if isinstance(row, list) else [row]:
                    check(one)
            rows.append(row)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            problems.append(f"{source}: {kind}[{i}]{_record_name(rec)}: {_blame(rec, exc)}; record skipped")
    return rows


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _row_checker(schema: Mapping[str, pl.DataType]) -> Callable[[Sequence[Any]], None]:
    """A fast check of one row against the column types (about 2 µs for a 24-column job row)."""
    kinds = [
        "int" if dtype == pl.Int64 else "str" if dtype == pl.String else "strs" if dtype == pl.List(pl.String) else ""
        for dtype in schema.values()
    ]
    names = list(schema)

    def check(row: Sequence[Any]) -> None:
        for value, kind, name in zip(row, kinds, names, strict=True):
            if value is None or not kind:
                continue
            if kind == "int":
                ok = value.__class__ is int and _INT64_MIN <= value <= _INT64_MAX
            elif kind == "str":
                ok = value.__class__ is str
            else:
                ok = isinstance(value, list) and all(v.__class__ is str for v in value)
            if not ok:
                raise ValueError(f"field {name!r}: {value!r:.60} does not fit a {schema[name]} column")

    return check


def _record_name(rec: Any) -> str:
    if not isinstance(rec, Mapping):
        return ""
    for key in ("job_id", "name"):
        if isinstance(rec.get(key), str | int):
            return f" ({key} {rec[key]})"
    return ""


_NUMERIC_FIELDS = (
    "job_id", "submit_time", "eligible_time", "start_time", "end_time", "time_limit", "cpus", "node_count",
    "memory_per_node", "memory_per_cpu", "array_job_id", "array_task_id", "het_job_id", "het_job_offset",
    "alloc_cpus", "real_memory", "alloc_memory", "total_cpus", "total_nodes",
)  # fmt: skip


def _blame(rec: Any, exc: Exception) -> str:
    """Name the field that broke a record: the hot path does not track fields, so look again."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(rec, Mapping):
        for key in _NUMERIC_FIELDS:
            try:
                num(rec.get(key))
            except (TypeError, ValueError) as inner:
                return f"field {key!r}: {inner}"
    if isinstance(exc, ValueError) and str(exc).startswith("field "):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
