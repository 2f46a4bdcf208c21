"""A real Slurm 22.05 cluster for the integration tests (Debian packages), started per test module.

scripts/slurm-up.sh starts, in a temporary directory and on free ports, a private munged, MariaDB,
slurmdbd, slurmctld, four slurmd (node[1-4] × 2 CPUs on this host) and slurmrestd with JWT; the
finalizer stops them by PID (scripts/slurm-down.sh), also when the test fails. Needs root and the
packages below; skips without them unless CTWIN_REQUIRE_SERVERS=1.

A test module uses it by importing the fixture: `from tests.integration.slurm_cluster import
slurm_cluster`. The fixture is module-scoped, so each module gets a fresh cluster (job ids from 1,
an idle queue, an empty accounting database) and two clusters never run at once.

`two_slurm_clusters` is Slurm's multi-cluster mode (scripts/slurm-multi-up.sh): clusters `alpha`
and `beta`, each its own slurmctld and two slurmd (2 CPUs each), sharing one munged, MariaDB and
slurmdbd, so `sbatch -M alpha,beta`, `squeue -M all` and `sacct -M beta` work. Stopped the same way.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, need_binary, servers_required

__all__ = [
    "CMD_TIMEOUT", "CPUS_PER_NODE", "HINT", "NODES", "Cluster", "MultiCluster", "poll", "slurm_cluster",
    "two_slurm_clusters",
]  # fmt: skip

PACKAGES = "slurmctld slurmd slurm-client munge slurmdbd mariadb-server slurmrestd slurm-wlm-jwt-plugin"
HINT = f"apt-get install -y --no-install-recommends {PACKAGES}"
NODES, CPUS_PER_NODE = 4, 2
CMD_TIMEOUT = 10.0  # every Slurm client call: a down slurmctld makes them hang


@dataclass(frozen=True)
class Cluster:
    workdir: Path
    env: dict[str, str]
    restd_url: str

    @property
    def slurm_conf(self) -> str:
        return str(self.workdir / "slurm.conf")

    def run(self, *argv: str) -> str:
        """A Slurm client command with a timeout; its stdout."""
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=CMD_TIMEOUT, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
        return done.stdout


def _need(condition: bool, message: str) -> None:
    if condition:
        return
    if servers_required():
        pytest.fail(message + "; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
    pytest.skip(message)


def _free_run(n: int) -> int:
    """A base port b with b+1..b+n all free (one per emulated slurmd)."""
    for _ in range(50):
        base = free_port()
        if base + n >= 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for i in range(1, n + 1):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
    raise RuntimeError("no run of free ports")


def _kill_leftovers(workdir: Path) -> None:
    """Last resort after slurm-down.sh: whatever PID file is still alive gets SIGKILL."""
    for pid_file in [*glob.glob(f"{workdir}/run/*.pid"), f"{workdir}/munge/munged.pid"]:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(Path(pid_file).read_text().strip()), signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[Cluster]:
    for binary in ("slurmctld", "slurmd", "sbatch", "munged", "slurmdbd", "mariadbd", "slurmrestd"):
        need_binary(binary, HINT)
    _need(bool(glob.glob("/usr/lib/*/slurm-wlm/auth_jwt.so")), f"slurm-wlm-jwt-plugin not installed ({HINT})")
    _need(os.geteuid() == 0, "a real Slurm needs root (slurmd, munged as munge, slurmrestd as nobody)")
    # not under pytest's 0700 tmp root: munged (user munge) and slurmrestd (nobody) must reach it
    workdir = Path(tempfile.mkdtemp(prefix="ctwin-slurm-"))
    ports = {
        "SLURMCTLD_PORT": free_port(),
        "SLURMD_PORT": free_port(),
        "SLURMDBD_PORT": free_port(),
        "SLURMRESTD_PORT": free_port(),
        "MARIADB_PORT": free_port(),
        "NODE_PORT_BASE": _free_run(NODES),
    }
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "CPUS_PER_NODE": str(CPUS_PER_NODE),
           "SLURM_CONF": str(workdir / "slurm.conf")}  # fmt: skip
    up = [str(ROOT / "scripts" / "slurm-up.sh"), str(workdir), str(NODES), "1", "1"]
    down = [str(ROOT / "scripts" / "slurm-down.sh"), str(workdir)]
    try:
        started = subprocess.run(up, env=env, capture_output=True, text=True, timeout=120, check=False)
        if started.returncode != 0:
            pytest.fail(f"slurm-up.sh failed ({started.returncode}):\n{started.stdout}\n{started.stderr}")
        yield Cluster(workdir, env, f"http://127.0.0.1:{ports['SLURMRESTD_PORT']}")
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(down, env=env, capture_output=True, timeout=60, check=False)
        _kill_leftovers(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


MULTI_NAMES = ("alpha", "beta")
MULTI_NODES = 2  # per cluster, CPUS_PER_NODE each


@dataclass(frozen=True)
class MultiCluster:
    workdir: Path
    names: tuple[str, ...]
    env: dict[str, str]
    """SLURM_CONF is the client config (the first cluster's; `-M` resolves through slurmdbd)."""

    @property
    def client_conf(self) -> str:
        return str(self.workdir / "slurm.conf")

    def conf(self, name: str) -> str:
        """The cluster's own slurm.conf (what its collector reads)."""
        return str(self.workdir / name / "slurm.conf")

    def run(self, *argv: str) -> str:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=CMD_TIMEOUT, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
        return done.stdout


@pytest.fixture(scope="module")
def two_slurm_clusters() -> Iterator[MultiCluster]:
    for binary in ("slurmctld", "slurmd", "sbatch", "munged", "slurmdbd", "mariadbd", "sacctmgr"):
        need_binary(binary, HINT)
    _need(os.geteuid() == 0, "a real Slurm needs root (slurmd, munged as munge)")
    workdir = Path(tempfile.mkdtemp(prefix="ctwin-slurm-multi-"))
    env = {**os.environ, "CPUS_PER_NODE": str(CPUS_PER_NODE), "SLURM_CONF": str(workdir / "slurm.conf"),
           "SLURMDBD_PORT": str(free_port()), "MARIADB_PORT": str(free_port())}  # fmt: skip
    for name in MULTI_NAMES:
        env[f"{name}_PORTS"] = f"{free_port()} {free_port()} {_free_run(MULTI_NODES)}"
    up = [str(ROOT / "scripts" / "slurm-multi-up.sh"), str(workdir), str(MULTI_NODES), *MULTI_NAMES]
    down = [str(ROOT / "scripts" / "slurm-down.sh"), str(workdir)]
    try:
        started = subprocess.run(up, env=env, capture_output=True, text=True, timeout=180, check=False)
        if started.returncode != 0:
            pytest.fail(f"slurm-multi-up.sh failed ({started.returncode}):\n{started.stdout}\n{started.stderr}")
        yield MultiCluster(workdir, MULTI_NAMES, env)
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(down, env=env, capture_output=True, timeout=90, check=False)
        for name in MULTI_NAMES:
            _kill_leftovers(workdir / name)
        shutil.rmtree(workdir, ignore_errors=True)


def poll(what: str, step: Callable[[], bool], deadline_s: float, interval_s: float = 0.5) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if step():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {deadline_s:g}s waiting for {what}")
