"""The container-effect model as the service serves it: the what-if, and the runtime factor the
placement advice applies where a site would run a job in another configuration.

Which model: the newest `container_effect` artefact in the model registry (`ctwin containers
train`), else one fitted once, on first use, from the published runs shipped with ctwin (about a
second), so a new install answers without a training step; every answer names its source.

In the advice: a site may force part of a configuration (`containers:` in its config, e.g. a
runtime that gives every container a private network namespace). A job whose request says how it
is containerised, at a site that forces something else, runs at the effect ratio of the site's
configuration to its own: its runtime band is divided by that ratio's p50, and the reason says so.
A job that says nothing, or a site that forces nothing, is left as it was (ratio 1, no claim).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from models.containers.config import AFFINITIES, EFFECT_KIND, ContainerConfig
from twin.advice.outcome import Band
from twin.advice.rank import RuntimeGuess
from twin.advice.request import JobRequest
from twin.errors import NoModelError
from twin.queues import ModelSource
from twin.topology import SiteSpec

if TYPE_CHECKING:
    from models.containers.whatif import Alternative

__all__ = ["AFFINITIES", "ContainerEffects", "EffectModel"]


@dataclass(frozen=True)
class EffectModel:
    model: Any
    source: str
    """"artefact NAME" or "built-in (shipped published runs)"."""
    card: Any


class ContainerEffects:
    def __init__(self, models: ModelSource | None, *, builtin: bool = True) -> None:
        self.models = models
        self.builtin = builtin
        self._lock = threading.Lock()
        self._builtin: EffectModel | None = None
        self._factors: pl.DataFrame | None = None
        self._runs: pl.DataFrame | None = None

    def _published_runs(self) -> pl.DataFrame:
        """The shipped runs, read from the tarball once for the built-in model and the factor view
        (call with the lock held)."""
        if self._runs is None:
            from models.containers.published import load_published_runs

            self._runs = load_published_runs().runs
        return self._runs

    def current(self) -> EffectModel:
        """The model to answer with; NoModelError when there is none and no built-in is allowed."""
        loaded = self.models.current(EFFECT_KIND) if self.models is not None else None
        if loaded is not None:
            return EffectModel(loaded.model, f"artefact {loaded.path.name}", loaded.card)
        if not self.builtin:
            raise NoModelError("no container-effect model loaded: run `ctwin containers train` into the models dir")
        with self._lock:
            if self._builtin is None:
                from models.containers.whatif import train_effect_model  # scikit-learn: loaded on first use

                model, card = train_effect_model(self._published_runs(), score=False)
                self._builtin = EffectModel(model, "built-in (shipped published runs)", card)
            return self._builtin

    def held_out_factors(self) -> pl.DataFrame:
        """Predicted vs measured effect per factor level on held-out container counts (what the
        Dash view plots): the shipped runs' evaluation, computed once per process."""
        with self._lock:
            if self._factors is None:
                from models.containers.effect import published_effects
                from models.containers.evaluation import evaluate_held_out, factor_effects

                effects = published_effects(self._published_runs()).rows
                predictions = evaluate_held_out(effects).predictions
                self._factors = factor_effects(predictions.filter(pl.col("model") == "ours"))
            return self._factors

    def whatif(
        self,
        current: ContainerConfig,
        alternatives: Sequence[ContainerConfig] = (),
        *,
        hosts: int = 1,
        cores_per_node: int | None = None,
        client_batch: int | None = None,
        server_batch: int | None = None,
    ) -> tuple[list[Alternative], EffectModel]:
        from models.containers.whatif import default_alternatives, whatif

        used = self.current()
        options = list(alternatives) or default_alternatives(current, cores_per_node)
        rows = whatif(
            used.model,
            current,
            options,
            hosts=hosts,
            cores_per_node=cores_per_node,
            client_batch=client_batch,
            server_batch=server_batch,
        )
        return rows, used

    def apply(
        self,
        requests: Sequence[JobRequest],
        sites: Sequence[SiteSpec],
        runtimes: Sequence[Mapping[str, RuntimeGuess]],
    ) -> list[dict[str, RuntimeGuess]]:
        """Each request's runtime guesses with the effect of the configuration each site would run."""
        from models.containers.whatif import whatif

        forcing = [s for s in sites if s.placement.containers is not None and s.placement.containers.is_set]
        out = [dict(r) for r in runtimes]
        if not forcing:
            return out
        used: EffectModel | None = None
        for request, guesses in zip(requests, out, strict=True):
            own = request.container
            if not own.is_set:
                continue
            used = used or self.current()

            site_configs = [own.overridden_by(s.placement.containers) for s in forcing]  # type: ignore[arg-type]
            wanted = [(s, c) for s, c in zip(forcing, site_configs, strict=True) if c != own]
            if not wanted:
                continue
            nodes = request.nodes or 1
            cores_per_node = max(1, request.cores // nodes)
            effects = whatif(used.model, own, [c for _, c in wanted], hosts=nodes, cores_per_node=cores_per_node)
            by_config = {a.config: a.p50 for a in effects}
            for site, config in wanted:
                guess = guesses.get(site.name)
                ratio = by_config.get(config)
                if guess is None or ratio is None or ratio <= 0:
                    continue
                band = guess.band.scaled(1.0 / ratio)
                limit = float(request.walltime_s)
                band = Band(min(band.p10, limit), min(band.p50, limit), min(band.p90, limit))
                guesses[site.name] = RuntimeGuess(
                    band, f"{guess.source}; {config.describe()} here: ×{ratio:.2f} throughput ({used.source})"
                )
        return out
