"""From a parsed submission to an advice request, and from the answer to `-M CLUSTER -p PARTITION`.

Pure functions of the config and the job, so the wrapper's decisions are tested without Slurm.

- Which sites are Slurm clusters: `schedulers.slurm.clusters` (site → cluster), or, when that is
  empty, every site with a `slurm` collector under its own name.
- The candidates: those sites, narrowed to the clusters the user named with `-M` (`all`: every one).
- The partition at a site: the one the engine evaluated there. A site with configured
  `partitions:` is judged on the user's `-p` when it has it (else it is excluded), or on its first
  partition (twin/advice/rank.py `_limits`), so that is the one submitted to; a site without
  them gets the user's `-p`, or none (the cluster's default partition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.config import Config
from service.hooks.sbatch_script import JobSpec

__all__ = ["Placement", "SbatchSetupError", "SlurmSite", "advice_body", "candidates", "placement", "slurm_sites"]


class SbatchSetupError(ValueError):
    """The config or the user's -M leaves nothing to advise on; the message says what to change."""


@dataclass(frozen=True)
class SlurmSite:
    site: str
    cluster: str
    partitions: tuple[str, ...]
    """The site's configured partitions (what advice judges it on); empty: none configured."""


@dataclass(frozen=True)
class Placement:
    site: str
    cluster: str
    partition: str | None
    """None: the cluster's default partition (no -p)."""


def slurm_sites(config: Config) -> list[SlurmSite]:
    hook = config.schedulers.slurm
    by_name = {s.name: s for s in config.sites}
    if hook.clusters:
        unknown = sorted(set(hook.clusters) - set(by_name))
        if unknown:
            raise SbatchSetupError(
                f"schedulers.slurm.clusters names {', '.join(unknown)}, not a configured site"
                f" (sites: {', '.join(by_name) or 'none'}): fix the site names"
            )
        mapping = dict(hook.clusters)
    else:
        mapping = {s.name: s.name for s in config.sites if any(c.type == "slurm" for c in s.collectors)}
    if not mapping:
        raise SbatchSetupError(
            "no Slurm sites configured: give a site a `slurm` collector, or map sites to clusters"
            " with schedulers.slurm.clusters: {SITE: CLUSTER}"
        )
    return [
        SlurmSite(site, cluster, tuple(p.name for p in by_name[site].partitions)) for site, cluster in mapping.items()
    ]


def candidates(sites: list[SlurmSite], user_clusters: tuple[str, ...]) -> list[SlurmSite]:
    """The sites the user's own -M allows (all of them without -M, or with -M all)."""
    if not user_clusters or "all" in user_clusters:
        return list(sites)
    known = {s.cluster: s for s in sites}
    unknown = [c for c in user_clusters if c not in known]
    if unknown:
        raise SbatchSetupError(
            f"-M {','.join(user_clusters)}: {', '.join(unknown)} is not a cluster ctwin advises on"
            f" (configured: {', '.join(known)}); name only those, or map it in schedulers.slurm.clusters"
        )
    return [known[c] for c in user_clusters]


def _partition(site: SlurmSite, job: JobSpec) -> str | None:
    if site.partitions:
        return next((p for p in job.partitions if p in site.partitions), site.partitions[0])
    return ",".join(job.partitions) or None


def advice_body(
    job: JobSpec, sites: list[SlurmSite], *, user: str, default_walltime_s: float, home: str | None
) -> dict[str, Any]:
    """The POST /v1/advice body for the job, limited to `sites`."""
    walltime = job.time_s if job.time_s is not None else default_walltime_s
    body: dict[str, Any] = {
        "cores": job.cores,
        "walltime": walltime,
        "gpus": job.total_gpus,
        "user": user,
        "constraints": {"allowed_sites": [s.site for s in sites]},
    }
    if job.nodes is not None:
        body["nodes"] = job.nodes
    memory = job.memory_per_node_bytes
    if memory is not None:
        body["memory"] = memory
    if len(job.partitions) == 1:
        body["partition"] = job.partitions[0]
    if home is not None and home in {s.site for s in sites}:
        body["home"] = home
    return body


def placement(advice: dict[str, Any], sites: list[SlurmSite], job: JobSpec) -> Placement | None:
    """Where the advice says to submit (None: it recommends nothing)."""
    chosen = advice.get("recommended")
    site = next((s for s in sites if s.site == chosen), None)
    if site is None:
        return None
    return Placement(site.site, site.cluster, _partition(site, job))
