"""`ctwin advise` as a user runs it: a real subprocess asking a real `ctwin serve` (this host and a
replayed HPC site), as a table, as JSON, as a preview, and refused with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dashboards.served import LOCAL_AND_KTH, Served, served_twin

JOB = ["--cores", "64", "--walltime", "2h", "--input", "20GB@local", "--user", "3"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_twin(LOCAL_AND_KTH, tmp_path_factory.mktemp("advise")) as twin:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the replayed site must have reported once
            answer = httpx.post(f"{twin.url}v1/advice", json={"cores": 1, "walltime": "1h"}, headers=twin.auth)
            if all(s["excluded_because"] != "no_data" for s in answer.json()["sites"]):
                break
            time.sleep(0.3)
        yield twin


def advise(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    """Run it as a script would: stdout and stderr are pipes, and no COLUMNS says how wide they are."""
    command = [sys.executable, "-m", "service.cli", "advise", *args, "--url", served.url, "--token", served.token]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)


def test_the_table_ranks_every_site_with_the_reason_and_the_recommendation(served: Served) -> None:
    done = advise(served, *JOB)
    assert done.returncode == 0, done.stderr
    assert "kth-sp2" in done.stdout and "jobs ahead" in done.stdout
    assert "needs 64 cores; local has" in done.stdout  # excluded, with why
    assert "→ run at kth-sp2" in done.stdout and "→" not in done.stderr  # the answer is output, not a diagnostic


def test_in_a_pipe_the_table_is_as_wide_as_its_rows_not_folded_to_80_columns(served: Served) -> None:
    done = advise(served, *JOB)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "kth-sp2" in line or " local " in line]
    kth = next(line for line in rows if "kth-sp2" in line and "hpc" in line)
    local = next(line for line in rows if "needs 64 cores; local has" in line)
    assert "jobs ahead" in kth and "edge" in local  # each site's whole row on one line
    assert "…" not in done.stdout  # no cell cut short
    assert max(len(line) for line in done.stdout.splitlines()) > 80


def test_json_is_the_api_answer_and_a_preview_books_and_logs_nothing(served: Served) -> None:
    real = advise(served, *JOB, "--json")
    assert real.returncode == 0, real.stderr
    advice = json.loads(real.stdout)
    assert advice["advice_id"].startswith("adv-") and advice["recommended"] == "kth-sp2"
    logged = httpx.get(f"{served.url}v1/advice/{advice['advice_id']}", headers=served.auth).json()
    assert logged["hook"] == "cli" and logged["request"]["cores"] == 64

    counted = advised(served)
    dry = advise(served, *JOB, "--json", "--preview")
    assert dry.returncode == 0, dry.stderr
    preview = json.loads(dry.stdout)
    assert preview["advice_id"].startswith("preview-") and preview["recommended"] == "kth-sp2"
    assert advised(served) == counted  # not counted, not logged


def advised(served: Served) -> float:
    """Answers handed out so far (ctwin_advice_total, every site)."""
    lines = httpx.get(f"{served.url}metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("ctwin_advice_total{"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--input", "20GB@atlantis"], "no site named 'atlantis'"),
        (["--input", "20GB@"], "use SIZE or SIZE@SITE"),
        (["--input", "lots@local"], "invalid size 'lots'"),
        (["--walltime", "soon"], "invalid duration"),
    ],
)
def test_bad_input_is_refused_with_the_reason(served: Served, args: list[str], says: str) -> None:
    base = ["--cores", "4", "--walltime", "1h"]
    done = advise(served, *base, *args)
    assert done.returncode != 0 and says in done.stderr, (done.returncode, done.stderr)
    assert done.stderr.count(says) == 1, done.stderr  # the reason once, not again as its detail


def test_a_service_that_is_not_there_is_named_with_the_fix(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "service.cli", "advise", "--cores", "1", "--walltime", "1h"]
    command += ["--url", "http://127.0.0.1:9", "--token", "x"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert done.returncode != 0 and "is `ctwin serve` running?" in done.stderr


def test_a_band_narrower_than_its_rounding_is_one_value() -> None:
    """A band like "4 h 11 min [4 h 11 min–4 h 11 min]" says nothing a single value does not."""
    from service import cli_advise, cli_sbatch
    from twin.advice.outcome import human_duration

    narrow = {"p10": 15_050.0, "p50": 15_060.0, "p90": 15_070.0}  # 4 h 11 min each, once rounded
    wide = {"p10": 600.0, "p50": 900.0, "p90": 1500.0}
    assert cli_advise._band(narrow, human_duration) == cli_sbatch._band(narrow) == "4 h 11 min"
    assert cli_advise._band(wide, human_duration) == cli_sbatch._band(wide) == "15 min [10 min–25 min]"
