"""Field-level helpers for Slurm's JSON: the value shapes that change between plugin versions.

Slurm has spelled the same quantity several ways: a plain number (openapi/v0.0.37, v0.0.38), a
`{set, infinite, number}` wrapper (data_parser/v0.0.39 onwards, and already in some 22.05 fields),
and the C sentinels NO_VAL / INFINITE leaking through as huge integers. States were one string
(v0.0.37/38) and became lists of base state plus flags (v0.0.40). Each helper accepts every shape,
so the document parsers in `slurm_json` stay one code path for all versions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from telemetry.jobs import JOB_STATES

__all__ = [
    "FINISHED_STATES",
    "exit_status",
    "expand_hostlist",
    "gpus_from_tres_per",
    "gpus_in",
    "integer",
    "job_state",
    "mem_mib_to_bytes",
    "node_state",
    "num",
    "parse_tres",
    "tres_from_list",
    "unix_time",
]

# uint32/uint64 NO_VAL and INFINITE as the old plugins print them (e.g. an unlimited time limit).
_SENTINELS = frozenset({0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFFFFF})
_MIB = 1024 * 1024
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

FINISHED_STATES = frozenset(JOB_STATES) - {"PENDING", "RUNNING", "SUSPENDED", "UNKNOWN"}


def num(value: Any) -> int | float | None:
    """A number from any of Slurm's spellings; None for unset, infinite, NO_VAL or missing.

    Strings of digits are accepted because v0.0.40's meta spells version numbers that way.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value in _SENTINELS:
            return None
        if not _INT64_MIN <= value <= _INT64_MAX:  # no Slurm counter is wider; a store column is not
            raise ValueError(f"{value:.3g} is out of the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):  # Python's json reads NaN and Infinity; Slurm writes neither
            raise ValueError(f"expected a finite number, got {value}")
        return value
    if isinstance(value, Mapping):
        if "number" not in value or value.get("infinite") or not value.get("set", True):
            return None
        return num(value["number"])
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise TypeError(f"expected a number or {{set, infinite, number}}, got {type(value).__name__} {value!r:.60}")


def integer(value: Any) -> int | None:
    n = num(value)
    return None if n is None else int(n)


def unix_time(value: Any) -> int | None:
    """Unix seconds; Slurm writes 0 for "not happened / unknown"."""
    n = num(value)
    return int(n) if n else None


def mem_mib_to_bytes(value: Any) -> int | None:
    """Slurm counts memory in MiB (it calls them MB)."""
    n = num(value)
    return None if n is None else int(n) * _MIB


# --- TRES -------------------------------------------------------------------------------------

_UNIT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_TRES_VALUE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)\s*$", re.IGNORECASE)


def _tres_value(key: str, text: str) -> int | None:
    m = _TRES_VALUE.match(text)
    if not m:
        return None
    number, unit = float(m.group(1)), m.group(2).upper()
    if key == "mem":  # memory is MiB unless a unit says otherwise
        return round(number * (_UNIT[unit] if unit else _MIB))
    return round(number * _UNIT[unit])


def parse_tres(text: Any) -> dict[str, int]:
    """`cpu=2,mem=62.50G,node=1,gres/gpu=4` → {"cpu": 2, "mem": 67108864000, ...}; mem in bytes."""
    if not text or not isinstance(text, str):
        return {}
    out: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            continue
        parsed = _tres_value(key.strip(), value)
        if parsed is not None:
            out[key.strip()] = parsed
    return out


def tres_from_list(items: Any) -> dict[str, int]:
    """sacct's `[{type, name, count}]` TRES lists, keyed like the strings (`gres/gpu`); mem in bytes."""
    out: dict[str, int] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, Mapping):
            continue
        count = num(item.get("count"))
        if count is None or count < 0:  # energy is reported as -2 ("not measured")
            continue
        key = str(item.get("type") or "")
        if item.get("name"):
            key = f"{key}/{item['name']}"
        out[key] = int(count) * _MIB if key == "mem" else int(count)
    return out


def gpus_in(tres: Mapping[str, int]) -> int | None:
    """GPUs in a TRES dict: `gres/gpu`, else the sum over typed `gres/gpu:<type>`."""
    if "gres/gpu" in tres:
        return tres["gres/gpu"]
    typed = [v for k, v in tres.items() if k.startswith("gres/gpu:")]
    return sum(typed) if typed else None


_GPU_SPEC = re.compile(r"(?:^|,)(?:gres[:/])?gpu(?::[^:,=]+)?[:=](\d+)")


