"""A job as placement advice sees it: what it asks for, where its data lives, what to optimise.

Plain values (the API validates and converts its JSON into these; the benchmark builds them from
workload logs). Sizes are bytes, times seconds, instants unix seconds (wall clock, UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from models.containers.config import ContainerConfig

__all__ = ["Constraints", "ContainerSpec", "DataSpec", "JobRequest", "Objective", "Weights"]

Objective = Literal["turnaround", "cost", "energy", "co2", "weighted"]


@dataclass(frozen=True)
class DataSpec:
    size_bytes: float = 0.0
    site: str | None = None
    """Where the input lives (or where the output must go); None: the job's home site."""


ContainerSpec = ContainerConfig
"""How the job is containerised (models.containers.config: runtime, image, containers per node,
ranks per container, threads, affinity, network, fabric); the effect model reads it."""


@dataclass(frozen=True)
class Weights:
    """For objective "weighted": each measure divided by its best value over the feasible sites,
    then summed with these weights (1.0 turnaround alone is the turnaround objective)."""

    turnaround: float = 1.0
    cost: float = 0.0
    energy: float = 0.0
    co2: float = 0.0


@dataclass(frozen=True)
class Constraints:
    allowed_sites: tuple[str, ...] = ()
    """Only these (empty: every site)."""
    max_cost: float | None = None
    deadline_s: float | None = None
    """Unix seconds (UTC) by which the job must have finished, output staged out."""


@dataclass(frozen=True)
class JobRequest:
    cores: int
    walltime_s: int
    """The requested time: the kill limit a batch scheduler plans with."""
    nodes: int | None = None
    gpus: int = 0
    memory_bytes: int | None = None
    """Per node."""
    user: str | None = None
    partition: str | None = None
    input: DataSpec = field(default_factory=DataSpec)
    output: DataSpec = field(default_factory=DataSpec)
    container: ContainerSpec = field(default_factory=ContainerSpec)
    home: str | None = None
    """Where the job would run without advice (the stay-home rule compares against it);
    default: where its input lives, else the service's home site."""
    objective: Objective = "turnaround"
    risk: Literal["p50", "p90"] = "p50"
    """Rank by the median outcome, or by the p90 (risk-averse)."""
    weights: Weights = field(default_factory=Weights)
    constraints: Constraints = field(default_factory=Constraints)
