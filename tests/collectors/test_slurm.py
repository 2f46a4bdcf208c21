"""The Slurm collector through its seams: a fake command runner and httpx.MockTransport serving the
real captured JSON (the parsers are the real ones), and the real subprocess runner on a stand-in
login node. Bad input: failing, hanging and garbled commands, unknown versions, slurmrestd's 401.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import polars as pl
import pytest
from pydantic import ValidationError

from collectors import registry
from collectors.base import CollectorError, Recorder
from collectors.slurm import SlurmCollector, SlurmConfig, SlurmPartialError, merge_snapshot, node_label
from collectors.slurm_json import parse_jobs
from collectors.slurm_transport import CommandResult, run_command
from telemetry.catalog import batch
from telemetry.jobs import JOB_SCHEMA
from tests.conftest import FIXTURES

SLURM = FIXTURES / "slurm"
ACCT = SLURM / "v0.0.38" / "single_node_acct"
MIB = 1024 * 1024
SACCT = "sacct --json -X -a -S now-3600seconds"

Answer = Path | bytes | BaseException | CommandResult


class FakeRunner:
    """Answers squeue/sinfo/sacct by command name: a capture file, raw bytes, a result or an error."""

    def __init__(self, answers: Mapping[str, Answer]) -> None:
        self.answers = dict(answers)
        self.calls: list[tuple[list[str], float, Mapping[str, str] | None]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float, env: Mapping[str, str] | None) -> CommandResult:
        self.calls.append((list(argv), timeout_s, env))
        name = next(a for a in argv if a in ("squeue", "sinfo", "sacct"))
        answer = self.answers[name]
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, CommandResult):
            return answer
        return CommandResult(0, answer.read_bytes() if isinstance(answer, Path) else answer, b"")


def collector(answers: Mapping[str, Answer], clock: float = 1795279130.0, **config: object) -> SlurmCollector:
    return SlurmCollector(SlurmConfig.model_validate(config), runner=FakeRunner(answers), clock=lambda: clock)


def values(rec: Recorder) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, tuple(sorted(s.labels.items()))): s.value for s in rec.samples}


def series(metric: str, value: float, **labels: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], float]:
    return (metric, tuple(sorted(labels.items()))), value


NODES_BUSY = dict(
    [
        series("batch_nodes", 1, state="allocated"),
        series("batch_nodes", 0, state="idle"),
        series("batch_nodes", 0, state="mixed"),
        series("batch_nodes", 0, state="down"),
        series("batch_cpus", 2, state="allocated"),
        series("batch_cpus", 0, state="idle"),
        series("batch_cpus", 0, state="other"),
        # CR_Core: memory is not a consumable resource there, so none of it is allocated
        series("batch_memory_bytes", 0, state="allocated"),
        series("batch_memory_bytes", 1000 * MIB, state="idle"),
        series("batch_memory_bytes", 0, state="other"),
    ]
)


def test_registered_and_config_checked() -> None:
    assert registry.get("slurm") is SlurmCollector
    with pytest.raises(ValidationError, match="transport rest needs url, api_version, user"):
        SlurmConfig(transport="rest")
    with pytest.raises(ValidationError, match="exactly one of token and token_file"):
        SlurmConfig.model_validate({"transport": "rest", "url": "http://h:6820", "api_version": "v0.0.38", "user": "u"})
    with pytest.raises(ValidationError, match="url only apply to transport rest"):
        SlurmConfig.model_validate({"url": "http://h:6820"})
    with pytest.raises(ValidationError, match="String should match pattern"):
        SlurmConfig.model_validate(
            {"transport": "rest", "url": "http://h", "api_version": "0.0.38", "user": "u", "token": "t"}
        )
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SlurmConfig.model_validate({"comand_prefix": ["ssh", "login1"]})
    assert SlurmConfig.model_validate({"timeout_s": "2s", "accounting_window": "2h"}).accounting_window == 7200


def test_cli_two_cycles_metrics_counters_and_snapshot() -> None:
    runner = FakeRunner({"squeue": ACCT / "squeue_t2s.json", "sinfo": ACCT / "sinfo_busy.json"})
    now = [1795279130.0]
    col = SlurmCollector(SlurmConfig(accounting=False), runner=runner, clock=lambda: now[0])
    rec = Recorder(strict=True)
    col.gather(rec)
    assert [c[0] for c in runner.calls] == [["squeue", "--json"], ["sinfo", "-N", "--json"]]
    assert all(timeout == 10.0 and env is None for _, timeout, env in runner.calls)
    assert values(rec) == {
        **NODES_BUSY,
        **dict(
            [
                series("batch_jobs", 11, partition="debug", state="pending"),
                series("batch_jobs_cpus", 12, partition="debug", state="pending"),  # `wide` asks for 2
                series("batch_jobs", 2, partition="debug", state="running"),
                series("batch_jobs_cpus", 2, partition="debug", state="running"),
                # the first look is the baseline: what it shows has already happened
                series("batch_jobs_submitted_total", 0, partition="debug"),
                series("batch_jobs_started_total", 0, partition="debug"),
            ]
        ),
    }
    snap = col.jobs_snapshot()
    assert snap.schema == dict(JOB_SCHEMA)
    assert snap.drop("observed_s").equals(
        parse_jobs((ACCT / "squeue_t2s.json").read_bytes(), "x").frame.drop("observed_s")
    )
    assert snap["observed_s"].unique().to_list() == [1795279130]
    pending = dict(snap.filter(snap["state"] == "PENDING").select("job_id", "expected_start_s").iter_rows())
    assert pending["3"] == 1795279197 and pending["9"] is None

    runner.answers["squeue"] = ACCT / "squeue_t8s.json"
    now[0] = 1795279144.0
    rec2 = Recorder(strict=True)
    col.gather(rec2)
    got = values(rec2)
    assert {k: v for k, v in got.items() if k[0].startswith("batch_jobs")} == dict(
        [
            series("batch_jobs", 8, partition="debug", state="pending"),
            series("batch_jobs_cpus", 9, partition="debug", state="pending"),
            series("batch_jobs", 2, partition="debug", state="running"),
            series("batch_jobs_cpus", 2, partition="debug", state="running"),
            series("batch_jobs_submitted_total", 0, partition="debug"),  # all 13 were in the baseline
            series("batch_jobs_started_total", 2, partition="debug"),  # jobs 3 and 4
            series("batch_jobs_finished_total", 1, partition="debug", state="cancelled"),
            series("batch_jobs_finished_total", 2, partition="debug", state="completed"),
        ]
    )


def test_cli_accounting_merged_into_the_snapshot() -> None:
    answers: dict[str, Answer] = {
        "squeue": ACCT / "squeue_final.json",
        "sinfo": ACCT / "sinfo_idle.json",
        "sacct": ACCT / "sacct.json",
    }
    col = collector(answers, clock=1795279300.0)
    rec = Recorder(strict=True)
    col.gather(rec)
    assert [c[0] for c in col._runner.calls][2] == SACCT.split()  # type: ignore[attr-defined]
    snap = col.jobs_snapshot()
    # accounting wins for finished jobs; squeue adds the job slurmdbd never recorded (9, never ran)
    assert snap["job_id"].to_list() == [
        "1", "2", "3", "4", "5", "6", "7_4", "8", "10", "11", "12", "13", "7_1", "7_2", "7_3", "9"
    ]  # fmt: skip
    # sacct (22.05) says exit 0 for both; squeue still shows them: 768 → exit 3, SIGTERM → 143
    exits = dict(snap.select("job_id", "exit_code").iter_rows())
    assert (exits["8"], exits["13"], exits["1"]) == (3, 143, 0)
    assert snap.filter(pl.col("job_id") == "8")["start_s"].to_list() == [1795279169]
    got = values(rec)
    assert got[series("batch_nodes", 1, state="idle")[0]] == 1
    assert got[series("batch_cpus", 0, state="idle")[0]] == 2
    assert got[series("batch_jobs", 0, partition="debug", state="pending")[0]] == 0
    assert got[series("batch_jobs_submitted_total", 0, partition="debug")[0]] == 0  # all before the first look
    assert not any(k[0] == "batch_jobs_finished_total" for k in got)


def test_merge_prefers_the_controller_for_active_jobs() -> None:
    t8s = parse_jobs((ACCT / "squeue_t8s.json").read_bytes(), "squeue").frame
    sacct = parse_jobs((ACCT / "sacct.json").read_bytes(), "sacct").frame
    running_in_sacct = sacct.head(2).with_columns(state=pl.lit("RUNNING"))  # jobs 1, 2
    merged = merge_snapshot(t8s.filter(t8s["job_id"] == "1"), running_in_sacct)
    assert merged.select("job_id", "state").rows() == [("1", "COMPLETED"), ("2", "RUNNING")]
    assert merge_snapshot(None, None).height == 0


def test_node_labels() -> None:
    assert node_label(["MIXED"]) == "mixed"
    assert node_label(["IDLE", "DRAIN"]) == "drained"
    assert node_label(["ALLOCATED", "DRAIN"]) == "draining"
    assert node_label(["DOWN", "FAIL"]) == "failed"
    assert node_label([]) == "unknown"


# --- bad input: the CLI -----------------------------------------------------------------------


def test_sinfo_fails_squeue_works_jobs_emitted_then_partial_error() -> None:
    stderr = b"sinfo: error: Unable to contact slurm controller (connect failure)\n"
    col = collector({"squeue": ACCT / "squeue_t2s.json", "sinfo": CommandResult(1, b"", stderr)}, accounting=False)
    rec = Recorder(strict=True)
    with pytest.raises(SlurmPartialError) as err:
        col.gather(rec)
    assert err.value.errors == [
        "sinfo -N --json: exit status 1: sinfo: error: Unable to contact slurm controller (connect failure)"
    ]
    assert err.value.partial and isinstance(err.value, CollectorError)
    assert rec.names() == {"batch_jobs", "batch_jobs_cpus", "batch_jobs_submitted_total", "batch_jobs_started_total"}
    assert rec.get(batch.JOBS, partition="debug", state="pending") == 11
    assert col.jobs_snapshot().height == 13
    assert col.last_errors == err.value.errors


def test_squeue_hangs_nodes_still_emitted() -> None:
    col = collector(
        {"squeue": TimeoutError("no answer within 10s"), "sinfo": ACCT / "sinfo_busy.json"}, accounting=False
    )
    rec = Recorder(strict=True)
    with pytest.raises(SlurmPartialError, match=r"^squeue --json: no answer within 10s, killed \(is slurmctld/"):
        col.gather(rec)
    assert values(rec) == NODES_BUSY
    assert col.jobs_snapshot().height == 0


def test_sacct_invalid_json_and_missing_binary() -> None:
    truncated = (ACCT / "sacct.json").read_bytes()[:1000]
    col = collector(
        {
            "squeue": ACCT / "squeue_final.json",
            "sinfo": FileNotFoundError(2, "No such file or directory"),
            "sacct": truncated,
        }
    )
    with pytest.raises(SlurmPartialError) as err:
        col.gather(Recorder())
    assert err.value.errors == [
        "sinfo -N --json: cannot run: [Errno 2] No such file or directory",
        f"{SACCT}: invalid JSON at line 53 column 9: Unterminated string starting at",  # `"elap`,
    ]
    assert col.jobs_snapshot().height == 16  # squeue's view survives


def test_unknown_version_parsed_best_effort_and_reported() -> None:
    doc = json.loads((SLURM / "v0.0.40/23.11-slurm-jobs.json").read_bytes())
    doc["meta"]["plugin"]["data_parser"] = "data_parser/v0.0.41"
    answers: dict[str, Answer] = {
        "squeue": json.dumps(doc).encode(),
        "sinfo": SLURM / "v0.0.40/23.11-slurm-nodes.json",
    }
    rec = Recorder(strict=True)
    with pytest.raises(SlurmPartialError) as err:
        collector(answers, clock=1732026870.0, accounting=False).gather(rec)
    assert err.value.errors == [
        "squeue --json: unknown Slurm JSON version data_parser/v0.0.41 (Slurm 23.11.10); this parser knows "
        "openapi/v0.0.37, openapi/v0.0.38, data_parser/v0.0.39 and data_parser/v0.0.40; parsed best-effort"
    ]
    assert rec.get(batch.JOBS, partition="normal", state="pending") == 22
    assert rec.get(batch.JOBS_CPUS, partition="normal", state="running") == 20  # 16 + 1 + 2 + 1
    assert rec.get(batch.CPUS, state="allocated") == 20 and rec.get(batch.CPUS, state="idle") == 236
    assert rec.get(batch.NODES, state="mixed") == 4

    ok = Recorder()
    collector(answers, accounting=False, allow_unknown_version=True).gather(ok)  # no error
    assert ok.get(batch.JOBS, partition="normal", state="running") == 4


def test_nothing_answers_is_a_plain_collector_error() -> None:
    col = collector({"squeue": TimeoutError(), "sinfo": TimeoutError(), "sacct": OSError("boom")}, timeout_s=3)
    with pytest.raises(CollectorError) as err:
        col.gather(Recorder())
    assert not isinstance(err.value, SlurmPartialError)
    assert str(err.value).startswith("squeue --json: no answer within 3s, killed")


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_real_runner_through_a_login_node_prefix(tmp_path: Path) -> None:
    """The default subprocess runner end to end: prefix, env SLURM_CONF, stderr, and a hang killed."""
    login = write_script(
        tmp_path / "login1",
        f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
case "$*" in
  *squeue*) cat {ACCT}/squeue_t2s.json ;;
  *sinfo*) sleep 30 ;;
  *sacct*) echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1 ;;
esac
""",
    )
    col = SlurmCollector(
        SlurmConfig.model_validate({"command_prefix": [str(login)], "slurm_conf": "/etc/slurm/x.conf", "timeout_s": 1})
    )
    rec = Recorder(strict=True)
    started = time.monotonic()
    with pytest.raises(SlurmPartialError) as err:
        col.gather(rec)
    elapsed = time.monotonic() - started
    col.close()
    assert elapsed < 5  # one timeout for all three (concurrent), the sleeping child killed
    assert sorted(err.value.errors) == [
        f"{login} env SLURM_CONF=/etc/slurm/x.conf sacct --json -X -a -S now-3600seconds: exit status 1: "
        "sacct: error: Slurm accounting storage is disabled",
        f"{login} env SLURM_CONF=/etc/slurm/x.conf sinfo -N --json: no answer within 1s, killed "
        "(is slurmctld/slurmdbd up?)",
    ]
    assert rec.get(batch.JOBS, partition="debug", state="running") == 2
    assert sorted((tmp_path / "calls").read_text().splitlines()) == [
        "env SLURM_CONF=/etc/slurm/x.conf sacct --json -X -a -S now-3600seconds",
        "env SLURM_CONF=/etc/slurm/x.conf sinfo -N --json",
        "env SLURM_CONF=/etc/slurm/x.conf squeue --json",
    ]


