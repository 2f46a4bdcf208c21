"""The Slurm collector against a real Slurm 22.05 (Debian packages) started for this module.

The cluster (tests/integration/slurm_cluster.py): scripts/slurm-up.sh starts, in a temporary
directory and on free ports, a private munged, MariaDB, slurmdbd, slurmctld, four slurmd
(node[1-4] × 2 CPUs on this host) and slurmrestd with JWT; the finalizer stops them by PID
(scripts/slurm-down.sh). Real jobs fill the nodes so some pend with
Slurm's start estimate; the collector must see pending → running → completed/failed through the
commands and through slurmrestd, and the finished jobs through sacct. Every poll is bounded.
Needs root and the Slurm packages; skips without them unless CTWIN_REQUIRE_SERVERS=1.
"""

from __future__ import annotations

import time

import polars as pl
import pytest

from collectors.base import CollectorError, Recorder
from collectors.slurm import SlurmCollector, SlurmConfig
from collectors.slurm_json import parse_jobs
from telemetry.catalog import batch
from telemetry.pipeline import StoreSink
from telemetry.stores.duckdb_store import DuckDBStore
from tests.integration.slurm_cluster import CMD_TIMEOUT, CPUS_PER_NODE, NODES, Cluster, poll
from tests.integration.slurm_cluster import slurm_cluster as slurm_cluster  # the fixture, module-scoped

POLL_DEADLINE = 90.0

pytestmark = pytest.mark.integration


def gather(collector: SlurmCollector) -> Recorder:
    rec = Recorder(strict=True)
    collector.gather(rec)
    return rec


def test_real_slurm_jobs_pending_running_finished(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    cli = SlurmCollector(SlurmConfig(slurm_conf=c.slurm_conf, timeout_s=CMD_TIMEOUT, accounting_window=600))
    # the job history, as the pipeline keeps it: every gather's job rows upserted under the site
    history = StoreSink(DuckDBStore(c.workdir / "history.duckdb"))
    history_states: dict[str, list[str]] = {}
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
            history.write_jobs(cli.job_updates().with_columns(pl.lit("cluster").alias("site")))
            stored = history.store.jobs(site="cluster").filter(pl.col("job_id").is_in(list(names)))
            for job, state in stored.select("job_id", "state").iter_rows():
                if history_states.setdefault(job, [state])[-1] != state:
                    history_states[job].append(state)
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
        # ... and the job history in the store went through the same states, ending with the same rows
        stored = history.store.jobs(site="cluster").filter(pl.col("job_id").is_in(list(names)))
        assert dict(stored.select("job_id", "state").iter_rows()) == final
        for job in names:
            if names[job].startswith("wait"):
                assert history_states[job][0] == "PENDING" and history_states[job][-1] == "COMPLETED", history_states
        stored_fail = stored.filter(pl.col("job_id") == failing).to_dicts()[0]
        assert stored_fail["exit_code"] == 3 and stored_fail["source"] == "slurm" and stored_fail["end_s"] is not None

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
        history.store.close()
