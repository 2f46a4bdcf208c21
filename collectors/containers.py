"""Per-container CPU, memory, block I/O, pids and pressure from cgroup v1 or v2.

A "container" is any cgroup directory; its `container` label is the path below the hierarchy
root ("/" for the root itself), so Docker, Kubernetes, systemd and Slurm cgroups all look the same.

Which hierarchy (`version: auto`): v1 whenever a v1 resource controller (cpu, cpuacct, memory,
blkio, pids) is mounted, else cgroup2. That is runc's and cAdvisor's rule: on a hybrid host the v2
tree (`/sys/fs/cgroup/unified`) holds no resource controllers, only CPU usage and pressure, and its
paths need not match the v1 ones, so mixing the two would mislabel series. Set `version: v2` to
read the unified tree of a hybrid host anyway.

Semantics kept equal across versions: every value is hierarchical (includes descendant cgroups),
as v2 files and v1 cpuacct.usage / memory.usage_in_bytes are. Hence v1 memory uses `total_rss` /
`total_cache` (not `rss` / `cache`, which exclude children) and v1 block I/O uses
`blkio.throttle.io_service{d,_bytes}_recursive`, falling back to the non-recursive files on kernels
without them. Limits that mean "none" (cpu.max "max", quota -1, v1 limit ≥ 2^62) are not emitted.
A file that is missing (controller not enabled there, cgroup removed mid-walk) skips its metrics.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from re import Pattern
from typing import ClassVar, Literal, TypeVar

from pydantic import Field

from collectors import cgroupfs as cg
from collectors.base import Collector, CollectorConfig, CollectorError, Emit, Unavailable
from collectors.registry import register
from telemetry.catalog import Metric
from telemetry.catalog import container as m

__all__ = ["ContainerCollector", "ContainerConfig"]

T = TypeVar("T")
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENODEV})


class ContainerConfig(CollectorConfig):
    root: str = "/"
    """Filesystem root holding proc/mounts and the cgroup mounts (a captured tree in tests)."""
    version: Literal["auto", "v1", "v2"] = "auto"
    include: tuple[Pattern[str], ...] = ()
    """Report only cgroups whose path matches one of these (re.search, unanchored)."""
    exclude: tuple[Pattern[str], ...] = ()
    """Skip cgroups whose path matches one of these; a match does not hide the children."""
    max_depth: int = Field(default=6, ge=0)
    """Directory levels walked below the root (0 = the root only)."""
    max_containers: int = Field(default=256, ge=1)
    """Bound on the `container` label's cardinality; shallowest paths are kept, the rest counted."""


@dataclass(frozen=True, slots=True)
class _Layout:
    version: Literal["v1", "v2"]
    dirs: dict[str, str] = field(default_factory=dict)
    """v2: {"unified": dir}. v1: controller → dir of that controller's hierarchy root."""


# (file key, metric, divisor) tables: one place that says which kernel field feeds which metric.
_V2_CPU_STAT = (
    ("usage_usec", m.CPU_USAGE, 1e6),
    ("user_usec", m.CPU_USER, 1e6),
    ("system_usec", m.CPU_SYSTEM, 1e6),
    ("nr_periods", m.CFS_PERIODS, 1.0),
    ("nr_throttled", m.CFS_THROTTLED_PERIODS, 1.0),
    ("throttled_usec", m.CFS_THROTTLED_SECONDS, 1e6),
)
_V1_CPU_STAT = (
    ("nr_periods", m.CFS_PERIODS, 1.0),
    ("nr_throttled", m.CFS_THROTTLED_PERIODS, 1.0),
    ("throttled_time", m.CFS_THROTTLED_SECONDS, 1e9),
)
_PRESSURE = (
    ("cpu.pressure", (("some", m.PSI_CPU_WAITING), ("full", m.PSI_CPU_STALLED))),
    ("memory.pressure", (("some", m.PSI_MEM_WAITING), ("full", m.PSI_MEM_STALLED))),
    ("io.pressure", (("some", m.PSI_IO_WAITING), ("full", m.PSI_IO_STALLED))),
)
_V2_IO = (
    ("rbytes", m.IO_READ_BYTES),
    ("wbytes", m.IO_WRITE_BYTES),
    ("rios", m.IO_READS),
    ("wios", m.IO_WRITES),
)
_V1_IO_BYTES = (("Read", m.IO_READ_BYTES), ("Write", m.IO_WRITE_BYTES))
_V1_IO_OPS = (("Read", m.IO_READS), ("Write", m.IO_WRITES))


def _read(path: str) -> str | None:
    """The file's text, or None when it does not exist (or its cgroup vanished meanwhile)."""
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read().decode("ascii", "replace")
    except OSError as exc:
        if exc.errno in _MISSING:
            return None
        raise CollectorError(f"{path}: {exc.strerror or exc}") from exc


def _load(path: str, parse: Callable[[str], T]) -> T | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return parse(text)
    except (ValueError, IndexError) as exc:
        raise CollectorError(f"{path}: cannot parse {text[:80]!r}: {exc}") from exc