def test_run_command_kills_the_whole_group_on_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        run_command(["sh", "-c", f"(sleep 2; touch {marker}) & sleep 30"], 0.5)
    assert time.monotonic() - started < 3
    time.sleep(2.5)
    assert not marker.exists()  # the background grandchild died with the group
    result = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], 5, {"X": "1"})
    assert result == CommandResult(3, b"out\n", b"err\n")


# --- slurmrestd -------------------------------------------------------------------------------

REST_FILES = {
    "/slurm/v0.0.38/jobs": ACCT / "rest_slurm_v0.0.38_jobs.json",
    "/slurm/v0.0.38/nodes": ACCT / "rest_slurm_v0.0.38_nodes.json",
    "/slurm/v0.0.38/partitions": ACCT / "rest_slurm_v0.0.38_partitions.json",
    "/slurmdb/v0.0.38/jobs": ACCT / "rest_slurmdb_v0.0.38_jobs.json",
}


def rest_collector(
    handler: httpx.MockTransport | None = None, **extra: object
) -> tuple[SlurmCollector, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=REST_FILES[request.url.path].read_bytes())

    client = httpx.Client(transport=handler or httpx.MockTransport(serve))
    config = {"transport": "rest", "url": "http://slurm.example:6820/", "api_version": "v0.0.38", "user": "twin",
              "token": "tok-1", **extra}  # fmt: skip
    return SlurmCollector(SlurmConfig.model_validate(config), http_client=client, clock=lambda: 1795279300.0), seen


