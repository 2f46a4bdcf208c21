"""A DuckDB file written before JOB_SCHEMA gained nodes, reason, remote_site and remote_job_id:
the store adds the columns when it opens the file, keeps every old row (null in them) and takes
rows with them afterwards; a job upserted from the old row keeps its lifecycle rule."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from telemetry.jobs import JOB_SCHEMA, conform_jobs
from telemetry.stores.duckdb_store import DuckDBStore

OLD_JOBS_TABLE = """CREATE TABLE jobs ("site" VARCHAR, "source" VARCHAR, "job_id" VARCHAR, "name" VARCHAR,
"user" VARCHAR, "group" VARCHAR, "partition" VARCHAR, "submit_s" BIGINT, "eligible_s" BIGINT, "start_s" BIGINT,
"end_s" BIGINT, "expected_start_s" BIGINT, "req_cores" BIGINT, "alloc_cores" BIGINT, "req_nodes" BIGINT,
"alloc_nodes" BIGINT, "gpus" BIGINT, "req_mem_bytes" BIGINT, "req_walltime_s" BIGINT, "state" VARCHAR,
"exit_code" BIGINT, "container_runtime" VARCHAR, "container_image" VARCHAR, "ranks_per_container" BIGINT,
"affinity" VARCHAR, "interconnect" VARCHAR, "observed_s" BIGINT)"""
"""The jobs table exactly as the store created it before the four columns (git: 7a4756f)."""


def test_an_old_file_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(OLD_JOBS_TABLE)
    con.execute("INSERT INTO jobs (site, source, job_id, state, submit_s) VALUES ('hpc', 'slurm', '7', 'PENDING', 100)")
    con.close()

    store = DuckDBStore(path)
    try:
        old = store.jobs(site="hpc")
        assert old.schema == dict(JOB_SCHEMA) and old.height == 1
        assert old.row(0, named=True)["nodes"] is None and old.row(0, named=True)["remote_job_id"] is None
        rows = [
            {"site": "hpc", "source": "slurm", "job_id": "7", "state": "RUNNING", "submit_s": 100, "start_s": 110,
             "nodes": "c1,c2"},
            {"site": "k8s", "source": "kubernetes", "job_id": "ns/p", "state": "RUNNING", "submit_s": 105,
             "nodes": "vk", "remote_site": "hpc", "remote_job_id": "7", "reason": None},
        ]  # fmt: skip
        assert store.append_jobs(conform_jobs(pl.DataFrame(rows)).collect()) == 2
        got = {r["job_id"]: r for r in store.jobs().to_dicts()}
        assert (got["7"]["state"], got["7"]["nodes"]) == ("RUNNING", "c1,c2")
        assert (got["ns/p"]["remote_site"], got["ns/p"]["remote_job_id"]) == ("hpc", "7")
        assert store.job("hpc", "7")["start_s"].to_list() == [110] and store.job("hpc", "8").is_empty()
    finally:
        store.close()
    reopened = DuckDBStore(path)  # migrating twice is a no-op
    try:
        assert reopened.jobs().height == 2
    finally:
        reopened.close()
