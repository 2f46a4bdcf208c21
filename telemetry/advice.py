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

__all__ = ["ADVICE_SCHEMA", "HOOKS", "SUMMARY_SCHEMA", "Hook", "empty_advice", "summary_sql"]

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


SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "hook": pl.String(),
    "answers": pl.Int64(),  # answers that recommended the site
    "reported": pl.Int64(),  # of them, the caller said where it submitted the job
    "followed": pl.Int64(),  # ... and it submitted it to the recommended site
    "joined": pl.Int64(),  # ... and the job has ended: its outcome is joined
    "abs_error_s": pl.Float64(),  # mean |realised - predicted p50| turnaround over the joined ones
    "regret_s": pl.Float64(),  # mean regret over the joined ones
    "last_s": pl.Float64(),  # the newest answer, unix s
}


def summary_sql(table: str) -> str:
    """DuckDB SQL over an advice-log table: per hook, the answers recommending site `?` (the one
    parameter) and how they turned out (SUMMARY_SCHEMA)."""
    error = "TRY_CAST(json_extract(outcome, '$.error_s.turnaround_s') AS DOUBLE)"
    regret = "TRY_CAST(json_extract(outcome, '$.regret_s') AS DOUBLE)"
    return (
        f"SELECT coalesce(hook, 'api') AS hook, count(*) AS answers, count(job_id) AS reported,"
        f" count(*) FILTER (WHERE chosen_site = recommended) AS followed, count(joined_s) AS joined,"
        f" avg(abs({error})) AS abs_error_s, avg({regret}) AS regret_s, max(created_s) AS last_s"
        f" FROM {table} WHERE recommended = ? GROUP BY 1 ORDER BY answers DESC, hook"
    )
