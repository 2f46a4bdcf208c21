"""The advice log's schema: every placement answer the service gave, what the caller did with it,
and what happened (telemetry.stores keep it; twin.advice.log writes and joins it).

One row per answer. The request, the ranked sites with their predictions and the data ages are
JSON text (their shape is the API's; a row stays readable whatever the advice engine adds later);
the columns an analyst filters or joins on are plain: when, who asked, what was recommended,
where the caller ran it and as which job, and when its outcome was joined.
"""

from __future__ import annotations

from typing import Literal, get_args

import polars as pl

__all__ = ["ADVICE_SCHEMA", "HOOKS", "Hook", "empty_advice"]

ADVICE_SCHEMA: dict[str, pl.DataType] = {
    "advice_id": pl.String(),
    "created_s": pl.Float64(),  # wall clock, unix s
    "user": pl.String(),
    "home": pl.String(),
    "recommended": pl.String(),  # null: no site could run the job
    "objective": pl.String(),
    "request": pl.String(),  # JSON
    "ranked": pl.String(),  # JSON: the answer's sites, best first, with their p10/p50/p90
    "data_ages": pl.String(),  # JSON: site -> input -> seconds
    "chosen_site": pl.String(),  # reported back by the caller
    "job_id": pl.String(),  # the job id at chosen_site, reported back
    "reported_s": pl.Float64(),
    "outcome": pl.String(),  # JSON: realised stage-in, wait, run, turnaround; errors; regret
    "joined_s": pl.Float64(),
    "hook": pl.String(),  # how the answer was handed out: api, cli, k8s-extender, multikueue, sbatch
}

Hook = Literal["api", "cli", "k8s-extender", "multikueue", "sbatch"]
HOOKS: tuple[str, ...] = get_args(Hook)
"""Where schedulers ask: the REST API, `ctwin advise`, and the three scheduler hooks."""


def empty_advice() -> pl.DataFrame:
    return pl.DataFrame(schema=ADVICE_SCHEMA)