def test_rest_serves_the_real_captures() -> None:
    col, seen = rest_collector()
    rec = Recorder(strict=True)
    col.gather(rec)
    assert sorted(str(r.url) for r in seen) == [
        "http://slurm.example:6820/slurm/v0.0.38/jobs",
        "http://slurm.example:6820/slurm/v0.0.38/nodes",
        "http://slurm.example:6820/slurm/v0.0.38/partitions",
        "http://slurm.example:6820/slurmdb/v0.0.38/jobs?start_time=now-3600seconds&skip_steps=true",
    ]
    assert {(r.headers["X-SLURM-USER-NAME"], r.headers["X-SLURM-USER-TOKEN"]) for r in seen} == {("twin", "tok-1")}
    snap = col.jobs_snapshot()
    assert snap.height == 16 and set(snap["state"]) == {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}
    assert rec.get(batch.NODES, state="idle") == 1 and rec.get(batch.CPUS, state="idle") == 2
    assert rec.get(batch.JOBS, partition="debug", state="running") == 0


def test_rest_token_file_is_reread_each_cycle(tmp_path: Path) -> None:
    token_file = tmp_path / "jwt"
    token_file.write_text("SLURM_JWT=first\n")
    col, seen = rest_collector(token=None, token_file=str(token_file), accounting=False)
    col.gather(Recorder())
    token_file.write_text("second")
    col.gather(Recorder())
    assert [r.headers["X-SLURM-USER-TOKEN"] for r in seen] == ["first"] * 3 + ["second"] * 3
    token_file.unlink()
    with pytest.raises(CollectorError, match=rf"token_file {token_file}: No such file or directory"):
        col.gather(Recorder())


