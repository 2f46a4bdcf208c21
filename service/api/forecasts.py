"""Forecasts: a batch site's queue simulated forward, and when a job like this would start there."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from service.api.deps import ADVISE, BAD_REQUEST, NO_QUEUE, NOT_FOUND, READ, TwinDep, v1_router
from service.api.latest import dumps
from service.api.sites import json_response
from service.timeparse import MAX_WALLTIME_S, Walltime
from twin.live import Twin
from twin.sim import Job

__all__ = ["router"]

router = v1_router("forecasts")


class ForecastJobOut(BaseModel):
    job_id: str
    hypothetical: bool
    submit_s: int | None
    procs: int | None
    req_s: int | None
    predicted_start_s: int | None = Field(description="Null for a job the site cannot run (wider than it)")
    predicted_end_s: int | None
    predicted_wait_s: int | None = Field(description="From the site's clock now_s")
    scheduler_start_s: int | None = Field(None, description="The scheduler's own estimate (Slurm), when it gave one")
    start_early_s: int | None = None
    start_late_s: int | None = None


class RuntimeAccuracyOut(BaseModel):
    scored: int = Field(description="Runtime predictions scored against the runtime that followed")
    mean_accuracy: float | None = Field(description="mean of min(actual, predicted) / max(actual, predicted)")
    mae_s: float | None
    under_share: float | None = Field(description="Share of jobs that ran longer than predicted")


class AccuracyOut(BaseModel):
    scored: int = Field(description="Past forecasts scored against the start that followed")
    within_1min: float | None
    within_10min: float | None
    within_1h: float | None
    median_abs_error_s: float | None
    runtime: RuntimeAccuracyOut = Field(description="The learned runtime model's predictions, scored")


class ForecastOut(BaseModel):
    site: str
    now_s: int = Field(description="The site's clock: trace time for a replayed site")
    processors: int
    predictor: str
    seconds: float = Field(description="Time the forecast took")
    corrections: dict[str, int] = Field(description="Jobs changed or left out, by reason")
    jobs: list[ForecastJobOut]
    accuracy: AccuracyOut


class WhatIfIn(BaseModel):
    """The job, its requested time written as `/v1/advice` takes it (`walltime`: seconds or "2h")
    or, as this route first took it, `walltime_s` (whole seconds); exactly one of the two."""

    model_config = {"extra": "forbid"}

    cores: int = Field(ge=1, le=10_000_000, description="CPUs the job needs")
    walltime: Walltime | None = Field(None, description='Requested time (its kill limit): seconds, or "2h", "30m"')
    walltime_s: int | None = Field(None, ge=1, le=MAX_WALLTIME_S, description="The same in whole seconds")
    user: str | None = Field(None, max_length=128, description="For the user's history (ave2)")
    predictor: Literal["auto", "learned", "ave2", "requested"] = "auto"

    @model_validator(mode="after")
    def _one_walltime(self) -> WhatIfIn:
        if (self.walltime is None) == (self.walltime_s is None):
            raise ValueError('give the requested time once: walltime (seconds, or "2h", "30m") or walltime_s')
        return self

    @property
    def requested_s(self) -> int:
        """Whole seconds, rounded up (a job asking for 1.5 s is killed after 2, not 1)."""
        if self.walltime_s is not None:
            return self.walltime_s
        assert self.walltime is not None
        return max(1, math.ceil(self.walltime))


class WhatIfOut(BaseModel):
    site: str
    now_s: int
    predictor: str
    queue_pending: int
    predicted_start_s: int | None
    predicted_wait_s: int | None
    start_early_s: int | None = None
    start_late_s: int | None = None


def _accuracy(twin: Twin, site: str) -> dict[str, Any]:
    acc, runtimes = twin.queues.accuracy(site)
    return {
        "scored": acc.scored,
        "within_1min": acc.within_1min,
        "within_10min": acc.within_10min,
        "within_1h": acc.within_1h,
        "median_abs_error_s": acc.median_abs_error_s,
        "runtime": {k: v for k, v in vars(runtimes).items() if k != "site"},
    }


@router.get(
    "/sites/{site}/forecast",
    response_model=ForecastOut,
    dependencies=READ,
    responses={**NOT_FOUND, **NO_QUEUE},
    summary="Predicted start of every pending job of a batch site, by simulating its queue forward",
)
def site_forecast(
    twin: TwinDep,
    site: str,
    predictor: Annotated[
        Literal["auto", "learned", "ave2", "requested"],
        Query(description="auto: the learned runtime model when one is loaded, else ave2"),
    ] = "auto",
    limit: Annotated[int, Query(ge=1, le=100_000, description="At most this many jobs, in queue order")] = 5000,
) -> Response:
    result = twin.forecast(site, predictor)
    body = {
        "site": result.site,
        "now_s": result.now_s,
        "processors": result.processors,
        "predictor": result.predictor,
        "seconds": result.seconds,
        "corrections": result.corrections,
        "jobs": result.jobs.head(limit).to_dicts(),
        "accuracy": _accuracy(twin, site),
    }
    return json_response(dumps(body))


@router.post(
    "/sites/{site}/whatif",
    response_model=WhatIfOut,
    dependencies=ADVISE,
    responses={**NOT_FOUND, **NO_QUEUE, **BAD_REQUEST},
    summary="When would a job like this start at this site, behind the current queue?",
)
def site_whatif(twin: TwinDep, site: str, job: WhatIfIn) -> Response:
    hypothetical = Job("whatif", 0, None, job.requested_s, job.cores, user=job.user)  # submitted at the site's now
    result = twin.forecast(site, job.predictor, [hypothetical])
    row = result.jobs.filter(pl.col("hypothetical")).row(0, named=True)
    body = {
        "site": site,
        "now_s": result.now_s,
        "predictor": result.predictor,
        "queue_pending": result.jobs.height - 1,
        "predicted_start_s": row["predicted_start_s"],
        "predicted_wait_s": row["predicted_wait_s"],
        "start_early_s": row.get("start_early_s"),
        "start_late_s": row.get("start_late_s"),
    }
    return json_response(dumps(body))
