"""GPU → Slurm job attribution from `gres_detail`, on real slurmctld output.

tests/fixtures/nvidia-smi/slurm-gres/ holds `squeue --json` from a real slurmctld whose nodes have
GPU GRES (on device files, no GPU; see PROVENANCE.md), and the live test starts such a cluster
(scripts/slurm-up.sh with GPUS_PER_NODE) and runs a job. The GPU side is the real H100 capture,
replayed by tests/fixtures/nvidia-smi/replay_nvidia_smi.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.base import CollectorError, Recorder
from collectors.gpu import AttributionError, GpuCollector, GpuConfig, GpuSlurmConfig
from collectors.gpu_slurm import gpu_jobs_on_node, parse_gres_detail, parse_index_list
from telemetry.catalog import gpu as g
from tests.conftest import FIXTURES, ROOT, free_port, need_binary, servers_required

GRES = FIXTURES / "nvidia-smi" / "slurm-gres"
SLURM = FIXTURES / "slurm"
CAPTURE = FIXTURES / "nvidia-smi" / "linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt.gz"
REPLAY = FIXTURES / "nvidia-smi" / "replay_nvidia_smi.py"
SMI = (sys.executable, str(REPLAY), "--capture", str(CAPTURE), "--state", "load")


def doc(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


def test_gres_detail_entries_as_slurmctld_writes_them() -> None:
    untyped = doc(GRES / "squeue_untyped.json")["jobs"]
    assert isinstance(untyped, list)
    seen = [e for j in untyped for e in j["gres_detail"]]
    assert seen == ["gpu:2(IDX:0-1)", "gpu:1(IDX:0)", "gpu:1(IDX:2)", "gpu:1(IDX:1)"]
    assert [parse_gres_detail(e) for e in seen] == [{"gpu": [0, 1]}, {"gpu": [0]}, {"gpu": [2]}, {"gpu": [1]}]
    assert parse_gres_detail("gpu:h100:3(IDX:1-3)") == {"gpu": [1, 2, 3]}
    # Shapes from slurmctld's formatter (gres_ctld.c) that these captures do not show: several GRES
    # on one node, a sparse bitmap, a GRES without device files (CNT: no index to map).
    assert parse_gres_detail("gpu:a100:3(IDX:0,2-3),mps:50(IDX:0)") == {"gpu": [0, 2, 3], "mps": [0]}
    assert parse_gres_detail("gpu:tesla(CNT:2)") == {"gpu": []}
    assert parse_index_list("N/A") == []
    with pytest.raises(ValueError, match="bad index range"):
        parse_index_list("0-x")


def test_untyped_capture_maps_each_gpu_to_its_job() -> None:
    d = doc(GRES / "squeue_untyped.json")
    # job 3 spans node[1-2]: its first entry is node1's, its second node2's
    assert gpu_jobs_on_node(d, "node1") == {0: "1", 1: "1", 2: "3"}
    assert gpu_jobs_on_node(d, "node2") == {0: "2", 1: "3"}
    assert gpu_jobs_on_node(d, "node3") == {}


def test_typed_capture_and_an_array_task_under_its_own_job_id() -> None:
    d = doc(GRES / "squeue_typed.json")
    assert gpu_jobs_on_node(d, "node1") == {0: "1", 1: "1", 2: "2", 3: "5"}  # 5 is array task 4_0
    assert gpu_jobs_on_node(d, "node2") == {0: "2", 1: "3", 2: "3", 3: "3"}


@pytest.mark.parametrize(
    ("path", "node"),
    [
        ("v0.0.37/squeue_out.json", "cs75"),
        ("v0.0.38/single_node_acct/squeue_t2s.json", "vm"),
        ("v0.0.38/four_emulated_nodes/squeue_4nodes_t2s.json", "node2"),
        ("v0.0.40/23.11-slurm-jobs.json", "cn1"),
    ],
)
def test_real_documents_without_gpus_map_nothing(path: str, node: str) -> None:
    # Each version's shapes (job_state a string or a list, job_id plain or wrapped) go through;
    # these sites have no GPU GRES, so nothing is attributed and nothing fails.
    assert gpu_jobs_on_node(doc(SLURM / path), node) == {}


def test_a_document_without_jobs_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 'jobs' list"):
        gpu_jobs_on_node({"nodes": []}, "node1")


def labels_of(rec: Recorder) -> set[tuple[tuple[str, str], ...]]:
    keep = ("uuid", "index", "hpc_job")
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k in keep)) for s in rec.samples}


@pytest.mark.parametrize(("node", "job"), [("node1", "1"), ("node2", "2")])
def test_collector_labels_the_gpu_with_the_job_from_a_file(node: str, job: str) -> None:
    slurm = GpuSlurmConfig(file=GRES / "squeue_typed.json", node=node)
    config = GpuConfig(backend="nvidia-smi", command=SMI, slurm=slurm)
    rec = Recorder()
    GpuCollector(config).gather(rec)
    uuid = "00000000-0000-0000-0000-000000000000"
    assert labels_of(rec) == {(("hpc_job", job), ("index", "0"), ("uuid", uuid))}
    assert rec.get(g.POWER_DRAW, hpc_job=job) == 631.95


def test_collector_runs_the_jobs_command_and_a_gpu_without_job_has_no_label() -> None:
    slurm = GpuSlurmConfig(command=("cat", str(GRES / "squeue_untyped.json")), node="node3")
    rec = Recorder()
    GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, slurm=slurm)).gather(rec)
    assert rec.samples and all("hpc_job" not in s.labels for s in rec.samples)


def test_a_failing_jobs_source_keeps_the_gpu_series_and_says_why(tmp_path: Path) -> None:
    slurm = GpuSlurmConfig(command=("cat", str(tmp_path / "missing.json")), node="node1")
    rec = Recorder()
    with pytest.raises(AttributionError, match=r"without attribution: cat .*missing.json: exit status 1"):
        GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, slurm=slurm)).gather(rec)
    # partial: the GPU series went out, unlabelled, and the pipeline keeps them
    assert len(rec.samples) == 53 and all("hpc_job" not in s.labels for s in rec.samples)
    bad = tmp_path / "jobs.json"
    bad.write_text("{not json")
    with pytest.raises(CollectorError, match=r"jobs.json: invalid JSON at line 1"):
        GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, slurm=GpuSlurmConfig(file=bad))).gather(Recorder())


# -- live: a real slurmctld allocating GPU GRES ----------------------------------------------------


@pytest.fixture(scope="module")
def gres_cluster() -> Iterator[dict[str, str]]:
    for binary in ("slurmctld", "slurmd", "sbatch", "squeue", "munged"):
        need_binary(binary, "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge")
    if os.geteuid() != 0:
        if servers_required():
            pytest.fail("a real Slurm needs root; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
        pytest.skip("a real Slurm needs root")
    workdir = Path(tempfile.mkdtemp(prefix="ctwin-gpu-slurm-"))
    base = free_port()
    env = {
        **os.environ,
        "SLURMCTLD_PORT": str(free_port()),
        "SLURMD_PORT": str(free_port()),
        "NODE_PORT_BASE": str(base if base < 65000 else 40000),
        "GPUS_PER_NODE": "1",
        "SLURM_CONF": str(workdir / "slurm.conf"),
    }
    up = [str(ROOT / "scripts" / "slurm-up.sh"), str(workdir), "2", "0", "0"]
    try:
        started = subprocess.run(up, env=env, capture_output=True, text=True, timeout=120, check=False)
        if started.returncode != 0:
            pytest.fail(f"slurm-up.sh failed ({started.returncode}):\n{started.stdout}\n{started.stderr}")
        yield env
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            down = [str(ROOT / "scripts" / "slurm-down.sh"), str(workdir)]
            subprocess.run(down, env=env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def test_live_slurm_job_holding_the_gpu_labels_its_series(
    gres_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = gres_cluster
    run = lambda *argv: subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10, check=True).stdout  # noqa: E731
    job = run(
        "sbatch", "--parsable", "-o", "/dev/null", "-w", "node2", "--gres=gpu:1", "-n1", "--wrap", "sleep 120"
    ).strip()
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])  # the collector's squeue inherits it
    config = GpuConfig(backend="nvidia-smi", command=SMI, slurm=GpuSlurmConfig(node="node2"))
    try:
        for _ in range(50):
            rec = Recorder()
            GpuCollector(config).gather(rec)
            if any("hpc_job" in s.labels for s in rec.samples):
                break
            subprocess.run(["sleep", "0.2"], check=True)
        assert {s.labels.get("hpc_job") for s in rec.samples} == {job}
        # the same job seen from node1's collector: not there
        rec1 = Recorder()
        GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, slurm=GpuSlurmConfig(node="node1"))).gather(rec1)
        assert all("hpc_job" not in s.labels for s in rec1.samples)
    finally:
        run("scancel", job)
