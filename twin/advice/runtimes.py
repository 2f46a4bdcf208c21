"""How long a job not yet submitted would run at each candidate site.

At a batch site that knows the user, the site's own prediction: the learned runtime model on the
user's history there as of now (twin.learned.HypotheticalRuntimes: one feature row per request,
every site's rows scored in one model call), else AVE2 (the mean of the user's last two runs,
with the band from the shorter of the two up to the requested time: the only bound known without
a model), else the requested time. At a site that does not know the user (a cloud or edge site, a
batch site the user never used), the prediction of the site where the user ran most, scaled by
the two sites' relative speeds (`placement.speed`). Runs are capped at the requested time: a
batch scheduler kills a job there (a median above it is left for the engine to refuse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import polars as pl

from models.threads import one_thread
from telemetry.jobs import JOB_SCHEMA
from twin.advice.outcome import Band
from twin.advice.rank import RuntimeGuess
from twin.advice.request import JobRequest
from twin.sim.predictors import History
from twin.topology import SiteSpec

__all__ = ["RuntimeSource", "guess_runtimes", "request_rows"]


class RuntimeSource(Protocol):
    """What a site's runtime guesses read: its users' finished runs and, with a learned model,
    its hypothetical-job predictor (twin.queues.QueueBase; the benchmark's simulated sites)."""

    @property
    def site(self) -> str: ...

    @property
    def now_s(self) -> int: ...

    @property
    def history(self) -> History: ...

    def hypothetical(self) -> Any | None: ...


_KEY_COLUMNS = ("user", "partition", "req_walltime_s", "req_cores", "req_nodes", "gpus", "req_mem_bytes",
                "container_image", "container_runtime")  # fmt: skip
"""What a model reads of a request (in `_request_key` order): equal keys at one site and instant
have equal features, so their prediction is computed once per cached base."""


def _request_key(r: JobRequest) -> tuple[Any, ...]:
    return (r.user, r.partition, r.walltime_s, r.cores, r.nodes, r.gpus, r.memory_bytes, r.container.image,
            r.container.runtime)  # fmt: skip


def request_rows(requests: Sequence[JobRequest]) -> pl.DataFrame:
    """The requests as job-history rows (JOB_SCHEMA: what a model reads of a job)."""
    keys = [_request_key(r) for r in requests]
    n = len(keys)
    given: dict[str, list[Any]] = {c: [k[j] for k in keys] for j, c in enumerate(_KEY_COLUMNS)}
    given |= {"job_id": [f"advice-{i}" for i in range(n)], "state": ["PENDING"] * n}
    return pl.DataFrame({c: given.get(c, [None] * n) for c in JOB_SCHEMA}, schema=JOB_SCHEMA)


def _ave2(base: RuntimeSource, request: JobRequest) -> RuntimeGuess:
    recent = base.history.recent(request.user)
    limit = float(request.walltime_s)
    if len(recent) >= 2:
        mean = math.floor(sum(recent[-2:]) / 2)
        p50 = min(limit, float(mean))
        return RuntimeGuess(Band(min(float(min(recent[-2:])), p50), p50, limit), "ave2")
    return RuntimeGuess(Band.point(limit), "the request (no history)")


MEMO_LIMIT = 8192
"""Predictions kept per cached base (a base lives until its site's queue changes)."""


def _learned(bases: Sequence[RuntimeSource], requests: Sequence[JobRequest]) -> dict[tuple[str, int], RuntimeGuess]:
    """Learned guesses for every (site, request) whose base has a model: the requests a base has
    not seen yet (its predictor's `memo`: pods of one Deployment, a job array, the same user's
    next submission ask the same) in one feature pass and one model call for all sites, on one
    thread (tens of rows: OpenMP's start-up costs more than the trees; bench/advice_latency.py
    measured 6.5 ms → 1.9 ms per call)."""
    from models.features import hypothetical_features

    keys = [_request_key(r) for r in requests]
    unique = list(dict.fromkeys(keys))
    known: list[tuple[str, dict[tuple[Any, ...], tuple[float, float, float]]]] = []
    sites, nows, matrices, missing = [], [], [], []
    model = None
    for base in bases:
        hypothetical = base.hypothetical()
        if hypothetical is None:
            continue
        memo = hypothetical.memo
        known.append((base.site, memo))
        todo = [k for k in unique if k not in memo]
        if not todo:
            continue
        if len(memo) + len(todo) > MEMO_LIMIT:
            memo.clear()
        model = hypothetical.model
        sites.append((base.site, memo, len(todo)))
        nows.append(base.now_s)
        matrices.append(hypothetical.context_matrix([k[0] for k in todo]))
        missing.append(todo)
    if model is not None:
        todo_keys = [k for todo in missing for k in todo]
        columns = {c: [k[j] for k in todo_keys] for j, c in enumerate(_KEY_COLUMNS)}
        submits = [t for (_, _, n), t in zip(sites, nows, strict=True) for _ in range(n)]
        features = hypothetical_features(columns, submits, np.vstack(matrices))
        with one_thread():
            quantiles = model.predict_quantiles(features)
        p10, p50, p90 = (np.asarray(a, dtype=np.float64).tolist() for a in quantiles)
        j = 0
        for (_, memo, _), todo in zip(sites, missing, strict=True):
            for key in todo:
                memo[key] = (p10[j], p50[j], p90[j])
                j += 1
    return {
        (site, i): RuntimeGuess(Band(*memo[key]), "learned")
        for site, memo in known
        for i, key in enumerate(keys)
        if key in memo
    }


def _knows(base: RuntimeSource, user: str | None) -> int:
    """How many of the user's runs the site has seen (1 when only the learned model's history has)."""
    if user is None:
        return 0
    seen = base.history.completed(user)
    if seen:
        return seen
    hypothetical = base.hypothetical()
    return 1 if hypothetical is not None and hypothetical.knows(user) else 0


def guess_runtimes(
    requests: Sequence[JobRequest],
    sites: Sequence[SiteSpec],
    bases: Mapping[str, RuntimeSource],
    homes: Sequence[str],
    speeds: Mapping[str, float] | None = None,
) -> list[dict[str, RuntimeGuess]]:
    """For each request, its RuntimeGuess at every site; `speeds` overrides the configured ones
    (the learned speeds of twin.advice.speeds)."""
    learned = _learned(list(bases.values()), requests)
    speed = {s.name: s.placement.speed for s in sites} | dict(speeds or {})
    out: list[dict[str, RuntimeGuess]] = []
    for i, (request, home) in enumerate(zip(requests, homes, strict=True)):
        own: dict[str, RuntimeGuess] = {}
        informed: dict[str, int] = {}
        """Sites whose own guess rests on the user's runs there (the learned model, or AVE2's two
        runs), by how many runs they have seen: one run is not enough for AVE2, and a site that
        saw only that should borrow the better-informed site's guess, scaled by speed."""
        for name, base in bases.items():
            guess = learned.get((name, i))
            own[name] = guess or _ave2(base, request)
            if guess is not None or len(base.history.recent(request.user)) >= 2:
                informed[name] = max(1, _knows(base, request.user))
        ranked = sorted(informed, key=lambda n: (-informed[n], n != home, n))
        reference = ranked[0] if ranked else None
        guesses: dict[str, RuntimeGuess] = {}
        for spec in sites:
            name = spec.name
            if name in informed or (name in own and reference is None):
                guess = own[name]
            elif reference is not None:
                ratio = speed[reference] / speed[name]
                ref = own[reference]
                guess = RuntimeGuess(ref.band.scaled(ratio), f"{ref.source} at {reference}, ×{1 / ratio:.3g} speed")
            else:
                limit = float(request.walltime_s)
                guess = RuntimeGuess(Band.point(limit), "the request (no history)")
            band = guess.band
            if band.p50 <= request.walltime_s:
                band = Band(min(band.p10, request.walltime_s), band.p50, min(band.p90, request.walltime_s))
            guesses[name] = RuntimeGuess(Band(*sorted((band.p10, band.p50, band.p90))), guess.source)
        out.append(guesses)
    return out
