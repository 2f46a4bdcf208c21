"""Which Slurm job holds which GPU of this node: from the jobs' `gres_detail` (squeue --json,
slurmrestd's jobs), pure functions of the document.

slurmctld writes `gres_detail` per allocated node, in the order of the job's node list, each entry
the node's GRES joined by commas (src/slurmctld gres_ctld: `_job_gres_details`):
`<name>[:<type>]:<count>(IDX:<indices>)` when the GRES has device bitmaps, e.g. `gpu:a100:2(IDX:0-1)`
or `gpu:4(IDX:0,2-3)`, and `<name>[:<type>](CNT:<count>)` when it has none (no index to map). The
indices are Slurm's positions in the node's GPU list, which with `AutoDetect=nvml` (or a gres.conf
in PCI order) is NVML's enumeration order, i.e. nvidia-smi's `index`.

The label is the numeric `job_id`, the SLURM_JOB_ID a job's processes see (an array task has its
own), as DCGM exporter's HPC job mapping files are named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from collectors.slurm_fields import expand_hostlist, integer, job_state

__all__ = ["gpu_jobs_on_node", "parse_gres_detail", "parse_index_list"]

_ENTRY = re.compile(r"(?P<gres>[^,(]+?)(?::(?P<count>\d+))?\((?P<kind>IDX|CNT):(?P<body>[^)]*)\)")


def parse_index_list(text: str) -> list[int]:
    """Slurm's bitmap format `0-1,4` → [0, 1, 4]; `N/A` (nothing allocated) → []."""
    text = text.strip()
    if not text or text.upper() == "N/A":
        return []
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad index range {part!r} in {text!r}")
        out.extend(range(int(lo), int(hi if sep else lo) + 1))
    return out


def parse_gres_detail(entry: str) -> dict[str, list[int]]:
    """One node's `gres_detail` entry → GRES name → device indices.

    `gpu:a100:2(IDX:0-1),mps:100(IDX:0)` → {"gpu": [0, 1], "mps": [0]}; a `(CNT:n)` GRES has no
    indices and maps to []. The GRES name is the part before the first colon (`gpu:a100` → gpu).
    """
    out: dict[str, list[int]] = {}
    for m in _ENTRY.finditer(entry):
        name = m.group("gres").strip().split(":", 1)[0]
        indices = parse_index_list(m.group("body")) if m.group("kind") == "IDX" else []
        out.setdefault(name, []).extend(indices)
    return out


def _jobs(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    jobs = doc.get("jobs")
    if not isinstance(jobs, list):
        raise ValueError(f"no 'jobs' list in the document (top-level keys: {sorted(doc)})")
    return [j for j in jobs if isinstance(j, Mapping)]


def gpu_jobs_on_node(doc: Mapping[str, Any], node: str, gres: str = "gpu") -> dict[int, str]:
    """GPU index → job id, for the running jobs of a squeue/slurmrestd jobs document on `node`.

    A job whose `gres_detail` is missing or shorter than its node list (Slurm < 20.11, or a
    GRES without device files) contributes nothing: no guess from counts.
    """
    out: dict[int, str] = {}
    for job in _jobs(doc):
        if job_state(job.get("job_state")) != "RUNNING":
            continue
        nodes = expand_hostlist(job.get("nodes"))
        if node not in nodes:
            continue
        details = job.get("gres_detail")
        position = nodes.index(node)
        if not isinstance(details, list) or position >= len(details) or not isinstance(details[position], str):
            continue
        job_id = integer(job.get("job_id"))
        if job_id is None:
            continue
        for index in parse_gres_detail(details[position]).get(gres, []):
            out[index] = str(job_id)
    return out