def _walk(base: str, max_depth: int) -> Iterator[str]:
    """Relative cgroup paths ("/", "/a", "/a/b", ...) below `base`, at most `max_depth` deep."""
    stack = [("/", base, 0)]
    while stack:
        rel, path, depth = stack.pop()
        yield rel
        if depth >= max_depth:
            continue
        try:
            with os.scandir(path) as entries:
                children = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError as exc:
            if exc.errno in _MISSING:
                continue
            raise CollectorError(f"{path}: {exc.strerror or exc}") from exc
        prefix = "" if rel == "/" else rel
        for name in children:
            stack.append((f"{prefix}/{name}", f"{path}/{name}", depth + 1))


def _depth_key(rel: str) -> tuple[int, str]:
    return (0 if rel == "/" else rel.count("/"), rel)


def _in_dir(base: str, rel: str) -> str:
    return base if rel == "/" else base + rel


@register
class ContainerCollector(Collector):
    """Reads one cgroup hierarchy (v2) or the v1 controller hierarchies, one sample per file field."""

    name: ClassVar[str] = "containers"
    config_model: ClassVar[type[CollectorConfig]] = ContainerConfig

    def __init__(self, config: CollectorConfig | None = None) -> None:
        super().__init__(config)
        self._layout: _Layout | None = None

    @property
    def cfg(self) -> ContainerConfig:
        assert isinstance(self.config, ContainerConfig)
        return self.config

    # -- where the cgroups are -------------------------------------------------------------------

    def _resolve(self) -> _Layout | str:
        """The hierarchy to read, or why there is none. Mounts don't move at run time: cached."""
        if self._layout is not None:
            return self._layout
        root = self.cfg.root
        mounts_path = os.path.join(root, "proc/mounts")
        try:
            with open(mounts_path, encoding="utf-8", errors="replace") as f:
                mounts = cg.parse_mounts(f.read())
        except OSError as exc:
            return f"cannot read {mounts_path}: {exc.strerror or exc}"

        def host(path: str) -> str:
            return os.path.join(root, path.lstrip("/"))

        want = self.cfg.version
        if want in ("auto", "v1") and mounts.v1:
            dirs = {c: host(p) for c, p in mounts.v1.items() if os.path.isdir(host(p))}
            if dirs:
                self._layout = _Layout("v1", dirs)
                return self._layout
        if want in ("auto", "v2"):
            for path in mounts.v2:
                if os.path.isdir(host(path)):
                    self._layout = _Layout("v2", {"unified": host(path)})
                    return self._layout
        kinds = {"auto": "cgroup", "v1": "cgroup v1 (cpu, cpuacct, memory, blkio, pids)", "v2": "cgroup2"}
        return f"no {kinds[want]} hierarchy mounted per {mounts_path}"

    def availability(self) -> str | None:
        layout = self._resolve()
        return layout if isinstance(layout, str) else None

    # -- gather ----------------------------------------------------------------------------------

    def gather(self, emit: Emit) -> None:
        layout = self._resolve()
        if isinstance(layout, str):
            raise Unavailable(layout)
        cfg = self.cfg
        # v1: a path may exist in some controllers' trees only; remember which.
        where: dict[str, list[str]] = {}
        for ctrls, base in _distinct(layout.dirs):
            if not os.path.isdir(base):
                self._layout = None  # unmounted since: resolve again next time
                raise CollectorError(f"cgroup hierarchy {base} is gone")
            for rel in _walk(base, cfg.max_depth):
                where.setdefault(rel, []).extend(ctrls)

        chosen = [rel for rel in where if self._wanted(rel)]
        dropped = max(0, len(chosen) - cfg.max_containers)
        if dropped:
            chosen = sorted(chosen, key=_depth_key)[: cfg.max_containers]
        for rel in chosen:
            labels = {"container": rel}
            if layout.version == "v2":
                _collect_v2(_in_dir(layout.dirs["unified"], rel), labels, emit)
            else:
                dirs = {c: _in_dir(layout.dirs[c], rel) for c in where[rel]}
                _collect_v1(dirs, labels, emit)
        emit(m.CONTAINERS_DROPPED, dropped)

    def _wanted(self, rel: str) -> bool:
        cfg = self.cfg
        if cfg.include and not any(p.search(rel) for p in cfg.include):
            return False
        return not any(p.search(rel) for p in cfg.exclude)


def _distinct(dirs: Mapping[str, str]) -> list[tuple[list[str], str]]:
    """Group controllers sharing a hierarchy (co-mounted cpu,cpuacct) so each tree is walked once."""
    by_dir: dict[str, list[str]] = {}
    for ctrl, base in dirs.items():
        by_dir.setdefault(base, []).append(ctrl)
    return [(ctrls, base) for base, ctrls in by_dir.items()]


def _emit_table(
    stats: Mapping[str, int],
    table: tuple[tuple[str, Metric, float], ...],
    labels: Mapping[str, str],
    emit: Emit,
) -> None:
    for key, metric, divisor in table:
        if key in stats:
            # Division, not multiplication by 1e-6: 528946079 / 1e6 is exactly the double 528.946079.
            emit(metric, stats[key] / divisor, labels)


