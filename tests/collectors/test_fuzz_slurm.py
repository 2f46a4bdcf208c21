"""Fuzzing the Slurm JSON parsers (21.08-23.11): any input gives a Parsed or a SlurmJSONError.

"A clear error" here: SlurmJSONError (UnknownSlurmVersion included) whose message starts with the
source, for a document that cannot be read as a whole; a record that cannot be converted is skipped
and named in `Parsed.problems`. Nothing else may escape, and a Parsed frame always has the
documented schema. Inputs: every capture in tests/fixtures/slurm, mutated (values of the wrong
type, huge, NaN, deleted or unexpected keys), as decoded documents and as JSON text; the captures'
bytes truncated, flipped and spliced; arbitrary bytes. Each bug found is kept as an @example.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from collectors.slurm_json import (
    NODE_SCHEMA,
    PARTITION_SCHEMA,
    Parsed,
    SlurmJSONError,
    parse_jobs,
    parse_nodes,
    parse_partitions,
)
from telemetry.jobs import JOB_SCHEMA
from tests.conftest import FIXTURES
from tests.fuzzing import FUZZ, byte_mutations, json_mutations

FILES = sorted((FIXTURES / "slurm").rglob("*.json"))
META_40 = {"plugin": {"data_parser": "data_parser/v0.0.40"}}


def _trimmed(path: Path) -> Any:
    """The capture with each record list cut to three records: the same shapes, cheaper copies."""
    doc = json.loads(path.read_text())
    return {k: v[:3] if isinstance(v, list) else v for k, v in doc.items()}


DOCUMENTS = [_trimmed(p) for p in FILES]
BLOBS = [p.read_bytes()[:20_000] for p in FILES]
PARSERS = {
    "jobs": (parse_jobs, JOB_SCHEMA),
    "nodes": (parse_nodes, NODE_SCHEMA),
    "partitions": (parse_partitions, PARTITION_SCHEMA),
}


def parses_or_says_why(data: str | bytes | dict[str, Any]) -> None:
    for kind, (parse, schema) in PARSERS.items():
        for strict in (True, False):
            try:
                parsed = parse(data, "fuzz-source", strict=strict)
            except SlurmJSONError as exc:
                assert str(exc).startswith("fuzz-source"), str(exc)
                continue
            assert isinstance(parsed, Parsed)
            assert dict(parsed.frame.schema) == dict(schema), kind
            assert all(p.startswith("fuzz-source") for p in parsed.problems)


def _job(**fields: Any) -> dict[str, Any]:
    return {"meta": META_40, "jobs": [{"job_id": 7, "job_state": ["RUNNING"], **fields}]}


@FUZZ
@given(json_mutations(DOCUMENTS), st.booleans())
# found by this test (each raised past the parser before its fix):
@example({"meta": META_40, "errors": 5, "jobs": []}, False)  # TypeError: 'int' object is not iterable
@example(_job(name=["", "x"]), False)  # polars ComputeError building the frame: a list for a name
@example(_job(job_id=2**70), False)  # polars TypeError: an Int128 value for an Int64 column
@example(_job(time_limit=2**60), False)  # OverflowError: minutes * 60 past 64 bits, at frame build
@example({"meta": META_40, "nodes": [{"name": "n1", "cpus": float("inf")}]}, True)  # int(inf): OverflowError
@example({"meta": META_40, "nodes": [{"name": "n1", "real_memory": 2**50}]}, False)  # MiB * 2**20
def test_mutated_documents(doc: Any, as_text: bool) -> None:
    parses_or_says_why(json.dumps(doc) if as_text else doc)


@FUZZ
@given(byte_mutations(BLOBS) | st.binary(max_size=400))
@example(b'{"jobs": [], "x": ' + b"9" * 5000 + b"}")  # ValueError: int() of 4,300+ digits in json.loads
@example(b'{"jobs": ' + b"[" * 100_000)  # RecursionError in json.loads
def test_mutated_bytes(data: bytes) -> None:
    parses_or_says_why(data)


def test_a_bad_record_is_skipped_and_named_not_the_document() -> None:
    good = {"job_id": 8, "job_state": ["PENDING"], "name": "ok"}
    doc = {"meta": META_40, "jobs": [{"job_id": 7, "job_state": ["RUNNING"], "name": ["x"]}, good]}
    parsed = parse_jobs(doc, "squeue --json")
    assert parsed.frame["job_id"].to_list() == ["8"]
    assert parsed.problems == (
        "squeue --json: jobs[0] (job_id 7): field 'name': ['x'] does not fit a String column; record skipped",
    )
    big = parse_jobs(_job(time_limit=2**60), "squeue --json")
    assert big.frame.is_empty() and "field 'req_walltime_s'" in big.problems[0]
    inf = parse_nodes({"meta": META_40, "nodes": [{"name": "n1", "cpus": float("inf")}]}, "sinfo")
    assert inf.problems == (
        "sinfo: nodes[0] (name n1): field 'cpus': expected a finite number, got inf; record skipped",
    )


@pytest.mark.parametrize("errors", [5, "slurmctld down", {"error": "boom", "error_number": 1}])
def test_a_lone_error_that_is_not_a_list_is_still_reported(errors: Any) -> None:
    with pytest.raises(SlurmJSONError, match=r"^src: Slurm error"):
        parse_jobs({"meta": META_40, "errors": errors}, "src")
    parsed = parse_jobs({"meta": META_40, "errors": errors, "jobs": []}, "src")
    assert parsed.frame.is_empty() and parsed.problems[0].startswith("src: Slurm error")
    assert isinstance(parsed.frame, pl.DataFrame)
