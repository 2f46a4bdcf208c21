"""Small builders shared by the simulator tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from collectors.swf import read_swf, simulator_jobs, strong_filter
from twin.sim import History, Job, SimResult, jobs_from_frame

KTH = Path(__file__).resolve().parents[2] / "collectors" / "traces" / "KTH-SP2-1996-2.1-cln.swf.gz"


def job(
    job_id: str,
    submit: int,
    run: int | None,
    req: int | None,
    procs: int,
    user: str | None = None,
    partition: str | None = None,
    nodes: int | None = None,
) -> Job:
    return Job(job_id, submit, run, req, procs, nodes, user, partition)


def starts(result: SimResult) -> dict[str, int | None]:
    return dict(zip(result.jobs["job_id"].to_list(), result.jobs["start_s"].to_list(), strict=True))


class Fixed:
    """A predictor answering from a table (job id → seconds), the requested time otherwise."""

    name = "fixed"

    def __init__(self, table: Mapping[str, float]) -> None:
        self.table = dict(table)
        self.observed: list[str] = []

    def predict(self, job: Job, history: History) -> float:
        return self.table.get(job.job_id, job.req_s or 1)

    def observe(self, job: Job) -> None:
        self.observed.append(job.job_id)


def kth_slice(n: int = 2000) -> list[Job]:
    """The first `n` jobs of the shipped KTH-SP2 trace after the SC'15 strong filter."""
    cleaned = simulator_jobs(strong_filter(read_swf(KTH))).head(n)
    return jobs_from_frame(cleaned)
