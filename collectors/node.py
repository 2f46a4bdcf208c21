"""Host metrics: CPU, memory, load, disk I/O and PSI from /proc, filesystem fullness from statvfs.

Values and default filters follow node_exporter, so its dashboards read our series unchanged and
its end-to-end output over the same fixture files is our test oracle. Everything is read under
`root`, so the collector can watch a host from a container (root: /host) and tests run on real
captures. Only /proc/stat is required; every other file is a section that is skipped when the
kernel lacks it (no /proc/pressure before 4.20, no irq pressure without IRQ time accounting).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.procfs import (
    SECTOR_BYTES,
    USER_HZ,
    DeviceFilter,
    parse_diskstats,
    parse_loadavg,
    parse_meminfo,
    parse_mounts,
    parse_pressure,
    parse_proc_stat,
    read_text,
)
from collectors.registry import register
from telemetry.catalog import Metric
from telemetry.catalog import node as m

__all__ = [
    "DISK_EXCLUDE_DEFAULT",
    "FS_TYPES_EXCLUDE_DEFAULT",
    "MOUNT_POINTS_EXCLUDE_DEFAULT",
    "NodeCollector",
    "NodeConfig",
    "StatVFS",
]

# node_exporter's Linux defaults (diskstats_linux.go, filesystem_linux.go).
DISK_EXCLUDE_DEFAULT = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
"""Partitions of sd/hd/vd/xvd/nvme disks (whole disks are counted), ram, zram, loop and floppy."""
MOUNT_POINTS_EXCLUDE_DEFAULT = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
FS_TYPES_EXCLUDE_DEFAULT = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue"
    r"|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)
"""Pseudo and read-only image filesystems. tmpfs is kept on purpose: a full /dev/shm or /run
breaks jobs just like a full disk."""


class NodeConfig(CollectorConfig):
    root: str = "/"
    """Where the host's /proc is mounted; mount points are statvfs'd below it too."""
    disk_include: re.Pattern[str] | None = None
    """When set, only block devices whose name matches are reported."""
    disk_exclude: re.Pattern[str] | None = re.compile(DISK_EXCLUDE_DEFAULT)
    """Block devices whose name matches are skipped (applied after disk_include); null keeps all."""
    mount_points_exclude: re.Pattern[str] | None = re.compile(MOUNT_POINTS_EXCLUDE_DEFAULT)
    fs_types_exclude: re.Pattern[str] | None = re.compile(FS_TYPES_EXCLUDE_DEFAULT)


class StatVFS(Protocol):
    """The fields of os.statvfs_result we use; tests pass their own values."""

    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bfree(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...
    @property
    def f_files(self) -> int: ...
    @property
    def f_ffree(self) -> int: ...


_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_MEMINFO = (
    (m.MEM_TOTAL, "MemTotal"),
    (m.MEM_FREE, "MemFree"),
    (m.MEM_AVAILABLE, "MemAvailable"),
    (m.MEM_BUFFERS, "Buffers"),
    (m.MEM_CACHED, "Cached"),
    (m.MEM_SHMEM, "Shmem"),
    (m.SWAP_TOTAL, "SwapTotal"),
    (m.SWAP_FREE, "SwapFree"),
)
_MEMINFO_KEYS = frozenset(key for _, key in _MEMINFO)
# (file under /proc/pressure, metric for the `some` total, metric for the `full` total)
_PSI: tuple[tuple[str, Metric | None, Metric | None], ...] = (
    ("cpu", m.PSI_CPU_WAITING, None),
    ("io", m.PSI_IO_WAITING, m.PSI_IO_STALLED),
    ("memory", m.PSI_MEM_WAITING, m.PSI_MEM_STALLED),
    ("irq", None, m.PSI_IRQ_STALLED),
)

T = TypeVar("T")


def _parsed(path: str, parse: Callable[[str], T], text: str) -> T:
    """Run a parser; a file in an unexpected format becomes a CollectorError naming it."""
    try:
        return parse(text)
    except (ValueError, IndexError) as exc:
        raise CollectorError(f"{path}: unexpected format: {exc}") from exc


@register
class NodeCollector(Collector):
    """One cycle reads each /proc file once and emits straight from the parsed fields."""

    name: ClassVar[str] = "node"
    config_model: ClassVar[type[CollectorConfig]] = NodeConfig

    def __init__(self, config: CollectorConfig | None = None, statvfs: Callable[[str], StatVFS] = os.statvfs) -> None:
        super().__init__(config)
        if not isinstance(self.config, NodeConfig):
            raise TypeError(f"NodeCollector needs a NodeConfig, got {type(self.config).__name__}")
        cfg = self.config
        self._statvfs = statvfs
        proc = os.path.join(cfg.root, "proc")
        self._stat_path = os.path.join(proc, "stat")
        self._meminfo_path = os.path.join(proc, "meminfo")
        self._loadavg_path = os.path.join(proc, "loadavg")
        self._diskstats_path = os.path.join(proc, "diskstats")
        self._mounts_path = os.path.join(proc, "mounts")
        self._psi_paths = [(os.path.join(proc, "pressure", res), some, full) for res, some, full in _PSI]
        self._keep_disk = DeviceFilter(cfg.disk_include, cfg.disk_exclude)
        # Mounts rarely change: the filtered list is rebuilt only when /proc/mounts' text does.
        self._mounts_text: str | None = None
        self._cpu_ticks: tuple[int, int] | None = None  # (idle+iowait, busy) at the previous gather
        self._mounts: list[tuple[str, dict[str, str]]] = []

    def availability(self) -> str | None:
        return None if os.path.exists(self._stat_path) else f"{self._stat_path} not found"

    def gather(self, emit: Emit) -> None:
        self._gather_stat(emit)
        self._gather_meminfo(emit)
        self._gather_loadavg(emit)
        self._gather_diskstats(emit)
        self._gather_pressure(emit)
        self._gather_filesystems(emit)

    def _gather_stat(self, emit: Emit) -> None:
        path = self._stat_path
        text = read_text(path)
        if text is None:
            raise CollectorError(f"{path} not found: is root pointing at a Linux /proc?")
        stat = _parsed(path, parse_proc_stat, text)
        idle = busy = 0
        for _cpu, ticks in stat.cpus:
            idle += sum(ticks[3:5])  # idle + iowait
            busy += sum(ticks[:8]) - sum(ticks[3:5])
        if self._cpu_ticks is not None:
            d_idle, d_busy = idle - self._cpu_ticks[0], busy - self._cpu_ticks[1]
            if d_idle >= 0 and d_busy >= 0 and d_idle + d_busy > 0:  # counters reset on hotplug
                emit(m.CPU_BUSY_RATIO, d_busy / (d_idle + d_busy))
        self._cpu_ticks = (idle, busy)
        for cpu, ticks in stat.cpus:
            for mode, t in zip(_CPU_MODES, ticks, strict=False):
                emit(m.CPU_SECONDS, t / USER_HZ, {"cpu": cpu, "mode": mode})
            if len(ticks) >= 10:
                emit(m.CPU_GUEST_SECONDS, ticks[8] / USER_HZ, {"cpu": cpu, "mode": "user"})
                emit(m.CPU_GUEST_SECONDS, ticks[9] / USER_HZ, {"cpu": cpu, "mode": "nice"})
        emit(m.CPU_COUNT, len(stat.cpus))
        for metric, value in (
            (m.BOOT_TIME, stat.boot_time),
            (m.CONTEXT_SWITCHES, stat.context_switches),
            (m.INTERRUPTS, stat.interrupts),
            (m.FORKS, stat.forks),
            (m.PROCS_RUNNING, stat.procs_running),
            (m.PROCS_BLOCKED, stat.procs_blocked),
        ):
            if value is not None:
                emit(metric, value)

    def _gather_meminfo(self, emit: Emit) -> None:
        text = read_text(self._meminfo_path)
        if text is None:
            return
        mem = _parsed(self._meminfo_path, lambda t: parse_meminfo(t, _MEMINFO_KEYS), text)
        for metric, key in _MEMINFO:
            value = mem.get(key)
            if value is not None:  # MemAvailable appeared in 3.14
                emit(metric, value)
        total, available = mem.get("MemTotal"), mem.get("MemAvailable")
        if total and available is not None:
            emit(m.MEM_USED_RATIO, 1.0 - available / total)

    def _gather_loadavg(self, emit: Emit) -> None:
        text = read_text(self._loadavg_path)
        if text is None:
            return
        one, five, fifteen = _parsed(self._loadavg_path, parse_loadavg, text)
        emit(m.LOAD1, one)
        emit(m.LOAD5, five)
        emit(m.LOAD15, fifteen)

    def _gather_diskstats(self, emit: Emit) -> None:
        path = self._diskstats_path
        text = read_text(path)
        if text is None:
            return
        keep = self._keep_disk
        for device, s in _parsed(path, lambda t: parse_diskstats(t, keep), text):
            labels = {"device": device}
            emit(m.DISK_READS, s.reads, labels)
            emit(m.DISK_READ_BYTES, s.read_sectors * SECTOR_BYTES, labels)
            emit(m.DISK_READ_TIME, s.read_ms / 1000, labels)
            emit(m.DISK_WRITES, s.writes, labels)
            emit(m.DISK_WRITTEN_BYTES, s.write_sectors * SECTOR_BYTES, labels)
            emit(m.DISK_WRITE_TIME, s.write_ms / 1000, labels)
            emit(m.DISK_IO_NOW, s.io_now, labels)
            emit(m.DISK_IO_TIME, s.io_ms / 1000, labels)

    def _gather_pressure(self, emit: Emit) -> None:
        for path, some_metric, full_metric in self._psi_paths:
            text = read_text(path)
            if text is None:
                continue
            some, full = _parsed(path, parse_pressure, text)
            if some_metric is not None and some is not None:
                emit(some_metric, some / 1e6)
            if full_metric is not None and full is not None:
                emit(full_metric, full / 1e6)

    def _gather_filesystems(self, emit: Emit) -> None:
        text = read_text(self._mounts_path)
        if text is None:
            return
        if text != self._mounts_text:
            self._mounts = self._select_mounts(_parsed(self._mounts_path, parse_mounts, text))
            self._mounts_text = text
        statvfs = self._statvfs
        # The label dicts are built once per mount table and reused: emit must not mutate them.
        for path, labels in self._mounts:
            try:
                st = statvfs(path)
            except OSError:
                emit(m.FS_DEVICE_ERROR, 1, labels)
                continue
            emit(m.FS_DEVICE_ERROR, 0, labels)
            # f_blocks, f_bfree and f_bavail count fragments (f_frsize), not f_bsize; they are
            # equal on Linux filesystems, and f_frsize is the one POSIX defines for the counts.
            frsize = st.f_frsize
            emit(m.FS_SIZE, st.f_blocks * frsize, labels)
            emit(m.FS_FREE, st.f_bfree * frsize, labels)
            emit(m.FS_AVAIL, st.f_bavail * frsize, labels)
            emit(m.FS_FILES, st.f_files, labels)
            emit(m.FS_FILES_FREE, st.f_ffree, labels)

    def _select_mounts(self, mounts: list[tuple[str, str, str]]) -> list[tuple[str, dict[str, str]]]:
        """(path to statvfs, labels) per reported mount point.

        A mount point mounted over keeps only its last (visible) entry: statvfs sees the top
        mount, and two entries would be two series for the same numbers.
        """
        cfg = self.config
        assert isinstance(cfg, NodeConfig)
        visible: dict[str, tuple[str, str]] = {}
        for device, mountpoint, fstype in mounts:
            visible[mountpoint] = (device, fstype)
        out: list[tuple[str, dict[str, str]]] = []
        for mountpoint, (device, fstype) in visible.items():
            if cfg.fs_types_exclude is not None and cfg.fs_types_exclude.search(fstype):
                continue
            if cfg.mount_points_exclude is not None and cfg.mount_points_exclude.search(mountpoint):
                continue
            path = mountpoint if cfg.root == "/" else os.path.join(cfg.root, mountpoint.lstrip("/"))
            out.append((path, {"device": device, "mountpoint": mountpoint, "fstype": fstype}))
        return out
