"""Training the container-effect model, and the what-if it answers: "how should I run this?".

A what-if compares configurations of ONE workload: each alternative's predicted effect divided by
the predicted effect of the job's own configuration, so the answer reads "2.1× the throughput
(1.9–2.3×) of how you run it now". The band is the alternative's own band over the current p50:
the error of the current configuration's prediction is shared by every row, so it orders nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from models.artifacts import ModelCard, data_sha256
from models.containers.config import AFFINITIES, EFFECT_KIND, ContainerConfig, config_features
from models.containers.effect import CONFIG_FEATURES, effect_features, published_effects
from models.containers.estimators import ContainerEffectRegressor
from models.containers.evaluation import HELD_OUT, evaluate_held_out
from models.containers.published import PUBLISHED_RUNS, load_published_runs

__all__ = [
    "CONTAINER_COUNTS",
    "EFFECT_KIND",
    "Alternative",
    "default_alternatives",
    "train_effect_model",
    "whatif",
]

CONTAINER_COUNTS = (1, 2, 4, 8, 16, 32)
"""The counts compared by default: those the published runs measured (on 32-CPU nodes)."""


def train_effect_model(
    runs: pl.DataFrame | None = None, *, score: bool = True
) -> tuple[ContainerEffectRegressor, ModelCard]:
    """Fit on every published Offline run with a reference (the shipped runs by default); the card
    carries the held-out scores (on the judged fold) when `score`."""
    if runs is None:
        runs = load_published_runs(PUBLISHED_RUNS).runs
    effects = published_effects(runs).rows
    if effects.is_empty():
        raise ValueError("no Offline run with a reference run (1 container, env none) to learn from")
    model = ContainerEffectRegressor().fit(effect_features(effects), effects["ratio"].to_numpy())
    scores = {}
    if score:
        metrics = evaluate_held_out(effects, folds=(HELD_OUT,)).metrics
        scores = {"held_out_containers": HELD_OUT, "by_model": metrics.to_dicts()}
    card = ModelCard(
        kind=EFFECT_KIND,
        features={name: str(dtype) for name, dtype in CONFIG_FEATURES.items()},
        training_window={
            "runs": effects.height,
            "first_run_s": effects["time_s"].min(),
            "last_run_s": effects["time_s"].max(),
            "source": "Liu & Guitart, MLPerf-inference ResNet50 on TF-Serving, 32-CPU nodes (published runs)",
            "target": "Offline throughput ÷ the workload's 1-container, no-affinity throughput",
        },
        data_sha256=data_sha256(effects, ("path",)),
        scores=scores,
    )
    return model, card


@dataclass(frozen=True)
class Alternative:
    config: ContainerConfig
    p10: float
    p50: float
    p90: float
    """Predicted throughput relative to the job's current configuration (> 1: faster)."""
    current: bool

    def as_dict(self) -> dict[str, object]:
        """The API's and the CLI's JSON: the configuration's set fields, the effect band, current."""
        return {
            "configuration": {k: v for k, v in vars(self.config).items() if v is not None},
            "effect": {"p10": self.p10, "p50": self.p50, "p90": self.p90},
            "current": self.current,
        }


def default_alternatives(current: ContainerConfig, cores_per_node: int | None) -> list[ContainerConfig]:
    """Every container count that divides the node (up to 32) × every affinity policy."""
    counts = [
        n for n in CONTAINER_COUNTS if cores_per_node is None or (n <= cores_per_node and cores_per_node % n == 0)
    ]
    return [
        ContainerConfig(
            runtime=current.runtime,
            image=current.image,
            containers_per_node=n,
            ranks_per_container=current.ranks_per_container,
            threads_per_rank=current.threads_per_rank,
            affinity=affinity,
            network=current.network,
            fabric=current.fabric,
        )
        for n in counts
        for affinity in AFFINITIES
    ]


def whatif(
    model: ContainerEffectRegressor,
    current: ContainerConfig,
    alternatives: Sequence[ContainerConfig],
    *,
    hosts: int = 1,
    cores_per_node: int | None = None,
    client_batch: int | None = None,
    server_batch: int | None = None,
) -> list[Alternative]:
    """Each alternative's predicted effect relative to `current`, best first (current included)."""
    now = current.as_run()
    configs = [current, *[a for a in alternatives if a.as_run() != now]]
    features = config_features(
        configs, hosts=hosts, cores_per_node=cores_per_node, client_batch=client_batch, server_batch=server_batch
    )
    q = model.predict_quantiles(features)
    base = float(q.p50[0])
    rows = [
        Alternative(c, float(q.p10[i]) / base, float(q.p50[i]) / base, float(q.p90[i]) / base, i == 0)
        for i, c in enumerate(configs)
    ]
    # equal to 0.1 %: the current configuration first, then the simpler (fewer containers)
    return sorted(rows, key=lambda a: (-round(a.p50, 3), not a.current, a.config.containers_per_node or 1))
