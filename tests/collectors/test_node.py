"""Node collector: against node_exporter's e2e output over its own /proc fixture, on a capture of
this project's Debian 12 Firecracker VM (expected numbers copied from the captured lines), and
on the live machine. Fixture sources: tests/fixtures/*/PROVENANCE.md."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest
from pydantic import ValidationError

from collectors import registry
from collectors.base import CollectorError, Recorder
from collectors.node import NodeCollector, NodeConfig
from collectors.procfs import (
    parse_diskstats,
    parse_meminfo,
    parse_mounts,
    parse_pressure,
    parse_proc_stat,
)
from telemetry.catalog import node as m
from tests.collectors.node_exporter_oracle import ROOT, compare, their_series
from tests.conftest import FIXTURES

FIRECRACKER = FIXTURES / "node" / "debian12-firecracker"


class FakeStatVFS(NamedTuple):
    f_frsize: int = 4096
    f_blocks: int = 1000
    f_bfree: int = 600
    f_bavail: int = 500
    f_files: int = 300
    f_ffree: int = 200


class StatVFSSpy:
    """statvfs stand-in (fixture mount points can't be statvfs'd) that records the paths asked."""

    def __init__(self, fail: str | None = None) -> None:
        self.paths: list[str] = []
        self.fail = fail

    def __call__(self, path: str) -> FakeStatVFS:
        self.paths.append(path)
        if self.fail is not None and path.endswith(self.fail):
            raise PermissionError(13, "Permission denied", path)
        return FakeStatVFS()


def gather(root: Path | str, statvfs: StatVFSSpy | None = None, **options: object) -> Recorder:
    rec = Recorder(default_ts_ns=1)
    config = NodeConfig.model_validate({"root": str(root), **options})
    NodeCollector(config, statvfs=statvfs or StatVFSSpy()).gather(rec)
    return rec


def labelsets(rec: Recorder, metric: str) -> set[frozenset[tuple[str, str]]]:
    return {frozenset(s.labels.items()) for s in rec.samples if s.metric == metric}


# -- the oracle: node_exporter's e2e output over the same files ----------------------------------


def test_every_sample_with_a_node_exporter_counterpart_matches_it() -> None:
    rec = gather(ROOT)
    result = compare(rec.samples)
    assert result.mismatches == []
    # 8 CPUs × (8 modes + 2 guest modes), 6 from /proc/stat's other lines, 3 load averages,
    # 7 meminfo fields (the fixture predates MemAvailable), 15 disks × 8, 4 PSI totals.
    assert result.compared == 8 * 10 + 6 + 3 + 7 + 15 * 8 + 4
    # Ours only: node_exporter has no CPU count, and its e2e run disables the filesystem collector.
    assert result.unmatched == {
        "node_cpu_count",
        "node_filesystem_avail_bytes",
        "node_filesystem_device_error",
        "node_filesystem_files",
        "node_filesystem_files_free",
        "node_filesystem_free_bytes",
        "node_filesystem_size_bytes",
    }


def test_we_report_every_series_node_exporter_does_for_our_metrics() -> None:
    """The reverse direction: same default device filter, no series missing or extra."""
    rec = gather(ROOT)
    for metric in rec.names() - {"node_cpu_count"} - {n for n in rec.names() if "filesystem" in n}:
        assert labelsets(rec, metric) == their_series(metric), metric
    # Upstream's pressure/memory is not in the fixture (see PROVENANCE.md): only those two differ.
    memory_psi = {m.PSI_MEM_WAITING.name, m.PSI_MEM_STALLED.name}
    assert all(their_series(name) for name in memory_psi)
    assert not memory_psi & rec.names()


def test_spot_values_from_the_node_exporter_fixture() -> None:
    rec = gather(ROOT)
    # cpu0 line: "cpu0 44490 19 21045 1087069 220 1 3410 0 2 1"
    assert rec.get(m.CPU_SECONDS, cpu="0", mode="user") == 444.9
    assert rec.get(m.CPU_SECONDS, cpu="0", mode="softirq") == 34.1
    assert rec.get(m.CPU_GUEST_SECONDS, cpu="0", mode="user") == 0.02
    assert rec.get(m.CPU_COUNT) == 8
    # sda: 1003346126 sectors read, 9653880 ms doing I/O
    assert rec.get(m.DISK_READ_BYTES, device="sda") == 1003346126 * 512
    assert rec.get(m.DISK_IO_TIME, device="sda") == 9653.88
    # MemTotal: 3742148 kB
    assert rec.get(m.MEM_TOTAL) == 3742148 * 1024
    # irq: "full avg10=0.00 avg60=0.00 avg300=0.00 total=8494" (no trailing newline)
    assert rec.get(m.PSI_IRQ_STALLED) == 0.008494


def test_default_disk_filter_drops_partitions_and_virtual_devices() -> None:
    disks = {s.labels["device"] for s in gather(ROOT).samples if s.metric == m.DISK_READS.name}
    assert {"sda", "vda", "nvme0n1", "dm-0", "mmcblk0", "mmcblk0p1", "sr0"} <= disks
    assert not disks & {"sda1", "vda1", "nvme0n1p1", "sdb1", "ram0", "loop0", "fd0"}


def test_disk_include_and_exclude() -> None:
    rec = gather(ROOT, disk_include=r"^sd[a-z]\d*$", disk_exclude=None)
    assert {s.labels["device"] for s in rec.samples if s.metric == m.DISK_READS.name} == {
        "sda", "sda1", "sda2", "sda3", "sda4", "sdb", "sdb1", "sdb2", "sdc", "sdc1",
    }  # fmt: skip


# -- filesystems ---------------------------------------------------------------------------------


def test_filesystems_follow_node_exporter_default_exclusions() -> None:
    spy = StatVFSSpy()
    rec = gather(ROOT, spy)
    assert labelsets(rec, m.FS_SIZE.name) == {
        frozenset({"device": d, "mountpoint": mp, "fstype": t}.items())
        for d, mp, t in [
            ("/dev/dm-2", "/", "ext4"),  # the later entry for "/" hides "rootfs / rootfs"
            ("tmpfs", "/run", "tmpfs"),
            ("tmpfs", "/run/lock", "tmpfs"),
            ("/dev/sda3", "/boot", "ext2"),
            ("tmpfs", "/run/user/1000", "tmpfs"),
            ("gvfsd-fuse", "/run/user/1000/gvfs", "fuse.gvfsd-fuse"),
        ]
    }
    # statvfs is asked below root, the label keeps the host's mount point
    assert spy.paths[0] == os.path.join(str(ROOT), "")
    assert os.path.join(str(ROOT), "boot") in spy.paths
    assert rec.get(m.FS_SIZE, mountpoint="/boot") == 1000 * 4096
    assert rec.get(m.FS_FREE, mountpoint="/boot") == 600 * 4096
    assert rec.get(m.FS_AVAIL, mountpoint="/boot") == 500 * 4096
    assert rec.get(m.FS_FILES, mountpoint="/boot") == 300
    assert rec.get(m.FS_FILES_FREE, mountpoint="/boot") == 200
    assert rec.get(m.FS_DEVICE_ERROR, mountpoint="/boot") == 0


def test_failed_statvfs_marks_the_mount_and_continues() -> None:
    rec = gather(ROOT, StatVFSSpy(fail="boot"))
    assert rec.get(m.FS_DEVICE_ERROR, mountpoint="/boot") == 1
    assert "/boot" not in {s.labels["mountpoint"] for s in rec.samples if s.metric == m.FS_SIZE.name}
    assert rec.get(m.FS_SIZE, mountpoint="/") == 1000 * 4096


def test_mount_table_is_reparsed_only_when_it_changes(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "proc", tmp_path / "proc")
    collector = NodeCollector(NodeConfig(root=str(tmp_path)), statvfs=StatVFSSpy())
    collector.gather(Recorder())
    (tmp_path / "proc" / "mounts").write_text("/dev/sdz1 /data xfs rw 0 0\n")
    rec = Recorder()
    collector.gather(rec)
    assert {s.labels["mountpoint"] for s in rec.samples if s.metric == m.FS_SIZE.name} == {"/data"}


# -- missing and malformed files ------------------------------------------------------------------


def test_missing_proc_stat_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = os.path.join(str(tmp_path), "proc", "stat")
    with pytest.raises(CollectorError, match=re.escape(path)):
        gather(tmp_path)
    assert path in (NodeCollector(NodeConfig(root=str(tmp_path))).availability() or "")


def test_missing_pressure_dir_means_no_psi_samples(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "proc", tmp_path / "proc")
    shutil.rmtree(tmp_path / "proc" / "pressure")
    rec = gather(tmp_path)
    assert not {n for n in rec.names() if n.startswith("node_pressure_")}
    assert rec.get(m.LOAD1) == 0.21  # the other sections are unaffected


def test_only_proc_stat_is_required(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    shutil.copy(ROOT / "proc" / "stat", tmp_path / "proc" / "stat")
    rec = gather(tmp_path)
    assert rec.names() == {
        m.CPU_SECONDS.name, m.CPU_GUEST_SECONDS.name, m.CPU_COUNT.name, m.BOOT_TIME.name,
        m.CONTEXT_SWITCHES.name, m.INTERRUPTS.name, m.FORKS.name, m.PROCS_RUNNING.name,
        m.PROCS_BLOCKED.name,
    }  # fmt: skip


def test_unreadable_section_is_an_error_naming_the_file(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "proc", tmp_path / "proc")
    (tmp_path / "proc" / "meminfo").unlink()
    (tmp_path / "proc" / "meminfo").mkdir()  # reading it fails with EISDIR, not ENOENT
    with pytest.raises(CollectorError, match="meminfo"):
        gather(tmp_path)


def test_malformed_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "proc", tmp_path / "proc")
    (tmp_path / "proc" / "loadavg").write_text("garbage\n")
    with pytest.raises(CollectorError, match="loadavg"):
        gather(tmp_path)


# -- config ---------------------------------------------------------------------------------------


def test_unknown_config_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="disk_exlude"):
        NodeConfig.model_validate({"root": "/", "disk_exlude": "^loop"})


def test_invalid_regex_is_rejected() -> None:
    with pytest.raises(ValidationError, match="disk_include"):
        NodeConfig.model_validate({"disk_include": "(sd"})


def test_registered_as_node() -> None:
    assert registry.get("node") is NodeCollector


# -- a capture of this project's Debian 12 Firecracker VM (kernel 6.18) ------------------------


def test_debian12_firecracker_capture() -> None:
    spy = StatVFSSpy()
    rec = gather(FIRECRACKER, spy)
    # stat: "cpu0 4471 0 3578 805383 203 0 28 156 0 0" (steal 156: a VM),
    #       "cpu1 10965 0 5309 797380 746 0 127 167 0 0"
    assert rec.get(m.CPU_COUNT) == 2
    assert rec.get(m.CPU_SECONDS, cpu="0", mode="steal") == 1.56
    assert rec.get(m.CPU_SECONDS, cpu="1", mode="user") == 109.65
    assert rec.get(m.CPU_SECONDS, cpu="1", mode="idle") == 7973.8
    assert rec.get(m.CPU_GUEST_SECONDS, cpu="1", mode="user") == 0
    # "btime 1795280700", "ctxt 866344", "processes 11503", "intr 464158 ...", "procs_running 1"
    assert rec.get(m.BOOT_TIME) == 1795280700
    assert rec.get(m.CONTEXT_SWITCHES) == 866344
    assert rec.get(m.FORKS) == 11503
    assert rec.get(m.INTERRUPTS) == 464158
    assert rec.get(m.PROCS_RUNNING) == 1
    # meminfo: "MemTotal: 24684092 kB", "MemAvailable: 24223860 kB", "Shmem: 8856 kB", "SwapTotal: 0 kB"
    assert rec.get(m.MEM_TOTAL) == 25276510208
    assert rec.get(m.MEM_AVAILABLE) == 24805232640
    assert rec.get(m.MEM_SHMEM) == 9068544
    assert rec.get(m.SWAP_TOTAL) == 0
    # loadavg: "0.12 0.23 0.13 1/91 11504"
    assert (rec.get(m.LOAD1), rec.get(m.LOAD5), rec.get(m.LOAD15)) == (0.12, 0.23, 0.13)
    # diskstats, 17 fields (kernel ≥ 5.5):
    # "254 0 vda 86418 21401 7514154 38060 17903 34099 4086712 17937 0 15916 ..."
    assert rec.get(m.DISK_READS, device="vda") == 86418
    assert rec.get(m.DISK_READ_BYTES, device="vda") == 3847246848
    assert rec.get(m.DISK_READ_TIME, device="vda") == 38.06
    assert rec.get(m.DISK_WRITES, device="vda") == 17903
    assert rec.get(m.DISK_WRITTEN_BYTES, device="vda") == 2092396544
    assert rec.get(m.DISK_WRITE_TIME, device="vda") == 17.937
    assert rec.get(m.DISK_IO_TIME, device="vda") == 15.916
    disks = {s.labels["device"] for s in rec.samples if s.metric == m.DISK_READS.name}
    assert disks == {"vda"}  # zram0 and loop0-7 excluded by default
    # pressure: cpu "some ... total=18208878", io "full ... total=7095261", memory all zero
    assert rec.get(m.PSI_CPU_WAITING) == 18.208878
    assert rec.get(m.PSI_IO_WAITING) == 7.642005
    assert rec.get(m.PSI_IO_STALLED) == 7.095261
    assert rec.get(m.PSI_MEM_WAITING) == 0
    assert rec.get(m.PSI_MEM_STALLED) == 0
    assert m.PSI_IRQ_STALLED.name not in rec.names()  # no /proc/pressure/irq on this kernel
    # mounts: "/dev/vda / ext4"; /dev/shm and /dev/pts are listed twice but excluded (under /dev),
    # as are /sys/fs/cgroup (tmpfs under /sys) and the cgroup mounts
    assert rec.get(m.FS_SIZE, mountpoint="/", device="/dev/vda", fstype="ext4") == 1000 * 4096
    assert not {s.labels["mountpoint"] for s in rec.samples if s.metric == m.FS_SIZE.name} & {
        "/dev/shm", "/dev/pts", "/sys/fs/cgroup", "/proc", "/sys",
    }  # fmt: skip


# -- the live machine -----------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_live_machine() -> None:
    rec = Recorder()
    NodeCollector(NodeConfig()).gather(rec)
    names = rec.names()
    cpus = {s.labels["cpu"] for s in rec.samples if s.metric == m.CPU_SECONDS.name}
    assert rec.get(m.CPU_COUNT) == len(cpus)
    assert rec.get(m.CPU_COUNT) >= 1
    assert rec.get(m.MEM_TOTAL) > 0
    assert {m.LOAD1.name, m.BOOT_TIME.name} <= names
    assert rec.get(m.FS_DEVICE_ERROR, mountpoint="/") == 0
    assert rec.get(m.FS_SIZE, mountpoint="/") > 0


# -- parsers --------------------------------------------------------------------------------------


def test_parse_proc_stat_old_kernel_with_fewer_columns() -> None:
    # 2.6.24-era kernels print no guest_nice column; 2.6.11-era no steal
    stat = parse_proc_stat("cpu  1 2 3 4 5 6 7 8 9\ncpu0 1 2 3 4 5 6 7\nbtime 5\n")
    assert stat.cpus == [("0", [1, 2, 3, 4, 5, 6, 7])]
    assert (stat.boot_time, stat.context_switches) == (5, None)


def test_parse_pressure_lines() -> None:
    assert parse_pressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=8494") == (None, 8494)
    assert parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n") == (7, None)
    with pytest.raises(ValueError):
        parse_pressure("some avg10=0.00\n")


def test_parse_mounts_unescapes_octal() -> None:
    assert parse_mounts("/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n") == [("/dev/sdb1", "/mnt/my disk", "ext4")]


def test_parse_meminfo_units_and_key_filter() -> None:
    text = "MemTotal:        3742148 kB\nHugePages_Total:       4\n"
    assert parse_meminfo(text) == {"MemTotal": 3742148 * 1024, "HugePages_Total": 4}
    assert parse_meminfo(text, {"HugePages_Total"}) == {"HugePages_Total": 4}


def test_parse_diskstats_skips_short_lines_and_rejected_devices() -> None:
    text = (
        "   8    1 sda1 250 2000 0 0\n"  # 2.6.25-era partition line: too short, skipped
        "   8    0 sda 1 2 3 4 5 6 7 8 9 10 11\n"
        "   7    0 loop0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
    rows = parse_diskstats(text, keep=lambda name: not name.startswith("loop"))
    assert [(name, tuple(s)) for name, s in rows] == [("sda", (1, 3, 4, 5, 7, 8, 9, 10))]


def test_derived_busy_and_memory_ratios_from_two_real_stat_readings(tmp_path: Path) -> None:
    """node_cpu_busy_ratio needs two readings: the second capture is the first with every CPU's
    user ticks +30 and idle ticks +70, so exactly 30 % of the interval was busy."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(FIRECRACKER, root, symlinks=True)
    stat = root / "proc" / "stat"
    config = NodeConfig.model_validate({"root": str(root)})
    collector = NodeCollector(config, statvfs=StatVFSSpy())
    first = Recorder()
    collector.gather(first)
    assert "node_cpu_busy_ratio" not in first.names()
    lines = []
    for line in stat.read_text().splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cpu") and parts[0] != "cpu":
            parts[1] = str(int(parts[1]) + 30)
            parts[4] = str(int(parts[4]) + 70)
        lines.append(" ".join(parts))
    stat.write_text("\n".join(lines) + "\n")
    second = Recorder()
    collector.gather(second)
    assert second.get("node_cpu_busy_ratio") == pytest.approx(0.3, abs=1e-12)
    total, available = second.get("node_memory_MemTotal_bytes"), second.get("node_memory_MemAvailable_bytes")
    assert second.get("node_memory_used_ratio") == pytest.approx(1 - available / total)
