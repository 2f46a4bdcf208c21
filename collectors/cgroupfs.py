"""Pure parsers for cgroup interface files (v1 and v2) and the cgroup part of /proc/mounts.

Each parser takes the text of one file and returns plain numbers, so it can be tested on captured
files and the collector reads every file exactly once. Parsing is `str.split` only: the container
collector runs every second over hundreds of cgroups, and kernel files have a fixed layout.
Malformed text raises ValueError; the caller names the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "USER_HZ",
    "V1_CONTROLLERS",
    "V1_UNLIMITED",
    "CgroupMounts",
    "parse_blkio",
    "parse_cfs_quota",
    "parse_cpu_max",
    "parse_flat_keyed",
    "parse_int",
    "parse_io_stat",
    "parse_mounts",
    "parse_pressure",
]

USER_HZ = 100
"""Unit of v1 cpuacct.stat. The kernel reports USER_HZ ticks, fixed at 100 on every Linux ABI
(it is not CONFIG_HZ), so a capture from another machine parses the same way."""

V1_UNLIMITED = 1 << 62
"""v1 memory limits at or above this are the kernel's "no limit" (PAGE_COUNTER_MAX × page size,
e.g. 9223372036854771712 with 4 KiB pages); no machine has 4 EiB of memory."""

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids")
"""The v1 controllers whose files the container collector reads."""


@dataclass(frozen=True, slots=True)
class CgroupMounts:
    """Where the cgroup hierarchies are mounted, as listed in /proc/mounts (host paths)."""

    v2: tuple[str, ...] = ()
    """cgroup2 mount points, in /proc/mounts order (bind mounts can list the same tree twice)."""
    v1: dict[str, str] = field(default_factory=dict)
    """v1 controller → mount point; co-mounted controllers (cpu,cpuacct) share one."""


def _unescape(path: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes (\040 ...).
    if "\\" not in path:
        return path
    out: list[str] = []
    i = 0
    while i < len(path):
        code = path[i + 1 : i + 4]
        if path[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> CgroupMounts:
    """cgroup2 mount points and v1 controller mount points from /proc/mounts."""
    v2: list[str] = []
    v1: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        fstype = parts[2]
        if fstype == "cgroup2":
            v2.append(_unescape(parts[1]))
        elif fstype == "cgroup":
            for option in parts[3].split(","):
                if option in V1_CONTROLLERS and option not in v1:
                    v1[option] = _unescape(parts[1])
    return CgroupMounts(v2=tuple(v2), v1=v1)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.stat, memory.events, cpuacct.stat, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1])
    return out


def parse_int(text: str) -> int | None:
    """A single-value file (memory.current, pids.current, ...); "max" (no limit) gives None."""
    value = text.strip()
    return None if value == "max" else int(value)


def parse_cpu_max(text: str) -> float | None:
    """v2 cpu.max "QUOTA PERIOD" in cores: "250000 100000" → 2.5; "max 100000" → None."""
    quota, period = text.split()
    if quota == "max":
        return None
    return int(quota) / int(period)


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """v1 cpu.cfs_quota_us / cpu.cfs_period_us in cores; a quota of -1 (no limit) gives None."""
    quota = int(quota_text)
    if quota < 0:
        return None
    return quota / int(period_text)


def parse_pressure(text: str) -> dict[str, float]:
    """PSI file → {"some": seconds, "full": seconds} from the cumulative `total=` microseconds."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        for item in reversed(parts):  # total= is the last field today; don't rely on it
            if item.startswith("total="):
                out[parts[0]] = int(item[6:]) / 1e6
                break
    return out


def parse_io_stat(text: str) -> dict[str, dict[str, int]]:
    """v2 io.stat: {"8:0": {"rbytes": .., "wbytes": .., "rios": .., "wios": .., ...}} per device."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        stats: dict[str, int] = {}
        for item in parts[1:]:
            key, sep, value = item.partition("=")
            if sep:
                stats[key] = int(value)
        out[parts[0]] = stats
    return out


def parse_blkio(text: str) -> dict[str, dict[str, int]]:
    """v1 blkio "MAJ:MIN Op N" lines: {"8:0": {"Read": .., "Write": .., ...}}; the trailing
    device-less "Total N" line is skipped."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return out
