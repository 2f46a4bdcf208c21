"""The Slurm JSON parsers on every real capture we have (21.08 … 23.11), with exact expected values.

The expected numbers were read from the JSON files themselves and are written out literally; where
Slurm printed the same facts as text (`squeue --start`, `sacct`), the text is a second, independent
oracle.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from collectors.base import CollectorError
from collectors.slurm_fields import (
    exit_status,
    expand_hostlist,
    gpus_from_tres_per,
    job_state,
    node_state,
    num,
    parse_tres,
)
from collectors.slurm_json import (
    NODE_SCHEMA,
    PARTITION_SCHEMA,
    SlurmJSONError,
    UnknownSlurmVersion,
    detect_version,
    load_document,
    parse_jobs,
    parse_nodes,
    parse_partitions,
)
from telemetry.jobs import JOB_SCHEMA, JOB_STATES
from tests.conftest import FIXTURES

SLURM = FIXTURES / "slurm"
ACCT = SLURM / "v0.0.38" / "single_node_acct"
FOUR = SLURM / "v0.0.38" / "four_emulated_nodes"
MIB = 1024 * 1024


def read(path: Path) -> bytes:
    return path.read_bytes()


def rows(frame: pl.DataFrame, *cols: str) -> list[tuple[Any, ...]]:
    return list(frame.select(cols).iter_rows())


def by_id(frame: pl.DataFrame, *cols: str) -> dict[str, tuple[Any, ...]]:
    return {r[0]: r[1:] for r in frame.select("job_id", *cols).iter_rows()}


# --- versions ---------------------------------------------------------------------------------

VERSIONS = [
    ("v0.0.37/squeue_out.json", "openapi/v0.0.37", "v0.0.37", "21.08.5"),
    ("v0.0.37/sinfo_out.json", "openapi/v0.0.37", "v0.0.37", "21.08.5"),
    ("v0.0.38/single_node_acct/squeue_t2s.json", "openapi/v0.0.38", "v0.0.38", "22.05.8"),
    ("v0.0.38/single_node_acct/sacct.json", "openapi/dbv0.0.38", "v0.0.38", "22.05.8"),
    ("v0.0.38/single_node_acct/rest_slurmdb_v0.0.38_jobs.json", "openapi/dbv0.0.38", "v0.0.38", "22.05.8"),
    ("v0.0.38/single_node_acct/rest_slurm_v0.0.38_partitions.json", "openapi/v0.0.38", "v0.0.38", "22.05.8"),
    ("v0.0.38/four_emulated_nodes/sinfo_4nodes_busy.json", "openapi/v0.0.38", "v0.0.38", "22.05.8"),
    ("v0.0.39/sinfo_dataparser.json", "data_parser/v0.0.39", "v0.0.39", "23.02.5"),
    ("v0.0.39/23.02-slurm-partitions.json", "data_parser/v0.0.39", "v0.0.39", "23.02.8"),
    ("v0.0.40/23.11-slurm-jobs.json", "data_parser/v0.0.40", "v0.0.40", "23.11.10"),
    ("v0.0.40/23.11-slurm-nodes.json", "data_parser/v0.0.40", "v0.0.40", "23.11.10"),
    ("v0.0.40/23.11-slurmdb-job-completed.json", "data_parser/v0.0.40", "v0.0.40", "23.11.10"),
]


@pytest.mark.parametrize(("rel", "plugin", "api", "release"), VERSIONS, ids=[v[0] for v in VERSIONS])
def test_version_is_read_from_meta(rel: str, plugin: str, api: str, release: str) -> None:
    version = detect_version(load_document(read(SLURM / rel), rel))
    assert (version.plugin, version.api, version.release, version.known) == (plugin, api, release, True)


def every_fixture() -> list[Path]:
    return sorted(SLURM.rglob("*.json"))


@pytest.mark.parametrize("path", every_fixture(), ids=lambda p: str(p.relative_to(SLURM)))
def test_every_fixture_parses_cleanly_into_its_schema(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    if "jobs" in doc:
        parsed = parse_jobs(doc, path.name, site="hpc1", observed_s=1_800_000_000)
        assert parsed.frame.schema == pl.Schema(JOB_SCHEMA)
        assert set(parsed.frame["state"].to_list()) <= set(JOB_STATES)
        assert set(parsed.frame["source"]) <= {"slurm"} and set(parsed.frame["site"]) <= {"hpc1"}
        assert set(parsed.frame["observed_s"]) <= {1_800_000_000}
        assert parsed.frame["job_id"].n_unique() == parsed.frame.height == len(doc["jobs"])
    else:
        parsed = parse_partitions(doc, path.name)
        assert parsed.frame.schema == pl.Schema(PARTITION_SCHEMA)
        if "partitions" not in doc:
            assert parse_nodes(doc, path.name).frame.schema == pl.Schema(NODE_SCHEMA)
    assert parsed.problems == ()
    assert parsed.version.known


# --- 21.08, openapi/v0.0.37 -------------------------------------------------------------------


def test_v0037_squeue_running_job_and_wrapped_pending_array() -> None:
    jobs = parse_jobs(read(SLURM / "v0.0.37/squeue_out.json"), "squeue --json").frame
    cols = ("job_id", "name", "user", "group", "partition", "state", "submit_s", "eligible_s", "start_s",
            "end_s", "expected_start_s", "req_cores", "alloc_cores", "req_nodes", "alloc_nodes", "gpus",
            "req_mem_bytes", "req_walltime_s", "exit_code")  # fmt: skip
    assert rows(jobs, *cols) == [
        # running: 62.50G of memory in the TRES string = 64000 MiB (memory_per_cpu); limit 30240 min
        ("26515966", "job_name", "bkd", "1977700000", "hw-l", "RUNNING", 1684114900, 1684114900, 1684114921,
         None, None, 1, 1, 1, 1, 0, 64000 * MIB, 30240 * 60, None),
        # pending array 58948420 tasks 1-10, written with {set, infinite, number}; start_time 0 = no estimate
        ("58948420_[1-10]", "some job name", "bkd", "rvs", "hw-m", "PENDING", 1729715848, None, None,
         None, None, 1, None, 1, None, 0, 128 * 1024 * MIB, 1439 * 60, None),
    ]  # fmt: skip


def test_v0037_sinfo_nodes_and_partition() -> None:
    doc = read(SLURM / "v0.0.37/sinfo_out.json")
    nodes = parse_nodes(doc, "sinfo --json").frame
    assert rows(nodes, "name", "state", "cpus_total", "cpus_allocated", "memory_total_bytes",
                "memory_allocated_bytes", "partitions") == [
        ("cs2.example.company.com", ["MIXED"], 64, 4, 500000 * MIB, 114688 * MIB, ["hw"]),
        ("cs3.example.company.com", ["IDLE"], 64, 0, 500000 * MIB, 0, ["hw"]),
        ("cs4.example.company.com", ["ALLOCATED"], 64, 0, 500000 * MIB, 0, ["hw"]),
        ("cs5.example.company.com", ["DOWN"], 64, 0, 500000 * MIB, 0, ["hw"]),
    ]  # fmt: skip
    parts = parse_partitions(doc, "sinfo --json").frame
    assert rows(parts, "name", "state", "nodes_total", "cpus_total") == [("hw", None, 4, 256)]
    assert parts["nodes"].to_list() == [[f"cs{i}.example.company.com" for i in (2, 3, 4, 5)]]


# --- 22.05, openapi/v0.0.38 (our captures) ----------------------------------------------------

T2S = [
    # job_id, name, state, submit_s, eligible_s, start_s, expected_start_s, req_cores, alloc_cores, walltime
    ("1", "sleep1", "RUNNING", 1795279136, 1795279136, 1795279137, None, 1, 1, 60),
    ("2", "sleep2", "RUNNING", 1795279136, 1795279136, 1795279137, None, 1, 1, 60),
    ("3", "sleep3", "PENDING", 1795279136, 1795279136, None, 1795279197, 1, None, 60),
    ("4", "sleep4", "PENDING", 1795279136, 1795279136, None, 1795279200, 1, None, 60),
    ("5", "sleep5", "PENDING", 1795279136, 1795279136, None, 1795279260, 1, None, 60),
    ("6", "wide", "PENDING", 1795279136, 1795279136, None, 1795279320, 2, None, 120),
    ("7_[1-4]", "arr", "PENDING", 1795279136, 1795279137, None, 1795279620, 1, None, 60),
    ("8", "fails", "PENDING", 1795279136, 1795279136, None, 1795279680, 1, None, 60),
    ("9", "after_fail", "PENDING", 1795279136, None, None, None, 1, None, 60),  # Dependency: no estimate
    ("10", "after_arr", "PENDING", 1795279136, None, None, None, 1, None, 60),
    ("11", "later", "PENDING", 1795279136, 1795279156, None, 1795279156, 1, None, 60),  # --begin=now+20
    ("12", "tocancel", "PENDING", 1795279136, 1795279136, None, 1795279740, 1, None, 300),
    ("13", "timeout", "PENDING", 1795279136, 1795279136, None, 1795280040, 1, None, 60),
]


def test_v0038_squeue_two_seconds_in_pending_jobs_carry_the_backfill_estimate() -> None:
    jobs = parse_jobs(read(ACCT / "squeue_t2s.json"), "squeue --json").frame
    cols = ("job_id", "name", "state", "submit_s", "eligible_s", "start_s", "expected_start_s",
            "req_cores", "alloc_cores", "req_walltime_s")  # fmt: skip
    assert rows(jobs, *cols) == T2S
    assert rows(jobs, "user", "group", "partition").count(("root", "root", "debug")) == 13
    assert jobs["req_mem_bytes"].unique().to_list() == [1000 * MIB]
    assert jobs["end_s"].null_count() == 13  # squeue's end_time for unfinished jobs is start + limit
    assert jobs["exit_code"].null_count() == 13


def _squeue_start_text(path: Path) -> dict[str, int | None]:
    """`squeue --start`: JOBID … START_TIME (UTC ISO, or N/A)."""
    out: dict[str, int | None] = {}
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        stamp = fields[5]
        out[fields[0]] = None if stamp == "N/A" else int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())
    return out


@pytest.mark.parametrize(
    ("json_name", "text_name"),
    [(ACCT / "squeue_t2s.json", ACCT / "squeue_start_t2s.txt"),
     (ACCT / "squeue_t8s.json", ACCT / "squeue_start_t8s.txt"),
     (FOUR / "squeue_4nodes_t2s.json", FOUR / "squeue_start_4nodes.txt")],
    ids=["t2s", "t8s", "4nodes"],
)  # fmt: skip
def test_expected_starts_agree_with_squeue_start_text(json_name: Path, text_name: Path) -> None:
    jobs = parse_jobs(read(json_name), json_name.name).frame
    expected = dict(jobs.filter(pl.col("state") == "PENDING").select("job_id", "expected_start_s").iter_rows())
    text = _squeue_start_text(text_name)
    # squeue --start omits the job that was cancelled between the two captures
    assert {k: v for k, v in expected.items() if k in text} == text
    assert set(text) <= set(expected)


def test_v0038_squeue_eight_seconds_in() -> None:
    jobs = parse_jobs(read(ACCT / "squeue_t8s.json"), "squeue --json").frame
    assert rows(jobs, "job_id", "state", "start_s", "end_s", "expected_start_s", "alloc_cores") == [
        ("1", "COMPLETED", 1795279137, 1795279142, None, 1),
        ("2", "COMPLETED", 1795279137, 1795279142, None, 1),
        ("3", "RUNNING", 1795279142, None, None, 1),
        ("4", "RUNNING", 1795279142, None, None, 1),
        ("5", "PENDING", None, None, 1795279202, None),
        ("6", "PENDING", None, None, 1795279260, None),
        ("7_[1-4]", "PENDING", None, None, 1795279560, None),
        ("8", "PENDING", None, None, 1795279620, None),
        ("9", "PENDING", None, None, None, None),
        ("10", "PENDING", None, None, None, None),
        ("11", "PENDING", None, None, 1795279156, None),
        # scancel'ed while pending: Slurm writes the cancel time as start_time; it never started
        ("12", "CANCELLED", None, 1795279144, None, None),
        ("13", "PENDING", None, None, 1795279980, None),
    ]


FINAL = [
    # job_id, state, start_s, end_s, exit_code, alloc_cores, alloc_nodes
    ("1", "COMPLETED", 1795279137, 1795279142, 0, 1, 1),
    ("2", "COMPLETED", 1795279137, 1795279142, 0, 1, 1),
    ("3", "COMPLETED", 1795279142, 1795279147, 0, 1, 1),
    ("4", "COMPLETED", 1795279142, 1795279147, 0, 1, 1),
    ("5", "COMPLETED", 1795279148, 1795279153, 0, 1, 1),
    ("6", "COMPLETED", 1795279153, 1795279161, 0, 2, 1),
    ("7_1", "COMPLETED", 1795279162, 1795279165, 0, 1, 1),
    ("8", "FAILED", 1795279169, 1795279170, 3, 1, 1),  # raw wait status 768 = exit 3
    ("9", "CANCELLED", None, 1795279170, 0, None, None),  # DependencyNeverSatisfied
    ("10", "COMPLETED", 1795279169, 1795279171, 0, 1, 1),
    ("11", "COMPLETED", 1795279170, 1795279172, 0, 1, 1),
    ("12", "CANCELLED", None, 1795279144, 0, None, None),
    ("13", "TIMEOUT", 1795279171, 1795279250, 143, 1, 1),  # raw status 15 = SIGTERM → 128+15
    ("7_2", "COMPLETED", 1795279162, 1795279165, 0, 1, 1),
    ("7_3", "COMPLETED", 1795279165, 1795279168, 0, 1, 1),
    ("7_4", "COMPLETED", 1795279165, 1795279168, 0, 1, 1),
]


@pytest.mark.parametrize("name", ["squeue_final.json", "rest_slurm_v0.0.38_jobs.json"])
def test_v0038_finished_jobs_from_squeue_and_slurmrestd(name: str) -> None:
    jobs = parse_jobs(read(ACCT / name), name).frame
    assert rows(jobs, "job_id", "state", "start_s", "end_s", "exit_code", "alloc_cores", "alloc_nodes") == FINAL
    assert jobs["expected_start_s"].null_count() == 16


SACCT = [
    # job_id, state, submit_s, eligible_s, start_s, end_s, alloc_cores, req_walltime_s, exit_code
    ("1", "COMPLETED", 1795279136, 1795279136, 1795279137, 1795279142, 1, 60, 0),
    ("2", "COMPLETED", 1795279136, 1795279136, 1795279137, 1795279142, 1, 60, 0),
    ("3", "COMPLETED", 1795279136, 1795279136, 1795279142, 1795279147, 1, 60, 0),
    ("4", "COMPLETED", 1795279136, 1795279136, 1795279142, 1795279147, 1, 60, 0),
    ("5", "COMPLETED", 1795279136, 1795279136, 1795279148, 1795279153, 1, 60, 0),
    ("6", "COMPLETED", 1795279136, 1795279136, 1795279153, 1795279161, 2, 120, 0),
    ("7_4", "COMPLETED", 1795279136, 1795279137, 1795279165, 1795279168, 1, 60, 0),
    # Slurm 22.05's dbv0.0.38 writes exit_code {SUCCESS, 0} for this job although `sacct` text
    # shows 3:0; we report what the JSON says.
    ("8", "FAILED", 1795279136, 1795279136, 1795279169, 1795279170, 1, 60, 0),
    ("10", "COMPLETED", 1795279136, 1795279169, 1795279169, 1795279171, 1, 60, 0),
    ("11", "COMPLETED", 1795279136, 1795279156, 1795279170, 1795279172, 1, 60, 0),
    ("12", "CANCELLED", 1795279136, 1795279136, None, 1795279144, None, 300, 0),
    ("13", "TIMEOUT", 1795279136, 1795279136, 1795279171, 1795279250, 1, 60, 0),
    ("7_1", "COMPLETED", 1795279136, 1795279137, 1795279162, 1795279165, 1, 60, 0),
    ("7_2", "COMPLETED", 1795279136, 1795279137, 1795279162, 1795279165, 1, 60, 0),
    ("7_3", "COMPLETED", 1795279136, 1795279137, 1795279165, 1795279168, 1, 60, 0),
]
SACCT_COLS = ("job_id", "state", "submit_s", "eligible_s", "start_s", "end_s", "alloc_cores",
              "req_walltime_s", "exit_code")  # fmt: skip


def test_v0038_sacct_accounting_records() -> None:
    jobs = parse_jobs(read(ACCT / "sacct.json"), "sacct --json").frame
    assert rows(jobs, *SACCT_COLS) == SACCT
    assert jobs["expected_start_s"].null_count() == 15
    assert rows(jobs, "req_cores", "req_nodes", "req_mem_bytes", "gpus")[5] == (2, 1, 1000 * MIB, 0)


def _sacct_text(path: Path) -> dict[str, tuple[str, int | None, int, int]]:
    """`sacct` text: JobID JobName State ExitCode Start End Elapsed AllocCPUS NodeList."""
    out = {}
    for line in path.read_text().splitlines()[2:]:
        f = line.split()
        if "." in f[0]:
            continue
        start = None if f[4] == "None" else int(datetime.fromisoformat(f[4]).replace(tzinfo=UTC).timestamp())
        end = int(datetime.fromisoformat(f[5]).replace(tzinfo=UTC).timestamp())
        out[f[0]] = (f[2].rstrip("+"), start, end, int(f[7]))
    return out


def test_v0038_sacct_json_agrees_with_sacct_text() -> None:
    jobs = parse_jobs(read(ACCT / "sacct.json"), "sacct --json").frame
    text = _sacct_text(ACCT / "sacct.txt")
    # sacct's text prints AllocCPUS=1 for the job cancelled before it got an allocation
    got = {j: (s, st, e, c if c is not None else 1) for j, s, st, e, c in
           rows(jobs, "job_id", "state", "start_s", "end_s", "alloc_cores")}  # fmt: skip
    assert got == text


def test_v0038_slurmdb_rest_has_the_never_started_dependent_job_too() -> None:
    rest = parse_jobs(read(ACCT / "rest_slurmdb_v0.0.38_jobs.json"), "slurmrestd /slurmdb/v0.0.38/jobs").frame
    rest_rows = {r[0]: r for r in rows(rest, *SACCT_COLS)}
    assert rest_rows.pop("9") == ("9", "CANCELLED", 1795279136, None, None, 1795279170, None, 60, 0)
    assert sorted(rest_rows.values()) == sorted(SACCT)


FOUR_T2S = [
    # job_id, name, state, start_s, expected_start_s, req_cores, req_nodes, alloc_nodes, req_mem_bytes
    ("1", "cpuburn", "RUNNING", 1795279281, None, 2, 1, 1, 1000 * MIB),
    ("2", "mn", "RUNNING", 1795279281, None, 3, 3, 3, 3000 * MIB),
    ("3", "s1", "RUNNING", 1795279281, None, 2, 1, 1, 1000 * MIB),
    ("4", "s2", "RUNNING", 1795279281, None, 3, 1, 1, 1000 * MIB),
    ("5", "s3", "RUNNING", 1795279281, None, 4, 1, 1, 1000 * MIB),
    ("6", "s4", "RUNNING", 1795279281, None, 1, 1, 1, 1000 * MIB),
    ("7", "s5", "PENDING", None, 1795279341, 2, 1, None, 1000 * MIB),
    ("8", "s6", "PENDING", None, 1795279341, 3, 1, None, 1000 * MIB),
]


def test_v0038_four_nodes_squeue() -> None:
    t2s = parse_jobs(read(FOUR / "squeue_4nodes_t2s.json"), "squeue --json").frame
    cols = ("job_id", "name", "state", "start_s", "expected_start_s", "req_cores", "req_nodes", "alloc_nodes",
            "req_mem_bytes")  # fmt: skip
    assert rows(t2s, *cols) == FOUR_T2S
    final = parse_jobs(read(FOUR / "squeue_4nodes_final.json"), "squeue --json").frame
    assert rows(final, "job_id", "state", "start_s", "end_s") == [
        ("1", "COMPLETED", 1795279281, 1795279290),
        ("2", "COMPLETED", 1795279281, 1795279288),
        ("3", "COMPLETED", 1795279281, 1795279286),
        ("4", "COMPLETED", 1795279281, 1795279287),
        ("5", "COMPLETED", 1795279281, 1795279288),
        ("6", "COMPLETED", 1795279281, 1795279289),
        ("7", "COMPLETED", 1795279286, 1795279295),
        ("8", "COMPLETED", 1795279287, 1795279297),
    ]


NODE_COLS = ("name", "state", "cpus_total", "cpus_allocated", "memory_total_bytes", "memory_allocated_bytes",
             "partitions")  # fmt: skip


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (ACCT / "sinfo_busy.json", [("vm", ["ALLOCATED"], 2, 2, 1000 * MIB, 0, ["debug"])]),
        (ACCT / "sinfo_idle.json", [("vm", ["IDLE"], 2, 0, 1000 * MIB, 0, ["debug"])]),
        (ACCT / "rest_slurm_v0.0.38_nodes.json", [("vm", ["IDLE"], 2, 0, 1000 * MIB, 0, ["debug"])]),
        (FOUR / "sinfo_4nodes_busy.json", [
            ("node1", ["ALLOCATED"], 4, 4, 1000 * MIB, 0, ["debug"]),
            ("node2", ["MIXED"], 4, 3, 1000 * MIB, 0, ["debug"]),
            ("node3", ["ALLOCATED"], 4, 4, 1000 * MIB, 0, ["debug"]),
            ("node4", ["ALLOCATED"], 4, 4, 1000 * MIB, 0, ["debug"]),
        ]),
        (FOUR / "sinfo_4nodes_idle.json", [
            (f"node{i}", ["IDLE"], 4, 0, 1000 * MIB, 0, ["debug"]) for i in (1, 2, 3, 4)
        ]),
    ],
    ids=["busy", "idle", "rest", "4busy", "4idle"],
)  # fmt: skip
def test_v0038_nodes(path: Path, expected: list[tuple[Any, ...]]) -> None:
    assert rows(parse_nodes(read(path), path.name).frame, *NODE_COLS) == expected


def test_v0038_partitions_from_slurmrestd_and_from_sinfo() -> None:
    rest = parse_partitions(read(ACCT / "rest_slurm_v0.0.38_partitions.json"), "slurmrestd /partitions").frame
    assert rest.rows() == [("debug", "UP", ["vm"], 1, 2)]
    derived = parse_partitions(read(FOUR / "sinfo_4nodes_busy.json"), "sinfo --json").frame
    assert derived.rows() == [("debug", None, ["node1", "node2", "node3", "node4"], 4, 16)]


# --- 23.02, data_parser/v0.0.39 ---------------------------------------------------------------


def test_v0039_sinfo_per_node_entries() -> None:
    doc = read(SLURM / "v0.0.39/sinfo_dataparser.json")
    nodes = parse_nodes(doc, "sinfo -N --json").frame
    assert rows(nodes, *NODE_COLS) == [("localhost", ["ALLOCATED"], 1, 1, 1 * MIB, 1 * MIB, ["debug"])]
    assert parse_partitions(doc, "sinfo -N --json").frame.rows() == [("debug", None, ["localhost"], 1, 1)]


def test_v0039_slurmrestd_partitions_expand_host_lists() -> None:
    parts = parse_partitions(read(SLURM / "v0.0.39/23.02-slurm-partitions.json"), "slurmrestd /partitions").frame
    assert rows(parts, "name", "state", "nodes_total", "cpus_total") == [
        ("batch", None, 80, 160),
        ("debug", None, 19, 38),
        ("interactive", None, 1, 2),
    ]
    nodes = parts["nodes"].to_list()
    assert (len(nodes[0]), nodes[0][0], nodes[0][-1]) == (80, "cn001", "cn080")
    assert (len(nodes[1]), nodes[1][0], nodes[1][-1]) == (19, "cn081", "cn099")
    assert nodes[2] == ["cn100"]


# --- 23.11, data_parser/v0.0.40 ---------------------------------------------------------------

V40 = [
    # job_id, user, state, submit_s, start_s, end_s, expected_start_s, req_cores, alloc_cores
    ("671", "clara", "PENDING", 1731483270, None, None, 1732037400, 1, None),
    ("688", "clara", "PENDING", 1731484719, None, None, 1732037400, 1, None),
    ("717", "pkerr", "COMPLETED", 1731487566, 1732026245, 1732026605, None, 1, 1),
    ("720", "pkerr", "COMPLETED", 1731487597, 1732026245, 1732026605, None, 1, 1),
    ("754", "clara", "PENDING", 1731490829, None, None, 1732041000, 1, None),
    ("760", "pkerr", "PENDING", 1731491531, None, None, 1732030206, 4, None),
    ("761", "clara", "PENDING", 1731491541, None, None, 1732041000, 1, None),
    ("767", "clara", "PENDING", 1731491916, None, None, 1732041000, 1, None),
    ("768", "clara", "PENDING", 1731492250, None, None, 1732041000, 1, None),
    ("770", "pkerr", "PENDING", 1731492270, None, None, 1732030206, 1, None),
    ("772", "pkerr", "PENDING", 1731492610, None, None, 1732030206, 1, None),
    ("774", "clara", "PENDING", 1731492630, None, None, 1732044600, 16, None),
    ("789", "pkerr", "PENDING", 1731494058, None, None, 1732033800, 2, None),
    ("791", "clara", "PENDING", 1731494078, None, None, 1732044600, 2, None),
    ("793", "clara", "PENDING", 1731494416, None, None, 1732044600, 1, None),
    ("795", "pkerr", "PENDING", 1731494436, None, None, 1732033800, 1, None),
    ("808", "pkerr", "PENDING", 1731495849, None, None, 1732033800, 4, None),
    ("810", "pkerr", "PENDING", 1731495870, None, None, 1732033800, 1, None),
    ("812", "dshaw", "COMPLETED", 1732026216, 1732026244, 1732026605, None, 2, 2),
    ("813", "pkerr", "PENDING", 1732026227, None, None, 1732037400, 2, None),
    ("814", "jsherman", "COMPLETED", 1732026238, 1732026244, 1732026605, None, 1, 1),
    ("815", "clara", "PENDING", 1732026250, None, None, 1732044600, 1, None),
    ("816", "cgross", "RUNNING", 1732026261, 1732026605, None, None, 16, 16),
    ("817", "cgross", "RUNNING", 1732026271, 1732026605, None, None, 1, 1),
    ("818", "jcampbell", "RUNNING", 1732026282, 1732026605, None, None, 2, 2),
    ("819", "clara", "PENDING", 1732026292, None, None, 1732048200, 1, None),
    ("820", "jcampbell", "RUNNING", 1732026597, 1732026606, None, None, 1, 1),
    ("821", "pkerr", "PENDING", 1732026607, None, None, 1732037400, 2, None),
    ("822", "clara", "PENDING", 1732026617, None, None, 1732048200, 2, None),
    ("823", "jcampbell", "PENDING", 1732026627, None, None, 1732030206, 2, None),
]


def test_v0040_slurmrestd_jobs_list_valued_states_and_wrapped_numbers() -> None:
    jobs = parse_jobs(read(SLURM / "v0.0.40/23.11-slurm-jobs.json"), "slurmrestd /slurm/v0.0.40/jobs").frame
    cols = ("job_id", "user", "state", "submit_s", "start_s", "end_s", "expected_start_s", "req_cores",
            "alloc_cores")  # fmt: skip
    assert rows(jobs, *cols) == V40
    assert sorted(jobs["state"].value_counts().rows()) == [("COMPLETED", 4), ("PENDING", 22), ("RUNNING", 4)]
    # every job: 1 node, --mem=0 resolved by Slurm to mem=128G in the TRES, 60-minute limit
    assert jobs.select("req_nodes", "req_mem_bytes", "req_walltime_s", "group", "partition").unique().rows() == [
        (1, 128 * 1024 * MIB, 3600, "scientists", "normal")
    ]
    assert rows(jobs.filter(pl.col("state") == "COMPLETED"), "exit_code") == [(0,)] * 4


def test_v0040_nodes() -> None:
    nodes = parse_nodes(read(SLURM / "v0.0.40/23.11-slurm-nodes.json"), "slurmrestd /nodes").frame
    assert rows(nodes, *NODE_COLS) == [
        ("cn1", ["MIXED"], 64, 16, 131072 * MIB, 131072 * MIB, ["normal"]),
        ("cn2", ["MIXED"], 64, 1, 131072 * MIB, 131072 * MIB, ["normal"]),
        ("cn3", ["MIXED"], 64, 2, 131072 * MIB, 131072 * MIB, ["normal"]),
        ("cn4", ["MIXED"], 64, 1, 131072 * MIB, 131072 * MIB, ["normal"]),
    ]


def test_v0040_slurmdb_completed_job_every_column() -> None:
    jobs = parse_jobs(read(SLURM / "v0.0.40/23.11-slurmdb-job-completed.json"), "slurmrestd /slurmdb").frame
    assert jobs.to_dicts() == [{
        "site": None, "source": "slurm", "job_id": "816", "name": "wrap", "user": "cgross",
        "group": "scientists", "partition": "normal", "submit_s": 1732026261, "eligible_s": 1732026261,
        "start_s": 1732026605, "end_s": 1732026966, "expected_start_s": None, "req_cores": 16,
        "alloc_cores": 16, "req_nodes": 1, "alloc_nodes": 1, "gpus": 0, "req_mem_bytes": 131072 * MIB,
        "req_walltime_s": 3600, "state": "COMPLETED", "exit_code": 0, "container_runtime": None,
        "container_image": None, "ranks_per_container": None, "affinity": None, "interconnect": None,
        "observed_s": None, "nodes": "cn1", "reason": None, "remote_site": None, "remote_job_id": None,
        "containers_per_node": None, "threads_per_rank": None, "container_network": None,
    }]  # fmt: skip


# --- bad input --------------------------------------------------------------------------------


def test_invalid_json_names_source_line_and_column() -> None:
    with pytest.raises(SlurmJSONError, match=r"^squeue --json: invalid JSON at line 2 column 1"):
        parse_jobs(b'{"jobs": [\n', "squeue --json")
    with pytest.raises(SlurmJSONError, match="sinfo --json: empty output"):
        parse_nodes(b"  \n", "sinfo --json")
    with pytest.raises(SlurmJSONError, match="expected a JSON object, got list"):
        parse_jobs(b"[]", "sacct --json")
    assert issubclass(SlurmJSONError, CollectorError)


def test_unknown_version_is_an_error_naming_version_and_source() -> None:
    doc = json.loads(read(SLURM / "v0.0.40/23.11-slurm-jobs.json"))
    doc["meta"]["plugin"]["data_parser"] = "data_parser/v0.0.41"
    doc["meta"]["slurm"]["release"] = "24.05.1"
    with pytest.raises(UnknownSlurmVersion, match=r"^squeue --json: unknown Slurm JSON version "
                       r"data_parser/v0\.0\.41 \(Slurm 24\.05\.1\)"):  # fmt: skip
        parse_jobs(doc, "squeue --json")
    # recognisable structure: best-effort parse, the version reported as a problem
    parsed = parse_jobs(doc, "squeue --json", strict=False)
    assert parsed.frame.height == 30 and not parsed.version.known and parsed.problems == ()
    assert parsed.issues(allow_unknown_version=True) == ()
    assert parsed.issues() == (
        "squeue --json: unknown Slurm JSON version data_parser/v0.0.41 (Slurm 24.05.1); this parser knows "
        "openapi/v0.0.37, openapi/v0.0.38, data_parser/v0.0.39 and data_parser/v0.0.40; parsed best-effort",
    )


def test_document_without_meta_is_unknown_and_without_data_is_an_error() -> None:
    with pytest.raises(UnknownSlurmVersion, match=r"none \(no meta\.plugin in the document\)"):
        parse_jobs({"jobs": []}, "x")
    with pytest.raises(SlurmJSONError, match=r"^sinfo --json: no 'nodes' or 'sinfo' list in the document "
                       r"\(top-level keys: \['errors', 'jobs', 'meta'\]\)"):  # fmt: skip
        parse_nodes(read(ACCT / "squeue_t2s.json"), "sinfo --json")


def test_slurm_errors_without_data_are_raised() -> None:
    error = {"error": "Unable to contact slurm controller (connect failure)", "error_number": 1007}
    doc = {"meta": {"plugin": {"type": "openapi/v0.0.38"}}, "errors": [error]}
    with pytest.raises(SlurmJSONError, match=r"^squeue --json: Slurm error 1007: Unable to contact slurm"):
        parse_jobs(doc, "squeue --json")


def test_a_bad_record_is_skipped_and_named_the_rest_kept() -> None:
    doc = json.loads(read(ACCT / "squeue_t2s.json"))
    doc["jobs"][2]["submit_time"] = "yesterday"
    del doc["jobs"][4]["job_id"]
    doc["jobs"].append("not a job")
    parsed = parse_jobs(doc, "squeue --json")
    assert parsed.frame["job_id"].to_list() == [
        "1",
        "2",
        "4",
        "6",
        "7_[1-4]",
        "8",
        "9",
        "10",
        "11",
        "12",
        "13",
    ]
    assert parsed.problems == (
        "squeue --json: jobs[2] (job_id 3): field 'submit_time': expected a number or "
        "{set, infinite, number}, got str 'yesterday'; record skipped",
        "squeue --json: jobs[4] (name sleep5): missing field 'job_id'; record skipped",
        "squeue --json: jobs[13]: TypeError: expected an object, got str; record skipped",
    )


def test_nodes_sentinels_and_flags() -> None:
    doc = json.loads(read(ACCT / "sinfo_busy.json"))
    node = doc["nodes"][0]
    node.update(state="idle", state_flags=["DRAIN"], alloc_cpus=4294967294)
    assert rows(parse_nodes(doc, "s").frame, "state", "cpus_allocated") == [(["IDLE", "DRAIN"], None)]


# --- field helpers ----------------------------------------------------------------------------


def test_field_helpers() -> None:
    assert num({"set": True, "infinite": False, "number": 5}) == 5
    assert num({"set": False, "infinite": False, "number": 0}) is None
    assert num({"set": False, "infinite": True, "number": 0}) is None
    assert num(4294967295) is None and num("23") == 23 and num(None) is None
    with pytest.raises(TypeError):
        num([1])
    assert parse_tres("cpu=2,mem=62.50G,node=1,billing=2,gres/gpu=4") == {
        "cpu": 2, "mem": 67108864000, "node": 1, "billing": 2, "gres/gpu": 4}  # fmt: skip
    assert parse_tres("cpu=1,mem=1000M") == {"cpu": 1, "mem": 1000 * MIB}
    assert parse_tres("") == {} and parse_tres(None) == {}
    assert gpus_from_tres_per("gres:gpu:2") == 2
    assert gpus_from_tres_per("gres/gpu:a100:4,gres/shard:1") == 4
    assert gpus_from_tres_per("gres/gpu=1") == 1 and gpus_from_tres_per("") is None
    assert job_state("RUNNING") == "RUNNING" and job_state(["PENDING"]) == "PENDING"
    assert job_state(["RUNNING", "COMPLETING"]) == "RUNNING"
    assert job_state("COMPLETING") == "RUNNING" and job_state("REQUEUED") == "PENDING"
    assert job_state("CANCELLED by 0") == "CANCELLED" and job_state("OOM") == "OUT_OF_MEMORY"
    assert job_state("WHATEVER") == "UNKNOWN" and job_state(None) == "UNKNOWN"
    assert node_state("mixed", ["DRAIN", "MIXED"]) == ["MIXED", "DRAIN"]
    assert node_state(["IDLE", "DRAIN"]) == ["IDLE", "DRAIN"]
    assert exit_status(768) == 3 and exit_status(15) == 143 and exit_status(0) == 0
    assert exit_status({"status": "SUCCESS", "return_code": 0}) == 0
    assert exit_status({"status": ["EXITED"], "return_code": {"set": True, "infinite": False, "number": 2},
                        "signal": {"id": {"set": False, "infinite": False, "number": 0}}}) == 2  # fmt: skip
    assert exit_status({"status": "SIGNALED", "return_code": None, "signal": {"signal_id": 9}}) == 137
    assert expand_hostlist("cn[001-003,7],gpu1") == ["cn001", "cn002", "cn003", "cn7", "gpu1"]
    assert expand_hostlist("r[1-2]n[1-2]") == ["r1n1", "r1n2", "r2n1", "r2n2"]
    assert expand_hostlist("(null)") == [] and expand_hostlist("None assigned") == []
    with pytest.raises(ValueError, match="unbalanced"):
        expand_hostlist("cn[1-2")


def test_nothing_found_is_an_empty_result_not_an_error() -> None:
    # sacct --json on 22.05.8 when no job is in the window: errors [{error_number 9003, "Nothing found"}]
    parsed = parse_jobs(read(SLURM / "v0.0.38/live/sacct_nothing_found.json"), "sacct --json")
    assert (parsed.frame.height, parsed.problems) == (0, ())


def test_jobs_name_their_nodes_expanded_and_none_before_they_have_any() -> None:
    squeue = parse_jobs((FOUR / "squeue_4nodes_t2s.json").read_text(), "squeue", site="hpc").frame
    nodes = dict(zip(squeue["job_id"].to_list(), squeue["nodes"].to_list(), strict=True))
    assert nodes["2"] == "node1,node2,node3" and nodes["5"] == "node4" and nodes["7"] is None
    sacct_path = SLURM / "v0.0.38" / "single_node_acct" / "sacct.json"
    sacct = parse_jobs(sacct_path.read_text(), "sacct", site="hpc").frame
    pending = sacct.filter(pl.col("state") == "PENDING")["nodes"].to_list()
    assert set(sacct["nodes"].drop_nulls().to_list()) == {"vm"} and all(n is None for n in pending)


def test_pending_jobs_carry_slurms_reason() -> None:
    squeue = parse_jobs((FOUR / "squeue_4nodes_t2s.json").read_text(), "squeue", site="hpc").frame
    reasons = dict(zip(squeue["job_id"].to_list(), squeue["reason"].to_list(), strict=True))
    assert {k: v for k, v in reasons.items() if v} == {"7": "Resources", "8": "Priority"}
    assert reasons["2"] is None  # running: Slurm's "None" is no reason