def _emit_pressure(d: str, labels: Mapping[str, str], emit: Emit) -> None:
    for filename, kinds in _PRESSURE:
        psi = _load(f"{d}/{filename}", cg.parse_pressure)
        if psi:
            for kind, metric in kinds:
                if kind in psi:
                    emit(metric, psi[kind], labels)


def _emit_devices(
    devices: Mapping[str, Mapping[str, int]],
    table: tuple[tuple[str, Metric], ...],
    labels: Mapping[str, str],
    emit: Emit,
) -> None:
    for device, stats in devices.items():
        dev_labels = {**labels, "device": device}
        for key, metric in table:
            if key in stats:
                emit(metric, stats[key], dev_labels)


def _collect_v2(d: str, labels: Mapping[str, str], emit: Emit) -> None:
    if (cpu := _load(f"{d}/cpu.stat", cg.parse_flat_keyed)) is not None:
        _emit_table(cpu, _V2_CPU_STAT, labels, emit)
    if (cores := _load(f"{d}/cpu.max", cg.parse_cpu_max)) is not None:
        emit(m.CPU_QUOTA, cores, labels)
    if (usage := _load(f"{d}/memory.current", cg.parse_int)) is not None:
        emit(m.MEM_USAGE, usage, labels)
    if (limit := _load(f"{d}/memory.max", cg.parse_int)) is not None:
        emit(m.MEM_LIMIT, limit, labels)
    if (mem := _load(f"{d}/memory.stat", cg.parse_flat_keyed)) is not None:
        if "anon" in mem:
            emit(m.MEM_ANON, mem["anon"], labels)
        if "file" in mem:
            emit(m.MEM_FILE, mem["file"], labels)
    if (events := _load(f"{d}/memory.events", cg.parse_flat_keyed)) is not None and "oom_kill" in events:
        emit(m.MEM_OOM_KILLS, events["oom_kill"], labels)
    if (io := _load(f"{d}/io.stat", cg.parse_io_stat)) is not None:
        _emit_devices(io, _V2_IO, labels, emit)
    if (pids := _load(f"{d}/pids.current", cg.parse_int)) is not None:
        emit(m.PIDS, pids, labels)
    _emit_pressure(d, labels, emit)


def _collect_v1(dirs: Mapping[str, str], labels: Mapping[str, str], emit: Emit) -> None:
    if d := dirs.get("cpuacct"):
        if (ns := _load(f"{d}/cpuacct.usage", cg.parse_int)) is not None:
            emit(m.CPU_USAGE, ns / 1e9, labels)
        if (ticks := _load(f"{d}/cpuacct.stat", cg.parse_flat_keyed)) is not None:
            if "user" in ticks:
                emit(m.CPU_USER, ticks["user"] / cg.USER_HZ, labels)
            if "system" in ticks:
                emit(m.CPU_SYSTEM, ticks["system"] / cg.USER_HZ, labels)
    if d := dirs.get("cpu"):
        if (cpu := _load(f"{d}/cpu.stat", cg.parse_flat_keyed)) is not None:
            _emit_table(cpu, _V1_CPU_STAT, labels, emit)
        quota = _load(f"{d}/cpu.cfs_quota_us", cg.parse_int)
        if quota is not None and quota >= 0:  # -1: no limit; then the period is not needed
            period = _load(f"{d}/cpu.cfs_period_us", cg.parse_int)
            if period:
                emit(m.CPU_QUOTA, quota / period, labels)
    if d := dirs.get("memory"):
        if (usage := _load(f"{d}/memory.usage_in_bytes", cg.parse_int)) is not None:
            emit(m.MEM_USAGE, usage, labels)
        limit = _load(f"{d}/memory.limit_in_bytes", cg.parse_int)
        if limit is not None and limit < cg.V1_UNLIMITED:
            emit(m.MEM_LIMIT, limit, labels)
        if (mem := _load(f"{d}/memory.stat", cg.parse_flat_keyed)) is not None:
            rss, cache = mem.get("total_rss", mem.get("rss")), mem.get("total_cache", mem.get("cache"))
            if rss is not None:
                emit(m.MEM_ANON, rss, labels)
            if cache is not None:
                emit(m.MEM_FILE, cache, labels)
        oom = _load(f"{d}/memory.oom_control", cg.parse_flat_keyed)
        if oom is not None and "oom_kill" in oom:  # kernels ≥ 4.13
            emit(m.MEM_OOM_KILLS, oom["oom_kill"], labels)
    if d := dirs.get("blkio"):
        for name, table in (("io_service_bytes", _V1_IO_BYTES), ("io_serviced", _V1_IO_OPS)):
            devices = _load(f"{d}/blkio.throttle.{name}_recursive", cg.parse_blkio)
            if devices is None:
                devices = _load(f"{d}/blkio.throttle.{name}", cg.parse_blkio)
            if devices is not None:
                _emit_devices(devices, table, labels, emit)
    if (d := dirs.get("pids")) and (pids := _load(f"{d}/pids.current", cg.parse_int)) is not None:
        emit(m.PIDS, pids, labels)
