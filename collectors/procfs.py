"""Parsers for Linux /proc files, each a pure function of the file's text, plus the one reader
and the device filter the node and interconnect collectors share.

The collectors run every second, so the parsers use str.split/partition (no regexes) and convert
only the fields a metric uses; a `keep` predicate lets a caller skip excluded devices before any
int() conversion.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Container
from typing import NamedTuple

from collectors.base import CollectorError

__all__ = [
    "SECTOR_BYTES",
    "USER_HZ",
    "DeviceFilter",
    "DiskStats",
    "NetDevStats",
    "ProcStat",
    "parse_diskstats",
    "parse_loadavg",
    "parse_meminfo",
    "parse_mounts",
    "parse_net_dev",
    "parse_pressure",
    "parse_proc_stat",
    "read_text",
]

USER_HZ = 100.0
"""Ticks per second in /proc/stat. The kernel reports USER_HZ (100 on every Linux ABI), not the
internal HZ, so node_exporter hard-codes it too."""

SECTOR_BYTES = 512
"""/proc/diskstats counts 512-byte sectors whatever the device's block size (Documentation/block/stat.rst)."""

_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EOPNOTSUPP})
# EOPNOTSUPP: /proc/pressure/* exist but refuse reads when the kernel is booted with psi=0.


def read_text(path: str) -> str | None:
    """The whole file, or None when it (or the feature behind it) does not exist.

    Any other failure (permissions, I/O) raises CollectorError naming the file: a section that
    cannot be read is an error to surface, not a silently empty section.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise CollectorError(f"cannot read {path}: {exc.strerror or exc}") from exc


class DeviceFilter:
    """include/exclude regexes with the verdict memoised per name.

    Device names repeat every cycle, so each regex runs once per new name instead of once per
    sample; the memo is cleared past `limit` names so veth churn on a container host can't grow it
    without bound.
    """

    __slots__ = ("_exclude", "_include", "_limit", "_seen")

    def __init__(self, include: re.Pattern[str] | None, exclude: re.Pattern[str] | None, limit: int = 4096) -> None:
        self._include = include
        self._exclude = exclude
        self._limit = limit
        self._seen: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        verdict = self._seen.get(name)
        if verdict is None:
            verdict = (self._include is None or self._include.search(name) is not None) and (
                self._exclude is None or self._exclude.search(name) is None
            )
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen[name] = verdict
        return verdict


# -- /proc/stat ------------------------------------------------------------------------------------


class ProcStat(NamedTuple):
    """Per-CPU tick counts (user nice system idle iowait irq softirq steal guest guest_nice; older
    kernels print fewer) and the system-wide counters; None when the kernel omits a line."""

    cpus: list[tuple[str, list[int]]]
    boot_time: int | None
    context_switches: int | None
    interrupts: int | None
    forks: int | None
    procs_running: int | None
    procs_blocked: int | None


def parse_proc_stat(text: str) -> ProcStat:
    cpus: list[tuple[str, list[int]]] = []
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key.startswith("cpu"):
            if key != "cpu":  # the first line is the all-CPU sum; we keep per-CPU series only
                cpus.append((key[3:], [int(v) for v in rest.split()]))
        elif key == "intr":
            # Thousands of per-IRQ columns follow the total: split off the first field only.
            found[key] = int(rest.split(" ", 1)[0])
        elif key in ("btime", "ctxt", "processes", "procs_running", "procs_blocked"):
            found[key] = int(rest)
    get = found.get
    return ProcStat(
        cpus,
        get("btime"),
        get("ctxt"),
        get("intr"),
        get("processes"),
        get("procs_running"),
        get("procs_blocked"),
    )


# -- /proc/meminfo, /proc/loadavg ------------------------------------------------------------------


def parse_meminfo(text: str, keys: Container[str] | None = None) -> dict[str, int]:
    """Field → value in bytes ("kB" means KiB); unit-less fields (HugePages_*) stay counts.
    With `keys`, only those fields are converted (the file has ~55, a collector wants ~8)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if keys is not None and key not in keys:
            continue
        parts = rest.split()
        if not parts:
            continue
        value = int(parts[0])
        out[key] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def parse_loadavg(text: str) -> tuple[float, float, float]:
    one, five, fifteen = text.split(maxsplit=3)[:3]
    return float(one), float(five), float(fifteen)


# -- /proc/diskstats -------------------------------------------------------------------------------


class DiskStats(NamedTuple):
    reads: int
    read_sectors: int
    read_ms: int
    writes: int
    write_sectors: int
    write_ms: int
    io_now: int
    io_ms: int


def parse_diskstats(text: str, keep: Callable[[str], bool] | None = None) -> list[tuple[str, DiskStats]]:
    """(device, stats) per line with at least the 11 classic fields; the discard and flush columns
    of newer kernels are ignored. Devices `keep` rejects are skipped before any conversion."""
    out: list[tuple[str, DiskStats]] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 14 or (keep is not None and not keep(f[2])):
            continue
        out.append(
            (
                f[2],
                DiskStats(int(f[3]), int(f[5]), int(f[6]), int(f[7]), int(f[9]), int(f[10]), int(f[11]), int(f[12])),
            )
        )
    return out


# -- /proc/pressure/* -----------------------------------------------------------------------------


def parse_pressure(text: str) -> tuple[int | None, int | None]:
    """(some total, full total) in microseconds; None for a line the file lacks (irq has no
    `some`, kernels before 5.13 have no cpu `full`)."""
    some = full = None
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        _, sep, total = rest.rpartition("total=")
        if not sep:
            raise ValueError(f"no total= in {line!r}")
        if kind == "some":
            some = int(total)
        elif kind == "full":
            full = int(total)
    return some, full


# -- /proc/mounts ---------------------------------------------------------------------------------


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount fields as octal escapes."""
    if "\\" not in field:
        return field
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[tuple[str, str, str]]:
    """(device, mount point, fstype) per line, in mount order."""
    out: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        f = line.split(" ", 3)
        if len(f) < 3:
            continue
        out.append((_unescape(f[0]), _unescape(f[1]), f[2]))
    return out


# -- /proc/net/dev --------------------------------------------------------------------------------


class NetDevStats(NamedTuple):
    rx_bytes: int
    rx_packets: int
    rx_errs: int
    rx_drop: int
    tx_bytes: int
    tx_packets: int
    tx_errs: int
    tx_drop: int


def parse_net_dev(text: str, keep: Callable[[str], bool] | None = None) -> list[tuple[str, NetDevStats]]:
    """(interface, stats) per line after the two header lines.

    The name ends at the *last* colon: names may contain colons ("ibr10:30") and large counters
    abut the colon with no space ("eth0:68210035552").
    """
    out: list[tuple[str, NetDevStats]] = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.rpartition(":")
        if not sep:
            continue
        name = name.strip()
        if keep is not None and not keep(name):
            continue
        f = rest.split()
        if len(f) < 16:
            raise ValueError(f"interface {name!r} has {len(f)} fields, expected 16")
        out.append(
            (
                name,
                NetDevStats(int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[8]), int(f[9]), int(f[10]), int(f[11])),
            )
        )
    return out
