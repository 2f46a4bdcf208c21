"""What sbatch prints, read back: `--parsable` ("JOBID[;CLUSTER]") and `--test-only`'s answer.

`sbatch -M a,b --test-only` asks every cluster for a will-run answer and prints only the chosen
one, without its cluster; with `-vv` it also prints each cluster's answer as a debug line that
names it (captured from a real Slurm 22.05.8 in tests/fixtures/slurm/sbatch_test_only/):

    sbatch: debug:  Job 6 to start at 2026-12-02T16:32:48 on cluster alpha using 1 processors
        on nodes node1 in partition debug
    sbatch: debug:  Job 1 to start at 2026-12-02T16:20:51 on cluster beta using 1 processors
        on nodes node1 in partition debug
    sbatch: Job 2 to start at 2026-12-02T16:20:51 using 1 processors on nodes node1 in partition debug

(each answer is one line; wrapped here).

The chosen cluster is the one whose debug answer has the final answer's start, nodes and
partition (the final line comes from a second will-run on it, so its job id differs). With one
cluster there are no debug lines: that cluster it is. Times are the submitting host's local time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

__all__ = ["SbatchPick", "WillRun", "parse_parsable", "parse_test_only"]

_WILL_RUN = re.compile(
    r"^sbatch: (?P<debug>debug:\s+)?Job (?P<job>\d+) to start at (?P<start>\S+)"
    r"(?: on cluster (?P<cluster>\S+))? using (?P<procs>\d+) processors on nodes (?P<nodes>\S+)"
    r" in partition (?P<partition>\S+)\s*$"
)
_ERROR = re.compile(r"^(?:sbatch: error: |allocation failure: )(?P<msg>.+)$")


@dataclass(frozen=True)
class WillRun:
    cluster: str | None
    start_s: float
    start_text: str
    processors: int
    nodes: str
    partition: str


@dataclass(frozen=True)
class SbatchPick:
    """The answer sbatch would act on: its cluster(s) (several when answers tie), and every
    cluster's own answer when there were several; or the errors."""

    chosen: WillRun | None
    clusters: tuple[str, ...]
    per_cluster: tuple[WillRun, ...]
    errors: tuple[str, ...]


def _local_ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()  # naive: the local time sbatch prints


def parse_test_only(stderr: str, asked: tuple[str, ...] = ()) -> SbatchPick:
    """`asked`: the clusters given to -M (the answer's cluster when only one answered)."""
    final: WillRun | None = None
    per: list[WillRun] = []
    errors: list[str] = []
    for line in stderr.splitlines():
        m = _WILL_RUN.match(line.strip())
        if m:
            answer = WillRun(
                m["cluster"], _local_ts(m["start"]), m["start"], int(m["procs"]), m["nodes"], m["partition"]
            )
            if m["debug"]:
                per.append(answer)
            else:
                final = answer
            continue
        e = _ERROR.match(line.strip())
        if e:
            errors.append(e["msg"].strip())
    clusters: tuple[str, ...] = ()
    if final is not None:
        same = [
            w.cluster
            for w in per
            if w.cluster and (w.start_text, w.nodes, w.partition) == (final.start_text, final.nodes, final.partition)
        ]
        if same:
            clusters = tuple(same)
        elif not per and len(asked) == 1:
            clusters = asked
    return SbatchPick(final, clusters, tuple(per), tuple(errors))


def parse_parsable(stdout: str) -> tuple[str, str | None]:
    """(job id, cluster or None) from `sbatch --parsable`; ValueError if it is not that."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job, _, cluster = line.partition(";")
    if not job or not re.fullmatch(r"\d+(?:_\d+)?", job):
        raise ValueError(f"sbatch --parsable printed {stdout.strip()!r}, not JOBID[;CLUSTER]")
    return job, cluster or None