def gpus_from_tres_per(text: Any) -> int | None:
    """GPU count from a per-job/per-node request: `gres:gpu:2`, `gres/gpu:a100:2`, `gres/gpu=2`."""
    if not text or not isinstance(text, str):
        return None
    counts = [int(m.group(1)) for m in _GPU_SPEC.finditer(text)]
    return sum(counts) if counts else None


# --- states -----------------------------------------------------------------------------------

_JOB_BASE = frozenset(JOB_STATES)
_JOB_ALIASES = {
    "COMPLETE": "COMPLETED",
    "CANCELED": "CANCELLED",
    "OOM": "OUT_OF_MEMORY",
    "NODEFAIL": "NODE_FAIL",
}
# Flags that older Slurm prints instead of the base state (job_state_string puts flags first).
_JOB_FLAG_STATE = {
    "COMPLETING": "RUNNING",  # still holds its nodes while epilogs run
    "CONFIGURING": "RUNNING",
    "RESIZING": "RUNNING",
    "SIGNALING": "RUNNING",
    "STAGE_OUT": "RUNNING",
    "POWER_UP_NODE": "RUNNING",
    "REQUEUED": "PENDING",
    "REQUEUE_FED": "PENDING",
    "REQUEUE_HOLD": "PENDING",
    "RESV_DEL_HOLD": "PENDING",
    "SPECIAL_EXIT": "PENDING",
    "STOPPED": "SUSPENDED",
    "REVOKED": "CANCELLED",
    "LAUNCH_FAILED": "FAILED",
    "RECONFIG_FAIL": "FAILED",
}


def _words(value: Any) -> list[str]:
    items: Iterable[Any] = value if isinstance(value, list) else [value]
    # "CANCELLED by 0" (sacct) → "CANCELLED"
    return [str(v).strip().split(" ")[0].upper() for v in items if v]


def job_state(value: Any) -> str:
    """One of JOB_STATES from a state string or a [base, flags...] list; UNKNOWN if unrecognised."""
    words = [_JOB_ALIASES.get(w, w) for w in _words(value)]
    for w in words:
        if w in _JOB_BASE:
            return w
    for w in words:
        if w in _JOB_FLAG_STATE:
            return _JOB_FLAG_STATE[w]
    return "UNKNOWN"


def node_state(base: Any, flags: Any = None) -> list[str]:
    """Node state as an upper-case list, base state first: "mixed"+["DRAIN"] → ["MIXED", "DRAIN"]."""
    out: list[str] = []
    for w in [*_words(base), *_words(flags or [])]:
        if w not in out:
            out.append(w)
    return out


# --- exit codes -------------------------------------------------------------------------------


def exit_status(value: Any) -> int | None:
    """The exit status as a shell reports it: the return code, or 128+signal if killed by a signal.

    v0.0.37-v0.0.39 give the raw wait() status as a number (768 = exit 3, 15 = SIGTERM); sacct's
    v0.0.38 and everything from v0.0.40 give `{status, return_code, signal}`.
    """
    if isinstance(value, Mapping) and ("return_code" in value or "status" in value):
        status = _words(value.get("status"))
        signal = value.get("signal")
        if "SIGNALED" in status and isinstance(signal, Mapping):
            sig = num(signal.get("id", signal.get("signal_id")))
            if sig is not None:
                return 128 + int(sig)
        rc = num(value.get("return_code"))
        return None if rc is None else int(rc)
    raw = num(value)
    if raw is None:
        return None
    raw = int(raw)
    return 128 + (raw & 0x7F) if raw & 0x7F else (raw >> 8) & 0xFF


# --- host lists -------------------------------------------------------------------------------

_NO_NODES = frozenset({"", "(null)", "None assigned", "N/A"})


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def _expand_one(part: str) -> list[str]:
    open_at = part.find("[")
    if open_at < 0:
        return [part]
    close_at = part.find("]", open_at)
    if close_at < 0:
        raise ValueError(f"unbalanced '[' in host list {part!r}")
    head, body, tail = part[:open_at], part[open_at + 1 : close_at], part[close_at + 1 :]
    tails = _expand_one(tail)
    names: list[str] = []
    for rng in body.split(","):
        lo, sep, hi = rng.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad range {rng!r} in host list {part!r}")
        width = len(lo)
        for n in range(int(lo), int(hi if sep else lo) + 1):
            names.extend(f"{head}{n:0{width}d}{t}" for t in tails)
    return names


def expand_hostlist(expr: Any) -> list[str]:
    """Slurm's compressed host list (`cn[001-003,7],gpu1`) as names; "(null)" etc. → []."""
    if not isinstance(expr, str) or expr.strip() in _NO_NODES:
        return []
    return [name for part in _split_top(expr.strip()) for name in _expand_one(part)]
