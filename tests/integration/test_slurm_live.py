"""The Slurm collector against a real Slurm 22.05 (Debian packages) started for this session.

scripts/slurm-up.sh starts, in a temporary directory and on free ports, a private munged, MariaDB,
slurmdbd, slurmctld, four slurmd (node[1-4] × 2 CPUs on this host) and slurmrestd with JWT; the
finalizer stops them by PID (scripts/slurm-down.sh). Real jobs fill the nodes so some pend with
Slurm's start estimate; the collector must see pending → running → completed/failed through the
commands and through slurmrestd, and the finished jobs through sacct. Every poll is bounded.
Needs root and the packages below; skips without them unless CTWIN_REQUIRE_SERVERS=1.
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

import polars as pl
import pytest

from collectors.base import CollectorError, Recorder
from collectors.slurm import SlurmCollector, SlurmConfig
from collectors.slurm_json import parse_jobs
from telemetry.catalog import batch
from tests.conftest import ROOT, free_port, need_binary, servers_required

PACKAGES = "slurmctld slurmd slurm-client munge slurmdbd mariadb-server slurmrestd slurm-wlm-jwt-plugin"
HINT = f"apt-get install -y --no-install-recommends {PACKAGES}"
NODES, CPUS_PER_NODE = 4, 2
CMD_TIMEOUT = 10.0  # every Slurm client call: a down slurmctld makes them hang
POLL_DEADLINE = 90.0

pytestmark = pytest.mark.integration


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


@pytest.fixture(scope="session")
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


def poll(what: str, step: Callable[[], bool], deadline_s: float, interval_s: float = 0.5) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if step():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {deadline_s:g}s waiting for {what}")


def gather(collector: SlurmCollector) -> Recorder:
    rec = Recorder(strict=True)
    collector.gather(rec)
    return rec


def test_real_slurm_jobs_pending_running_finished(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    cli = SlurmCollector(SlurmConfig(slurm_conf=c.slurm_conf, timeout_s=CMD_TIMEOUT, accounting_window=600))
    try:
        first = gather(cli)  # the collector's first look: counters count from here
        assert first.get(batch.NODES, state="idle") == NODES
        assert first.get(batch.CPUS, state="idle") == NODES * CPUS_PER_NODE

        # 4 two-CPU jobs fill node[1-4]; the other three must wait for them
        sbatch = ["sbatch", "--parsable", "-t", "1", "-o", "/dev/null"]
        names = {}
        for i in range(1, 5):
            names[c.run(*sbatch, "-J", f"fill{i}", "-c", "2", "--wrap", "sleep 6").strip()] = f"fill{i}"
        for i in (1, 2):
            names[c.run(*sbatch, "-J", f"wait{i}", "-c", "2", "--wrap", "sleep 3").strip()] = f"wait{i}"
        failing = c.run(*sbatch, "-J", "fails", "-c", "1", "--wrap", "sleep 1; exit 3").strip()
        names[failing] = "fails"
        submitted = int(time.time())
        seen: dict[str, list[str]] = {job: [] for job in names}
        estimates: dict[str, int] = {}

        def observe() -> pl.DataFrame:
            snap = cli.jobs_snapshot().filter(pl.col("job_id").is_in(list(names)))
            for job, state, expected in snap.select("job_id", "state", "expected_start_s").iter_rows():
                if not seen[job] or seen[job][-1] != state:
                    seen[job].append(state)
                if state == "PENDING" and expected is not None:
                    estimates[job] = expected
            return snap

        busy: dict[str, Recorder] = {}

        def filled() -> bool:
            rec = gather(cli)
            snap = observe()
            states = snap["state"].to_list()
            pending = snap.filter(pl.col("state") == "PENDING")
            if states.count("RUNNING") == 4 and pending.height == 3 and pending["expected_start_s"].null_count() == 0:
                busy["rec"] = rec
                return True
            return False

        poll("4 running jobs and 3 pending with Slurm's start estimates", filled, 30)
        rec = busy["rec"]
        assert rec.get(batch.JOBS, partition="debug", state="running") == 4
        assert rec.get(batch.JOBS, partition="debug", state="pending") == 3
        assert rec.get(batch.JOBS_CPUS, partition="debug", state="pending") == 5
        assert rec.get(batch.CPUS, state="allocated") == NODES * CPUS_PER_NODE
        assert rec.get(batch.NODES, state="allocated") == NODES
        # backfill estimates: after a running job's 1-minute limit at the latest, never in the past
        for job in ("wait1", "wait2", "fails"):
            jid = next(j for j, n in names.items() if n == job)
            assert submitted - 2 <= estimates[jid] <= submitted + 2 * 60 + 5, (job, estimates[jid], submitted)

        def all_done() -> bool:
            gather(cli)
            snap = observe()
            return snap.height == len(names) and snap["end_s"].null_count() == 0

        poll("every job to finish", all_done, POLL_DEADLINE)
        snap = observe()
        final = dict(snap.select("job_id", "state").iter_rows())
        assert {names[j]: s for j, s in final.items()} == {
            **{f"fill{i}": "COMPLETED" for i in range(1, 5)}, "wait1": "COMPLETED", "wait2": "COMPLETED",
            "fails": "FAILED",
        }  # fmt: skip
        for job in names:
            if names[job].startswith("wait") or job == failing:
                assert seen[job][:1] == ["PENDING"] and "RUNNING" in seen[job], (names[job], seen[job])
        row = snap.filter(pl.col("job_id") == failing).to_dicts()[0]
        assert row["exit_code"] == 3 and row["alloc_cores"] == 1 and row["start_s"] <= row["end_s"]

        # finished jobs through sacct alone (slurmdbd gets them asynchronously: poll)
        def in_accounting() -> bool:
            acct = parse_jobs(c.run("sacct", "--json", "-X", "-a", "-S", "now-600seconds"), "sacct").frame
            done = acct.filter(pl.col("job_id").is_in(list(names)) & pl.col("end_s").is_not_null())
            return done.height == len(names)

        poll("sacct to record every job", in_accounting, 30)
        rec = gather(cli)
        assert rec.get(batch.SUBMITTED, partition="debug") == len(names)
        assert rec.get(batch.STARTED, partition="debug") == len(names)
        assert rec.get(batch.FINISHED, partition="debug", state="completed") == 6
        assert rec.get(batch.FINISHED, partition="debug", state="failed") == 1
        assert rec.get(batch.NODES, state="idle") == NODES

        # the same through slurmrestd with a JWT from `scontrol token`
        token_file = c.workdir / "ctwin.jwt"
        token_file.write_text(c.run("scontrol", "token", "username=root", "lifespan=600"))
        rest = SlurmCollector(
            SlurmConfig.model_validate(
                {
                    "transport": "rest",
                    "url": c.restd_url,
                    "api_version": "v0.0.38",
                    "user": "root",
                    "token_file": str(token_file),
                    "timeout_s": CMD_TIMEOUT,
                    "accounting_window": 600,
                }
            )
        )
        try:
            rrec = gather(rest)
            rsnap = rest.jobs_snapshot().filter(pl.col("job_id").is_in(list(names)))
            assert dict(rsnap.select("job_id", "state").iter_rows()) == final
            assert rrec.get(batch.NODES, state="idle") == NODES
            assert rrec.get(batch.CPUS, state="idle") == NODES * CPUS_PER_NODE
        finally:
            rest.close()
        bad = SlurmCollector(
            SlurmConfig.model_validate(
                {
                    "transport": "rest",
                    "url": c.restd_url,
                    "api_version": "v0.0.38",
                    "user": "root",
                    "token": "not-a-jwt",
                    "timeout_s": CMD_TIMEOUT,
                    "accounting": False,
                }
            )
        )
        with pytest.raises(CollectorError, match=rf"slurmrestd GET {c.restd_url}/slurm/v0\.0\.38/"):
            gather(bad)
        bad.close()
    finally:
        cli.close()
