"""Fuzzing the SWF reader: any file gives an SwfLog whose frames collect, or an SwfError.

"A clear error" here: SwfError naming the file (and, for a bad line, its number) in strict mode,
or for a file that cannot be read at all; in the default mode a bad line is skipped and listed in
`SwfLog.problems` with its line number. Nothing else may escape, now or when the lazy frames are
collected downstream (`strong_filter`, `to_job_history`, `simulator_jobs`). Inputs: the first
jobs of two real logs (CTC-SP2, CEA-Curie, header included) with fields and header values replaced
by odd tokens, truncated, byte-flipped and spliced; gzipped or not; arbitrary bytes.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from collectors.swf import SWF_SCHEMA, SwfError, read_swf, simulator_jobs, strong_filter, to_job_history
from tests.conftest import FIXTURES
from tests.fuzzing import FUZZ, byte_mutations


def _head(name: str, size: int = 8000) -> bytes:
    data = gzip.decompress((FIXTURES / "swf" / name).read_bytes())
    return data[: data.find(b"\n", size) + 1]


LOGS = [_head("CTC-SP2-1996-3.1-cln.swf.gz"), _head("CEA-Curie-2011-2.1-cln.swf.gz")]
ODD_TOKENS = [
    b"-1", b"0", b"+7", b"1.5", b"1e300", b"-1e300", b"nan", b"inf", b"-inf", b"9" * 25, b"-" + b"9" * 25,
    b"9" * 5000, b"x", b"", b"\xc3(", "\u0661\u0660".encode(), b"0x10", b"1_000", b"\x00",
]  # fmt: skip
GOOD = b"1 0 10 100 4 -1 -1 4 200 -1 1 1 1 -1 1 -1 -1 -1\n"


@st.composite
def token_mutations(draw: Callable[..., Any]) -> bytes:
    """A real log with a few whitespace-separated tokens (data fields or header values) replaced."""
    lines = draw(st.sampled_from(LOGS)).split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        tokens = lines[i].split()
        if not tokens:
            continue
        j = draw(st.integers(0, len(tokens) - 1))
        tokens[j] = draw(st.sampled_from(ODD_TOKENS))
        lines[i] = b" ".join(tokens)
    return b"\n".join(lines)


_DIR = Path(tempfile.mkdtemp(prefix="ctwin-fuzz-swf-"))


def reads_or_says_why(data: bytes, gzipped: bool, strict: bool) -> None:
    path = _DIR / "fuzz.swf"
    path.write_bytes(gzip.compress(data) if gzipped else data)
    try:
        log = read_swf(path, strict=strict)
    except SwfError as exc:
        assert str(exc).startswith(str(path)), str(exc)
        return
    lines = data.count(b"\n") + 1
    assert all(1 <= p.line <= lines for p in log.problems)
    assert log.skipped <= lines
    jobs = log.jobs.collect()
    assert dict(jobs.schema) == SWF_SCHEMA
    for frame in (strong_filter(log).jobs, to_job_history(log, "fuzz"), simulator_jobs(log)):
        assert isinstance(frame.collect(), pl.DataFrame)


@FUZZ
@given(token_mutations() | byte_mutations(LOGS) | st.binary(max_size=300), st.booleans(), st.booleans())
# found by this test (each raised past the reader, or from its lazy frames, before its fix):
@example(b"; UnixStartTime: 99999999999999999999999\n" + GOOD, False, False)  # polars InvalidOperationError
@example(b"; MaxProcs: " + b"9" * 5000 + b"\n" + GOOD, False, False)  # ValueError: int() of 4,300+ digits
@example(b"; Queue: " + b"1" * 5000 + b" batch\n" + GOOD, False, True)  # the same, in a Queue line
@example(GOOD.replace(b"200 -1", b"200 1e300"), False, False)  # InvalidOperationError casting req_mem_bytes
def test_mutated_logs(data: bytes, gzipped: bool, strict: bool) -> None:
    reads_or_says_why(data, gzipped, strict)


@pytest.mark.parametrize(("token", "field"), [(b"nan", 6), (b"inf", 7), (b"-inf", 10)])
def test_non_finite_measurements_are_malformed_lines(token: bytes, field: int, tmp_path: Path) -> None:
    """Found while fuzzing: polars reads "nan"/"inf" as floats, so they passed as measurements (an
    infinite used memory) where SWF only has numbers and -1. Now they are bad lines like any other."""
    fields = GOOD.split()
    fields[field - 1] = token
    path = tmp_path / "x.swf"
    path.write_bytes(GOOD + b" ".join(fields) + b"\n" + GOOD)
    log = read_swf(path)
    assert log.jobs.collect().height == 2 and log.skipped == 1
    assert log.problems[0].line == 2
    message = log.problems[0].message
    assert message.startswith(f"field {field} (") and "is not a finite number" in message
    with pytest.raises(SwfError, match=r"x\.swf: line 2: field"):
        read_swf(path, strict=True)


def test_header_numbers_past_64_bits_are_reported_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.swf"
    path.write_bytes(b"; UnixStartTime: 99999999999999999999999\n; MaxProcs: 128\n" + GOOD)
    log = read_swf(path)
    assert log.header.unix_start_time is None and log.header.max_procs == 128
    assert [(p.line, p.message) for p in log.problems] == [
        (1, "UnixStartTime is out of the 64-bit range: '99999999999999999999999'")
    ]
    assert to_job_history(log, "x").collect()["submit_s"].to_list() == [0]
