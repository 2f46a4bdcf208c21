"""Container (cgroup) collector on real captures: a cgroup v2 container (couchbase/platform) and
this project's Debian 12 v1/v2 hybrid VM. Expected numbers are copied from the captured files
(see each fixture's PROVENANCE.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from collectors import cgroupfs as cg
from collectors.base import CollectorError, Recorder, Unavailable
from collectors.containers import ContainerCollector, ContainerConfig
from telemetry.catalog import container as m
from tests.conftest import FIXTURES

V2 = FIXTURES / "cgroup" / "v2-couchbase"
HYBRID = FIXTURES / "cgroup" / "v1-debian12-hybrid"
SELF_MEM = "/process_api/f7f250b02482c0876d2939d69b01f028"
PROCESS_API_CHILDREN = {
    "/process_api/2c70adeb3217339a70d74e169eb8b1ab",
    "/process_api/3fd7c0766f5cd53ad8573bfdcee585a5",
    "/process_api/4062346500a688a735573c4e3c5630ff",
    "/process_api/9b1ddfe976d63508aadbaf83c4d0ad87",
    "/process_api/ade2d759c3976c384f0e7853516754bf",
    SELF_MEM,
}


def gather(root: Path | str, **options: object) -> Recorder:
    rec = Recorder(default_ts_ns=1)
    ContainerCollector(ContainerConfig.model_validate({"root": str(root), **options})).gather(rec)
    return rec


def containers(rec: Recorder, metric: object = None) -> set[str]:
    """Container labels seen, for one metric or for all."""
    name = getattr(metric, "name", None)
    return {s.labels["container"] for s in rec.samples if "container" in s.labels and name in (None, s.metric)}


# -- pure parsers -----------------------------------------------------------------------------------


def test_parse_mounts_pure_v2_and_hybrid() -> None:
    pure = cg.parse_mounts((V2 / "proc/mounts").read_text())
    assert pure.v2 == ("/sys/fs/cgroup",)
    assert pure.v1 == {}
    hybrid = cg.parse_mounts((HYBRID / "proc/mounts").read_text())
    assert hybrid.v2 == ("/sys/fs/cgroup/unified",)
    assert hybrid.v1 == {
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "blkio": "/sys/fs/cgroup/blkio",
        "pids": "/sys/fs/cgroup/pids",
    }


def test_parsers_on_captured_files() -> None:
    v2 = V2 / "sys/fs/cgroup"
    assert cg.parse_cpu_max((v2 / "cpu.max").read_text()) == 2.5
    assert cg.parse_cpu_max("max 100000\n") is None  # the kernel's spelling of "no limit"
    assert cg.parse_int((v2 / "memory.max").read_text()) == 8589934592
    assert cg.parse_int("max\n") is None
    assert cg.parse_io_stat((v2 / "io.stat").read_text()) == {
        "8:32": {"rbytes": 40824832, "wbytes": 824999936, "rios": 2703, "wios": 1073, "dbytes": 0, "dios": 0}
    }
    assert cg.parse_pressure((v2 / "cpu.pressure").read_text()) == {"some": 576.908731, "full": 338.250181}
    blk = HYBRID / "sys/fs/cgroup/blkio/ctwin-capture"
    assert cg.parse_blkio((blk / "blkio.throttle.io_service_bytes_recursive").read_text()) == {
        "254:0": {
            "Read": 11001856,
            "Write": 8396800,
            "Sync": 27787264,
            "Async": 0,
            "Discard": 8388608,
            "Total": 27787264,
        }
    }
    for rel, cores in (("", None), ("ctwin-capture/", 0.5)):  # quota -1 = unlimited; 50000/100000
        cpu = HYBRID / "sys/fs/cgroup/cpu" / rel
        quota, period = (cpu / "cpu.cfs_quota_us").read_text(), (cpu / "cpu.cfs_period_us").read_text()
        assert cg.parse_cfs_quota(quota, period) == cores


def test_mount_paths_with_escaped_spaces() -> None:
    assert cg.parse_mounts("cgroup2 /run/my\\040cgroup cgroup2 rw 0 0\n").v2 == ("/run/my cgroup",)


# -- cgroup v2 ----------------------------------------------------------------------------------------


def test_v2_container_exact_values() -> None:
    rec = gather(V2)
    c = {"container": "/"}
    assert rec.get(m.CPU_USAGE, **c) == 528.946079  # usage_usec 528946079
    assert rec.get(m.CPU_USER, **c) == 486.652575
    assert rec.get(m.CPU_SYSTEM, **c) == 42.293504
    assert rec.get(m.CFS_PERIODS, **c) == 2914
    assert rec.get(m.CFS_THROTTLED_PERIODS, **c) == 222
    assert rec.get(m.CFS_THROTTLED_SECONDS, **c) == 2.261444
    assert rec.get(m.CPU_QUOTA, **c) == 2.5  # cpu.max "250000 100000"
    assert rec.get(m.MEM_USAGE, **c) == 2766684160
    assert rec.get(m.MEM_LIMIT, **c) == 8589934592
    assert rec.get(m.MEM_ANON, **c) == 2147508224
    assert rec.get(m.MEM_FILE, **c) == 590389248
    assert rec.get(m.MEM_OOM_KILLS, **c) == 0
    dev = {"container": "/", "device": "8:32"}
    assert rec.get(m.IO_READ_BYTES, **dev) == 40824832
    assert rec.get(m.IO_WRITE_BYTES, **dev) == 824999936
    assert rec.get(m.IO_READS, **dev) == 2703
    assert rec.get(m.IO_WRITES, **dev) == 1073
    assert rec.get(m.PIDS, **c) == 14
    assert rec.get(m.PSI_CPU_WAITING, **c) == 576.908731
    assert rec.get(m.PSI_CPU_STALLED, **c) == 338.250181
    assert rec.get(m.PSI_MEM_WAITING, **c) == 0.446327
    assert rec.get(m.PSI_MEM_STALLED, **c) == 0.308567
    assert rec.get(m.PSI_IO_WAITING, **c) == 4.120174
    assert rec.get(m.PSI_IO_STALLED, **c) == 4.106664
    assert rec.get(m.CONTAINERS_DROPPED) == 0
    # The plain files cpu, io, memory in the capture are not cgroups.
    assert containers(rec) == {"/"}
    assert len(rec.samples) == 24


def test_missing_controller_files_skip_only_their_metrics(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(V2, root)
    for f in (root / "sys/fs/cgroup").glob("memory.*"):
        f.unlink()
    rec = gather(root)
    assert rec.get(m.CPU_USAGE, container="/") == 528.946079
    assert not {m.MEM_USAGE.name, m.MEM_LIMIT.name, m.MEM_ANON.name, m.PSI_MEM_WAITING.name} & rec.names()


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(V2, root)
    (root / "sys/fs/cgroup/pids.current").write_text("fourteen\n")
    with pytest.raises(CollectorError, match=r"sys/fs/cgroup/pids\.current: cannot parse"):
        gather(root)


# -- cgroup v1 (hybrid host) --------------------------------------------------------------------------


def test_hybrid_auto_reads_v1_exact_values() -> None:
    rec = gather(HYBRID)
    root = {"container": "/"}
    assert rec.get(m.CPU_USAGE, **root) == 204.786548034  # cpuacct.usage 204786548034 ns
    assert rec.get(m.CPU_USER, **root) == 133.43  # cpuacct.stat user 13343 ticks / USER_HZ 100
    assert rec.get(m.CPU_SYSTEM, **root) == 71.33
    assert rec.get(m.CFS_PERIODS, **root) == 0
    assert rec.get(m.MEM_USAGE, **root) == 204226560
    assert rec.get(m.MEM_ANON, **root) == 104128512  # total_rss (hierarchical), not rss 8278016
    assert rec.get(m.MEM_FILE, **root) == 93413376  # total_cache, not cache 9203712
    assert rec.get(m.MEM_OOM_KILLS, **root) == 0
    assert rec.get(m.IO_READ_BYTES, container="/", device="254:0") == 98783232
    assert rec.get(m.IO_WRITE_BYTES, container="/", device="254:0") == 8568832
    # Unlimited: quota -1 and limit 9223372036854771712 are not emitted; the v1 pids root has no pids.current.
    for absent in (m.CPU_QUOTA, m.MEM_LIMIT, m.PIDS):
        assert "/" not in containers(rec, absent)

    cap = {"container": "/ctwin-capture"}
    assert rec.get(m.CPU_USAGE, **cap) == 0.804660527
    assert rec.get(m.CPU_USER, **cap) == 0.79
    assert rec.get(m.CPU_SYSTEM, **cap) == 0.01
    assert rec.get(m.CFS_PERIODS, **cap) == 18
    assert rec.get(m.CFS_THROTTLED_PERIODS, **cap) == 16
    assert rec.get(m.CFS_THROTTLED_SECONDS, **cap) == 0.746937279  # throttled_time 746937279 ns
    assert rec.get(m.CPU_QUOTA, **cap) == 0.5  # 50000 / 100000
    dev = {**cap, "device": "254:0"}
    assert rec.get(m.IO_READ_BYTES, **dev) == 11001856
    assert rec.get(m.IO_WRITE_BYTES, **dev) == 8396800
    assert rec.get(m.IO_READS, **dev) == 545
    assert rec.get(m.IO_WRITES, **dev) == 19
    assert rec.get(m.PIDS, **cap) == 1
    assert "/ctwin-capture" not in containers(rec, m.MEM_USAGE)  # only in cpu, cpuacct, blkio, pids

    assert rec.get(m.MEM_USAGE, container=SELF_MEM) == 14274560
    assert rec.get(m.MEM_ANON, container=SELF_MEM) == 2269184
    assert rec.get(m.MEM_FILE, container=SELF_MEM) == 8929280
    assert containers(rec, m.MEM_USAGE) == {"/", "/process_api", *PROCESS_API_CHILDREN}
    assert not any(s.metric.startswith("container_pressure_") for s in rec.samples)  # no PSI in v1


def test_hybrid_v2_reads_the_unified_tree() -> None:
    rec = gather(HYBRID, version="v2")
    c = {"container": "/"}
    assert rec.get(m.CPU_USAGE, **c) == 180.850314
    assert rec.get(m.CPU_USER, **c) == 116.938507
    assert rec.get(m.CPU_SYSTEM, **c) == 63.911807
    assert rec.get(m.PSI_CPU_WAITING, **c) == 14.619115
    assert rec.get(m.PSI_IO_WAITING, **c) == 4.669298
    assert rec.get(m.PSI_IO_STALLED, **c) == 4.407126
    assert rec.get(m.PSI_MEM_WAITING, **c) == 0
    # The unified root of a hybrid host has no memory, io or pids files.
    assert not {m.MEM_USAGE.name, m.IO_READ_BYTES.name, m.PIDS.name, m.CPU_QUOTA.name} & rec.names()


# -- availability -------------------------------------------------------------------------------------


def test_requested_version_not_mounted_is_unavailable() -> None:
    collector = ContainerCollector(ContainerConfig(root=str(V2), version="v1"))
    reason = collector.availability()
    assert reason is not None and "cgroup v1" in reason and "proc/mounts" in reason
    with pytest.raises(Unavailable, match="cgroup v1"):
        collector.gather(Recorder())


def test_no_cgroup_mount_is_unavailable(tmp_path: Path) -> None:
    # The real mount table of the v2 capture minus its cgroup2 line.
    (tmp_path / "proc").mkdir()
    lines = (V2 / "proc/mounts").read_text().splitlines(keepends=True)
    (tmp_path / "proc/mounts").write_text("".join(x for x in lines if " cgroup2 " not in x))
    collector = ContainerCollector(ContainerConfig(root=str(tmp_path)))
    assert collector.availability() == f"no cgroup hierarchy mounted per {tmp_path}/proc/mounts"
    with pytest.raises(Unavailable):
        collector.gather(Recorder())


def test_no_mount_table_is_unavailable(tmp_path: Path) -> None:
    reason = ContainerCollector(ContainerConfig(root=str(tmp_path))).availability()
    assert reason is not None and reason.startswith(f"cannot read {tmp_path}/proc/mounts")


# -- selection and cardinality --------------------------------------------------------------------------


def test_include_exclude_match_the_cgroup_path() -> None:
    assert containers(gather(HYBRID, include=["^/process_api"])) == {"/process_api", *PROCESS_API_CHILDREN}
    assert containers(gather(HYBRID, exclude=["^/process_api/"])) == {"/", "/ctwin-capture", "/process_api"}
    assert containers(gather(HYBRID, include=["capture"], exclude=["^/$"])) == {"/ctwin-capture"}


def test_max_depth() -> None:
    assert containers(gather(HYBRID, max_depth=0)) == {"/"}
    assert containers(gather(HYBRID, max_depth=1)) == {"/", "/ctwin-capture", "/process_api"}


def test_max_containers_keeps_the_shallowest_and_counts_the_rest() -> None:
    rec = gather(HYBRID, max_containers=3)
    assert containers(rec) == {"/", "/ctwin-capture", "/process_api"}
    assert rec.get(m.CONTAINERS_DROPPED) == 6
    rec = gather(HYBRID, max_containers=4)
    assert containers(rec) == {"/", "/ctwin-capture", "/process_api", sorted(PROCESS_API_CHILDREN)[0]}
    assert rec.get(m.CONTAINERS_DROPPED) == 5


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError, match="roots"):
        ContainerConfig.model_validate({"roots": "/"})
    with pytest.raises(ValidationError):
        ContainerConfig.model_validate({"version": "v3"})
    with pytest.raises(ValidationError):
        ContainerConfig.model_validate({"include": ["("]})
    with pytest.raises(ValidationError):
        ContainerConfig.model_validate({"max_containers": 0})


# -- this machine ---------------------------------------------------------------------------------------


def test_live_machine_has_cpu_and_memory_for_some_container() -> None:
    collector = ContainerCollector(ContainerConfig(root="/"))
    if (reason := collector.availability()) is not None:
        pytest.skip(f"no cgroups here: {reason}")
    rec = Recorder()
    collector.gather(rec)
    both = containers(rec, m.CPU_USAGE) & containers(rec, m.MEM_USAGE)
    assert both, f"no container has both cpu and memory samples: {sorted(containers(rec))[:20]}"
    for c in both:
        assert rec.get(m.CPU_USAGE, container=c) > 0
        assert rec.get(m.MEM_USAGE, container=c) > 0


def test_registered_under_its_name() -> None:
    from collectors import registry

    assert registry.get("containers") is ContainerCollector
