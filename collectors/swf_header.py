"""The comment header of a Standard Workload Format log (`; Key: value` lines).

Kept apart from the data reader because it is plain line-by-line text work, while the reader is
about bulk speed. The header matters downstream: MaxProcs bounds the cleaning filter and sizes a
replayed site, UnixStartTime turns the log's relative seconds into unix time, and the Queue /
Partition lines name the numbers found in the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["HeaderProblem", "SwfHeader", "parse_header"]

_INT_KEYS = {
    "MaxJobs": "max_jobs",
    "MaxRecords": "max_records",
    "UnixStartTime": "unix_start_time",
    "TimeZone": "time_zone",
    "MaxNodes": "max_nodes",
    "MaxProcs": "max_procs",
    "MaxRuntime": "max_runtime",
    "MaxMemory": "max_memory",
    "MaxQueues": "max_queues",
    "MaxPartitions": "max_partitions",
}
_STR_KEYS = {
    "Version": "version",
    "Computer": "computer",
    "Installation": "installation",
    "TimeZoneString": "time_zone_string",
    "StartTime": "start_time",
    "EndTime": "end_time",
}
# Keys the SWF definition lists; only these start a new entry when a line is indented, so that an
# indented continuation such as ";\tsee: http://..." stays part of the entry above it.
_STANDARD_KEYS = {
    *_INT_KEYS,
    *_STR_KEYS,
    "Queue",
    "Partition",
    "Note",
    "Acknowledge",
    "Information",
    "Conversion",
    "Preemption",
    "AllowOveruse",
    "Queues",
    "Partitions",
}
_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*:\s*(.*)")
_LEADING_INT = re.compile(r"[+-]?\d+")
_NUMBERED = re.compile(r"([+-]?\d+)\s*(.*)")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int64(digits: str) -> int | None:
    """The number, or None past 64 bits: the values end up in Int64 columns (UnixStartTime is added
    to every submit time), and Python's int() refuses strings of 4,300+ digits outright."""
    if len(digits.lstrip("+-")) > 19:
        return None
    value = int(digits)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


@dataclass(frozen=True, slots=True)
class HeaderProblem:
    line: int
    message: str


@dataclass(frozen=True)
class SwfHeader:
    """Header values; None when the log does not give them (some copies have no header at all)."""

    version: str | None = None
    computer: str | None = None
    installation: str | None = None
    max_jobs: int | None = None
    max_records: int | None = None
    unix_start_time: int | None = None
    time_zone: int | None = None
    """Seconds east of UTC (deprecated in SWF 2.2 in favour of time_zone_string)."""
    time_zone_string: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    max_nodes: int | None = None
    """The leading number of the value: "338 (batch partition; 512 total)" gives 338."""
    max_procs: int | None = None
    max_runtime: int | None = None
    max_memory: int | None = None
    max_queues: int | None = None
    max_partitions: int | None = None
    queues: dict[int, str] = field(default_factory=dict)
    """Queue number → name, from the `Queue:` lines (the name may be empty)."""
    partitions: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """`Note:` entries and free comment lines, continuation lines joined with newlines."""
    extra: dict[str, str] = field(default_factory=dict)
    """Every other `Key: value` (Acknowledge, Information, Conversion, Preemption, ...); a key
    given several times has its values joined with newlines, in file order."""


def parse_header(lines: list[str], first_line: int = 1) -> tuple[SwfHeader, list[HeaderProblem]]:
    """Parse comment lines (each still starting with ';'); `first_line` numbers the first one.

    A value that should be a number and is not becomes a problem (with its line) and stays None:
    the caller decides whether that is fatal.
    """
    entries: list[list] = []  # [key | None, value, line number]
    open_entry = False
    for offset, raw in enumerate(lines):
        number = first_line + offset
        rest = raw.strip()[1:]
        text = rest.strip()
        if not text:
            open_entry = False
            continue
        indented = rest[:1] == "\t" or rest[:2].isspace()
        match = _KEY.fullmatch(text)
        if match and (not indented or match.group(1) in _STANDARD_KEYS):
            entries.append([match.group(1), match.group(2).strip(), number])
            open_entry = True
        elif open_entry:
            entries[-1][1] += "\n" + text
        else:
            entries.append([None, text, number])
            open_entry = True
    return _build(entries)


def _build(entries: list[list]) -> tuple[SwfHeader, list[HeaderProblem]]:
    values: dict[str, object] = {}
    queues: dict[int, str] = {}
    partitions: dict[int, str] = {}
    notes: list[str] = []
    extra: dict[str, str] = {}
    problems: list[HeaderProblem] = []
    for key, value, number in entries:
        if key is None or key == "Note":
            notes.append(value)
        elif key in _INT_KEYS:
            found = _LEADING_INT.match(value)
            parsed = None if found is None else _int64(found.group())
            if found is None:
                problems.append(HeaderProblem(number, f"{key} is not a number: {value!r}"))
            elif parsed is None:
                problems.append(HeaderProblem(number, f"{key} is out of the 64-bit range: {value[:40]!r}"))
            else:
                values.setdefault(_INT_KEYS[key], parsed)
                if value[found.end() :].strip():  # keep "338 (batch partition; 512 total)" whole
                    extra.setdefault(key, value)
        elif key in _STR_KEYS:
            values.setdefault(_STR_KEYS[key], value)
        elif key in ("Queue", "Partition"):
            numbered = _NUMBERED.fullmatch(value)
            if numbered is None:
                problems.append(HeaderProblem(number, f"{key} line does not start with a number: {value!r}"))
                continue
            index = _int64(numbered.group(1))
            if index is None:
                problems.append(HeaderProblem(number, f"{key} number is out of the 64-bit range: {value[:40]!r}"))
                continue
            target = queues if key == "Queue" else partitions
            target.setdefault(index, numbered.group(2).strip())
        else:
            extra[key] = f"{extra[key]}\n{value}" if key in extra else value
    header = SwfHeader(queues=queues, partitions=partitions, notes=notes, extra=extra, **values)  # type: ignore[arg-type]
    return header, problems
