"""A container configuration: how a job is containerised, as the job request, the job history and
the effect model see it.

Why one type: the request says how the user wants to run, a site may force part of it (a runtime
that always gives each container a private network namespace), the history records how a job ran,
and the model reads the same fields as features. Unset fields mean "not said": the model routes
them as missing, and a site's forced fields override only what they name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal

import polars as pl

from models.containers.effect import CONFIG_FEATURES

__all__ = [
    "AFFINITIES",
    "CAVEAT",
    "EFFECT_KIND",
    "NETWORKS",
    "Affinity",
    "ContainerConfig",
    "Network",
    "config_features",
]

EFFECT_KIND = "container_effect"
"""The model registry's key for the container-effect model."""
CAVEAT = (
    "Learned from published MLPerf-inference runs (ResNet50 on TF-Serving, 32-CPU nodes): effects of other"
    " applications may differ."
)
"""What every what-if answer says of the model's reach (the API's and the CLI's; here, not beside the
model, so importing it loads no scikit-learn)."""

Affinity = Literal["none", "cpu", "cpu+memory"]
Network = Literal["host", "private"]
AFFINITIES: tuple[Affinity, ...] = ("none", "cpu", "cpu+memory")
NETWORKS: tuple[Network, ...] = ("host", "private")


@dataclass(frozen=True)
class ContainerConfig:
    runtime: str | None = None
    """apptainer, podman, docker, charliecloud, bubblewrap, crun, bare…"""
    image: str | None = None
    containers_per_node: int | None = None
    ranks_per_container: int | None = None
    threads_per_rank: int | None = None
    affinity: Affinity | None = None
    """CPU (and memory) pinning: kubelet CPU/memory managers, `--bind-to core`, numactl."""
    network: Network | None = None
    """The containers' network namespace: the host's, or a private one per container."""
    fabric: str | None = None
    """How ranks talk: shm, tcp, ib…"""

    def __post_init__(self) -> None:
        for name in ("containers_per_node", "ranks_per_container", "threads_per_rank"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.affinity is not None and self.affinity not in AFFINITIES:
            raise ValueError(f"affinity must be one of {', '.join(AFFINITIES)}, not {self.affinity!r}")
        if self.network is not None and self.network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {self.network!r}")

    @property
    def is_set(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def overridden_by(self, forced: ContainerConfig) -> ContainerConfig:
        """This configuration with every field `forced` sets replaced (what a site would run)."""
        changes = {f.name: getattr(forced, f.name) for f in fields(forced) if getattr(forced, f.name) is not None}
        return replace(self, **changes)

    def as_run(self) -> ContainerConfig:
        """The configuration as it runs: an unset container count is one container, unset affinity
        none (what the model reads them as). Two requests that run alike compare equal this way."""
        return replace(self, containers_per_node=self.containers_per_node or 1, affinity=self.affinity or "none")

    def describe(self) -> str:
        parts = [
            f"{self.containers_per_node or 1} container{'s' if (self.containers_per_node or 1) > 1 else ''}/node",
        ]
        if self.affinity:
            parts.append(f"affinity {self.affinity}")
        if self.network:
            parts.append(f"{self.network} network")
        if self.runtime:
            parts.append(self.runtime)
        return ", ".join(parts)


def config_features(
    configs: Sequence[ContainerConfig],
    *,
    hosts: int = 1,
    cores_per_node: float | None = None,
    client_batch: float | None = None,
    server_batch: float | None = None,
) -> pl.DataFrame:
    """The effect model's features (CONFIG_FEATURES) for configurations of one workload."""
    rows = []
    for c in configs:
        containers = float(c.containers_per_node or 1)
        affinity = c.affinity or "none"
        rows.append(
            {
                "containers": containers,
                "cpus_per_container": cores_per_node / containers if cores_per_node else math.nan,
                "cpu_affinity": float(affinity != "none"),
                "memory_affinity": float(affinity == "cpu+memory" and containers > 1),
                "hosts": float(hosts),
                "client_batch": math.nan if client_batch is None else float(client_batch),
                "server_batch": math.nan if server_batch is None else float(server_batch),
            }
        )
    return pl.DataFrame(rows, schema=CONFIG_FEATURES)
