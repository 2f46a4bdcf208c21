"""`nvidia-smi --query-gpu=<fields> --format=csv` output → per-GPU values, the way
nvidia_gpu_exporter (utkuozdemir/nvidia_gpu_exporter) reads it, so its golden output over a real
capture is our oracle.

What the exporter does, and so what we do:
- The first line is the header: one returned field per queried field, with the unit in brackets
  when nvidia-smi has one (`power.draw [W]`, `memory.used [MiB]`). A header that does not line up
  with what was asked for fails the read; a row that does not line up fails it too (the output
  has no quoting, so a guess would put values under the wrong names).
- Values carry the unit (`69.85 W`, `81559 MiB`, `0 us`); `0x…` is hex; `Enabled`/`Yes`/`Active`
  read 1, `Disabled`/`No`/`Not Active` 0; compute modes map to NVML's enum; any other text counts
  only if it holds exactly one number (`P0` → 0, `9.0` → 9; `96.00.A5.00.01` or a timestamp →
  none). `[N/A]`, `[Not Supported]`, `[Requested functionality has been deprecated]` and the like
  are no value: the series is left out, not zeroed.
- Name and scale come from the header's unit: `[W]` → `_watts`, `[MHz]` → `_clock_hz` × 1e6,
  `[MiB]` → `_bytes` × 2^20, `[%]` → `_ratio` × 0.01, `[us]`/`[ms]` → `_seconds`; dots become
  underscores and camelCase becomes snake_case; the prefix is `nvidia_smi_`.
- The GPU's uuid label is lowercase without the `GPU-` prefix.

The parser is a pure function of text; running the command is the collector's business.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "PREFIX",
    "QueryRow",
    "exporter_name",
    "field_of_header",
    "normalize_uuid",
    "parse_help_fields",
    "parse_query_csv",
    "parse_value",
]

PREFIX = "nvidia_smi"

_NUMBER = re.compile(r"[+-]?(\d*[.])?\d+")
_FIRST_CAP = re.compile(r"(.)([A-Z][a-z]+)")
_ALL_CAP = re.compile(r"([a-z0-9])([A-Z])")
_UNIT = re.compile(r"^(?P<field>\S+) \[(?P<unit>[^\]]+)\]$")
_HELP_FIELD = re.compile(r'^"([^"]+)"(?: or "([^"]+)")*', re.MULTILINE)
_HELP_ALIAS = re.compile(r'"([^"]+)"')

_WORDS = {
    "enabled": 1.0,
    "yes": 1.0,
    "active": 1.0,
    "disabled": 0.0,
    "no": 0.0,
    "not active": 0.0,
    # compute_mode, as NVML's nvmlComputeMode_t
    "default": 0.0,
    "exclusive_thread": 1.0,
    "prohibited": 2.0,
    "exclusive_process": 3.0,
}
# Fields whose text is an NVML enum with its own table (the exporter's fieldValueMappers); an
# unknown spelling is no value rather than a number read out of it.
_ENUMS: dict[str, dict[str, float]] = {
    "gpu_recovery_action": {
        "none": 0,
        "gpu reset": 1,
        "reset": 1,
        "node reboot": 2,
        "reboot": 2,
        "drain p2p": 3,
        "drain and reset": 4,
    },
    "fabric.state": {"not supported": 0, "not started": 1, "in progress": 2, "completed": 3},
}
_SCALE = {
    "W": ("_watts", 1.0),
    "MHz": ("_clock_hz", 1e6),
    "MiB": ("_bytes", 1048576.0),
    "%": ("_ratio", 0.01),
    "us": ("_seconds", 1e-6),
    "ms": ("_seconds", 1e-3),
}


@dataclass(frozen=True, slots=True)
class QueryRow:
    """One GPU's line: query field → (returned header, raw text)."""

    cells: dict[str, tuple[str, str]] = field(default_factory=dict)

    def raw(self, qfield: str) -> str | None:
        cell = self.cells.get(qfield)
        return cell[1] if cell else None


def normalize_uuid(raw: str) -> str:
    """`GPU-1A2b…` → `1a2b…`, as the exporter labels every series."""
    text = raw.strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def field_of_header(header: str) -> str:
    """The query field a returned header names: `power.draw [W]` → `power.draw`."""
    m = _UNIT.match(header.strip())
    return m.group("field") if m else header.strip()


def _snake(text: str) -> str:
    return _ALL_CAP.sub(r"\1_\2", _FIRST_CAP.sub(r"\1_\2", text)).lower()


def exporter_name(header: str, prefix: str = PREFIX) -> tuple[str, float]:
    """The exporter's metric name and multiplier for a returned header."""
    header = header.strip()
    base, scale = header, 1.0
    m = _UNIT.match(header)
    if m and m.group("unit") in _SCALE:
        suffix, scale = _SCALE[m.group("unit")]
        base = m.group("field") + suffix
    name = _snake(base.replace(".", "_"))
    if any(c in name for c in " []"):  # an unknown unit: kept, as the exporter keeps it
        name = name.replace(" [", "_").replace("]", "")
    return f"{prefix}_{name}", scale


def parse_value(qfield: str, raw: str, scale: float = 1.0) -> float | None:
    """The number a cell stands for, or None when it holds none (absent, or not a number)."""
    text = raw.strip()
    if qfield in _ENUMS:
        return _ENUMS[qfield].get(text.lower())
    if text.startswith("0x"):
        try:
            return float(int(text[2:], 16))
        except ValueError:
            return None
    word = _WORDS.get(text.lower())
    if word is not None:
        return word
    numbers = [m.group(0) for m in _NUMBER.finditer(text.lower())]
    if len(numbers) != 1:
        return None
    return float(numbers[0]) * scale


def _split(line: str) -> list[str]:
    return [part.strip() for part in line.split(",")]


def parse_query_csv(text: str, fields: Sequence[str] | None = None) -> list[QueryRow]:
    """Rows of `--query-gpu ... --format=csv` output.

    With `fields` (what was asked for, in order) columns are matched by position, as the
    exporter does; nvidia-smi may answer an alias with another header, so position is the only
    safe key. Without it, each column is keyed by the field its header names.
    """
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty output: no CSV header")
    headers = _split(lines[0])
    if fields is not None and len(fields) != len(headers):
        raise ValueError(f"field count mismatch: asked for {len(fields)} fields, the header has {len(headers)}")
    keys = list(fields) if fields is not None else [field_of_header(h) for h in headers]
    if len(set(keys)) != len(keys):
        raise ValueError("a field appears twice in the header")
    rows: list[QueryRow] = []
    for n, line in enumerate(lines[1:], start=1):
        values = _split(line)
        if len(values) != len(headers):
            raise ValueError(f"row {n} has {len(values)} columns, the header {len(headers)}: {line.strip()[:120]!r}")
        rows.append(QueryRow(dict(zip(keys, zip(headers, values, strict=True), strict=True))))
    return rows


def parse_help_fields(text: str) -> set[str]:
    """Every field name (and alias) `nvidia-smi --help-query-gpu` lists: the lines that open with
    a quoted name, e.g. `"power.draw.average" or "gpu.power.draw.average"`."""
    found: set[str] = set()
    for m in _HELP_FIELD.finditer(text):
        found.update(_HELP_ALIAS.findall(m.group(0)))
    return found