def test_rest_401_names_the_url_and_user() -> None:
    # slurmrestd 22.05.8 without an accepted token: HTTP 401, body "Authentication failure"
    col, _ = rest_collector(httpx.MockTransport(lambda r: httpx.Response(401, text="Authentication failure")))
    with pytest.raises(CollectorError) as err:
        col.gather(Recorder())
    assert not isinstance(err.value, SlurmPartialError)
    assert str(err.value).split("; ")[0] == (
        "slurmrestd GET http://slurm.example:6820/slurm/v0.0.38/jobs: HTTP 401 Unauthorized: slurmrestd "
        "rejected the token of user 'twin' (expired or wrong key? Authentication failure)"
    )


def test_rest_500_with_slurm_errors_and_a_dead_server() -> None:
    # slurmrestd 22.05.8 with a token slurmctld rejects: HTTP 500 and Slurm's error list
    body = {"meta": {"plugin": {"type": "openapi/v0.0.38"}}, "jobs": [],
            "errors": [{"description": "Failed while looking for jobs", "error_number": -1,
                        "error": "Unspecified error", "source": "slurm_load_jobs"}]}  # fmt: skip

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jobs") and "slurmdb" not in request.url.path:
            return httpx.Response(500, json=body)
        if "slurmdb" in request.url.path:
            raise httpx.ConnectError("Connection refused")
        return httpx.Response(200, content=REST_FILES[request.url.path].read_bytes())

    col, _ = rest_collector(httpx.MockTransport(serve))
    rec = Recorder(strict=True)
    with pytest.raises(SlurmPartialError) as err:
        col.gather(rec)
    assert err.value.errors == [
        "slurmrestd GET http://slurm.example:6820/slurm/v0.0.38/jobs: HTTP 500: Failed while looking for jobs",
        "slurmrestd GET http://slurm.example:6820/slurmdb/v0.0.38/jobs?start_time=now-3600seconds&skip_steps=true:"
        " ConnectError: Connection refused",
    ]
    assert rec.get(batch.NODES, state="idle") == 1  # nodes and partitions still arrived
