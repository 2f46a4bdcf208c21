"""The SWF reader on real Parallel Workloads Archive logs (tests/fixtures/swf, see PROVENANCE.md)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import polars as pl
import pytest

from collectors.swf import SWF_FIELDS, SWF_SCHEMA, SwfError, read_swf, strong_filter, to_job_history
from telemetry.jobs import JOB_SCHEMA

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "swf"
CTC = FIXTURES / "CTC-SP2-1996-3.1-cln.swf.gz"
CURIE = FIXTURES / "CEA-Curie-2011-2.1-cln.swf.gz"
CTC_UNIX_START = 835823160


@pytest.fixture(scope="module")
def ctc() -> pl.DataFrame:
    return read_swf(CTC, strict=True).jobs.collect()


def test_header_of_ctc_sp2() -> None:
    h = read_swf(CTC).header
    assert (h.version, h.computer, h.installation) == ("2.2", "IBM SP2", "Cornell Theory Center (CTC)")
    assert (h.max_jobs, h.max_records) == (79302, 79302)
    assert (h.unix_start_time, h.time_zone, h.time_zone_string) == (CTC_UNIX_START, -18000, "US/Eastern")
    assert (h.start_time, h.end_time) == ("Wed Jun 26 17:06:00 EDT 1996", "Sat May 31 23:11:26 EDT 1997")
    assert (h.max_nodes, h.max_procs, h.max_queues, h.max_partitions) == (338, 338, 4, None)
    assert h.extra["MaxNodes"] == "338 (batch partition; 512 total)"  # the number alone loses the note
    assert h.queues == {1: "DSI", 2: "astro", 3: "piofs", 4: "informix"}
    assert h.partitions == {}
    assert h.notes == [
        "uses the EASY scheduler",
        "THIS IS A CLEANED VERSION OF THE LOG!\nThe filter used to produce it was\n"
        "user=135 and (job>=47421 and job<=50307) (2080 jobs removed)",
    ]
    assert h.extra["Information"] == "http://www.tc.cornell.edu/\nhttp://www.cs.huji.ac.il/labs/parallel/workload/"
    assert h.extra["Preemption"] == "No"
    assert h.extra["Queues"] == "these are actually LoadLeveler classes"
    assert h.extra["Conversion"] == "Dror Feitelson (feit@cs.huji.ac.il) 06 Dec 2011"


def test_header_of_cea_curie_continuations_and_partitions() -> None:
    h = read_swf(CURIE).header
    assert (h.max_nodes, h.max_procs, h.unix_start_time) == (5544, 93312, 1296571124)
    assert h.time_zone is None and h.time_zone_string == "Europe/Paris"
    assert h.queues == {1: ""}
    assert len(h.partitions) == 33
    assert (h.partitions[7], h.partitions[19], h.partitions[33]) == ("test,batch", "`;", "crypto/munge")
    assert h.notes[0] == "--- SWF file converted from SACCT ---"
    # ";\tsee: http://..." continues the note above it; it is not a key "see"
    assert h.notes[1] == (
        "Curie is composed of 3 types of nodes: thin, fat, and hybrid,\n"
        "see: http://www-hpc.cea.fr/en/complexe/tgcc-curie.htm"
    )
    assert "see" not in h.extra


def test_first_and_last_job_of_ctc_sp2(ctc: pl.DataFrame) -> None:
    assert ctc.schema == SWF_SCHEMA
    assert ctc.height == 77222
    # "    1        0 588530    937  306 142.00    -1   -1  35100    -1  1  97  -1 307  3 -1 -1 -1"
    assert ctc.row(0, named=True) == {
        "job_number": 1, "submit_time": 0, "wait_time": 588530, "run_time": 937,
        "allocated_processors": 306, "average_cpu_time": 142.0, "used_memory": None,
        "requested_processors": None, "requested_time": 35100, "requested_memory": None, "status": 1,
        "user_id": 97, "group_id": None, "executable": 307, "queue": 3, "partition": None,
        "preceding_job": None, "think_time": None,
    }  # fmt: skip
    # "79302 29299062     23   2609    4   2361    -1   -1  10800    -1  1 182  -1 10856  1 -1 -1 -1"
    last = ctc.row(-1, named=True)
    assert [last[k] for k in ("job_number", "submit_time", "wait_time", "run_time", "average_cpu_time")] == [
        79302,
        29299062,
        23,
        2609,
        2361.0,
    ]
    assert (last["user_id"], last["executable"], last["queue"]) == (182, 10856, 1)


def test_gzip_and_plain_give_the_same_frame(tmp_path: Path, ctc: pl.DataFrame) -> None:
    plain = tmp_path / "ctc.swf"
    plain.write_bytes(gzip.decompress(CTC.read_bytes()))
    assert read_swf(plain).jobs.collect().equals(ctc)


def test_strong_filter_keeps_the_sc15_counts(ctc: pl.DataFrame) -> None:
    assert strong_filter(read_swf(CTC)).jobs.collect().height == 77199
    assert strong_filter(read_swf(CURIE)).jobs.collect().height == 295540


def test_strong_filter_caps_runtime_and_fills_processors(ctc: pl.DataFrame) -> None:
    cleaned = strong_filter(read_swf(CTC)).jobs.collect()
    # job 3 ran 35268 s for 35100 requested: kept, capped
    job3 = cleaned.filter(pl.col("job_number") == 3).row(0, named=True)
    assert (job3["run_time"], job3["requested_time"]) == (35100, 35100)
    assert cleaned.select((pl.col("run_time") <= pl.col("requested_time")).all()).item()
    # CTC never gives requested processors: they are filled from the allocated ones
    assert ctc["requested_processors"].null_count() == ctc.height
    assert cleaned.select((pl.col("requested_processors") == pl.col("allocated_processors")).all()).item()
    # the job with submit_time 0 (job 1) is kept
    assert cleaned["job_number"][0] == 1


def test_strong_filter_bounds_processors_by_maxprocs() -> None:
    # job 1 of CTC allocated 306 processors
    kept = strong_filter(read_swf(CTC), max_procs=305).jobs.collect()
    assert 1 not in kept["job_number"].to_list()
    assert kept.select((pl.col("allocated_processors") <= 305).all()).item()


def malformed_copy(tmp_path: Path, *, crlf: bool = False) -> tuple[Path, list[str]]:
    """A DERIVED fixture: the first 40 lines of the real CTC-SP2 log (29 header lines, 11 jobs),
    with malformed lines inserted and one value replaced. Every other line is verbatim."""
    lines = gzip.decompress(CTC.read_bytes()).decode().split("\n")[:40]
    lines.insert(32, "   12 34 56")  # line 33: too few fields
    lines.insert(35, lines[34] + " 99")  # line 36: 19 fields
    lines[37] = lines[37].replace(" 1  41 ", " x  41 ")  # line 38: job 7 with status "x"
    lines.insert(38, "\t  ")  # line 39: blank (whitespace only) — allowed
    lines.insert(39, "   ; a comment between jobs")  # line 40: comment — allowed
    path = tmp_path / "ctc-malformed.swf"
    path.write_bytes(("\r\n" if crlf else "\n").join(lines).encode() + b"\n")
    return path, lines


@pytest.mark.parametrize("crlf", [False, True])
def test_malformed_lines_are_skipped_counted_and_reported(tmp_path: Path, crlf: bool) -> None:
    path, _ = malformed_copy(tmp_path, crlf=crlf)
    log = read_swf(path)
    assert log.skipped == 3
    assert [(p.line, p.message) for p in log.problems] == [
        (33, "expected 18 fields, found 3"),
        (36, "expected 18 fields, found 19"),
        (38, "field 11 (status) is not an integer: 'x'"),
    ]
    assert log.problems[2].text.startswith("7 319091 13074")
    jobs = log.jobs.collect()
    assert jobs["job_number"].to_list() == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11]


def test_malformed_line_in_strict_mode_names_file_and_line(tmp_path: Path) -> None:
    path, _ = malformed_copy(tmp_path)
    with pytest.raises(SwfError, match=re.escape(f"{path}: line 33: expected 18 fields, found 3")):
        read_swf(path, strict=True)


def test_problems_list_is_capped_but_the_count_is_not(tmp_path: Path) -> None:
    path, _ = malformed_copy(tmp_path)
    log = read_swf(path, max_problems=1)
    assert (log.skipped, [p.line for p in log.problems]) == (3, [33])


def test_decimal_in_an_integer_field_is_an_error(tmp_path: Path) -> None:
    lines = gzip.decompress(CTC.read_bytes()).decode().split("\n")[:31]
    lines[29] = lines[29].replace(" 937 ", " 93.7 ")  # run_time of job 1, line 30
    path = tmp_path / "decimal.swf"
    path.write_text("\n".join(lines))
    with pytest.raises(SwfError, match=r"line 30: field 4 \(run_time\) is not an integer: '93.7'"):
        read_swf(path, strict=True)


def test_unreadable_file_is_an_swf_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SwfError, match=r"missing\.swf"):
        read_swf(tmp_path / "missing.swf")
    broken = tmp_path / "broken.swf.gz"
    broken.write_bytes(CTC.read_bytes()[:1000])
    with pytest.raises(SwfError, match=r"broken\.swf\.gz"):
        read_swf(broken)


def test_unreadable_header_value_is_a_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "header.swf"
    path.write_text("; Version: 2.2\n; MaxProcs: many\n; Queue: x\n1 0 0 5 1 -1 -1 1 10 -1 1 1 1 1 1 1 -1 -1\n")
    log = read_swf(path)
    assert log.header.max_procs is None and log.jobs.collect().height == 1
    assert [(p.line, p.message) for p in log.problems] == [
        (2, "MaxProcs is not a number: 'many'"),
        (3, "Queue line does not start with a number: 'x'"),
    ]
    assert log.skipped == 0  # header problems are not skipped jobs
    with pytest.raises(SwfError, match="line 2: MaxProcs is not a number"):
        read_swf(path, strict=True)


def test_header_only_log_has_no_jobs(tmp_path: Path) -> None:
    path = tmp_path / "empty.swf"
    path.write_text("; Version: 2.2\n; MaxProcs: 4\n")
    log = read_swf(path)
    assert log.header.max_procs == 4
    assert log.jobs.collect().schema == SWF_SCHEMA and log.jobs.collect().height == 0


def test_job_history_conforms_and_maps_fields(ctc: pl.DataFrame) -> None:
    history = to_job_history(read_swf(CTC), "ctc").collect()
    assert history.schema == JOB_SCHEMA
    assert history.height == ctc.height
    first = history.row(0, named=True)
    assert {k: first[k] for k in (
        "site", "source", "job_id", "name", "user", "group", "partition", "submit_s", "start_s", "end_s",
        "req_cores", "alloc_cores", "req_walltime_s", "req_mem_bytes", "state",
    )} == {
        "site": "ctc", "source": "swf", "job_id": "1", "name": "307", "user": "97", "group": None,
        "partition": "piofs",  # queue 3, named in the header
        "submit_s": CTC_UNIX_START, "start_s": CTC_UNIX_START + 588530, "end_s": CTC_UNIX_START + 588530 + 937,
        "req_cores": None, "alloc_cores": 306, "req_walltime_s": 35100, "req_mem_bytes": None,
        "state": "COMPLETED",
    }  # fmt: skip
    # status 0 → FAILED, 1 → COMPLETED; CTC has no other status
    states = dict(history.group_by("state").len().iter_rows())
    assert states == {"COMPLETED": 60553, "FAILED": 16669}


def test_job_history_uses_partition_names_and_cancelled_state() -> None:
    history = to_job_history(read_swf(CURIE), "curie").collect()
    states = dict(history.group_by("state").len().iter_rows())
    assert states == {"COMPLETED": 281337, "FAILED": 14003, "CANCELLED": 17486}
    # "272393 31656837 33492 86395 256 -1 -1 256 86400 -1 1 87 95 -1 -1 4 -1 -1": partition 4 = large
    first = history.row(0, named=True)
    assert (first["job_id"], first["partition"], first["name"]) == ("272393", "large", None)
    assert first["submit_s"] == 1296571124 + 31656837


def test_swf_fields_are_the_18_standard_ones() -> None:
    assert len(SWF_FIELDS) == 18 and SWF_FIELDS[0] == "job_number" and SWF_FIELDS[-1] == "think_time"
