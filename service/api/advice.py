"""Placement advice: every site ranked for a job, with bands, reasons and data ages; the advice
log (GET one answer, report back where the job ran); batch advice for schedulers."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator

from service.api.deps import ADVISE, BAD_REQUEST, NOT_FOUND, Responses, ServiceDep, v1_router
from service.api.errors import ErrorBody
from service.api.latest import dumps
from service.api.sites import json_response
from service.timeparse import parse_size, parse_time_ns
from telemetry.advice import HOOKS, Hook
from telemetry.schema import Duration
from twin.advice.request import Constraints, ContainerSpec, DataSpec, JobRequest, Weights
from twin.advice.serialise import advice_to_dict

__all__ = ["AdviceOut", "JobRequestIn", "router"]

router = v1_router("advice")

Size = Annotated[float, BeforeValidator(parse_size)]
MAX_BATCH = 1000
_ADVICE_ID = r"^adv-[0-9a-f]{11}-[0-9a-f]{8}$"


class DataIn(BaseModel):
    model_config = {"extra": "forbid"}

    size: Size = Field(0.0, description='Bytes, or "20GB", "1.5TB", "512MiB"')
    site: str | None = Field(None, max_length=128, description="Where the data lives (default: the job's home)")


class ContainerIn(BaseModel):
    """How the job is containerised; every field optional (unset: not said)."""

    model_config = {"extra": "forbid"}

    image: str | None = Field(None, max_length=512)
    runtime: str | None = Field(None, max_length=64, description="apptainer, podman, docker, charliecloud…")
    containers_per_node: int | None = Field(None, ge=1, le=1024, description="Containers sharing one node")
    ranks_per_container: int | None = Field(None, ge=1, le=100_000)
    threads_per_rank: int | None = Field(None, ge=1, le=10_000)
    affinity: Literal["none", "cpu", "cpu+memory"] | None = Field(
        None, description="CPU (and memory) pinning: kubelet CPU/memory managers, --bind-to core, numactl"
    )
    network: Literal["host", "private"] | None = Field(
        None, description="The containers' network namespace: the host's, or a private one each"
    )
    fabric: str | None = Field(None, max_length=32, description="How ranks talk: shm, tcp, ib…")

    def to_config(self) -> ContainerSpec:
        return ContainerSpec(**self.model_dump())


class WeightsIn(BaseModel):
    """For objective `weighted`: each measure over its best value, weighted; at least one above 0."""

    model_config = {"extra": "forbid"}

    turnaround: float = Field(1.0, ge=0, le=1000)
    cost: float = Field(0.0, ge=0, le=1000)
    energy: float = Field(0.0, ge=0, le=1000)
    co2: float = Field(0.0, ge=0, le=1000)


class ConstraintsIn(BaseModel):
    model_config = {"extra": "forbid"}

    allowed_sites: list[str] = Field(default_factory=list, max_length=1000)
    max_cost: float | None = Field(None, ge=0, le=1e12)
    deadline: str | None = Field(None, max_length=64, description='"+4h", ISO-8601 (UTC unless stated) or unix s')

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time_ns(value)
        return value


class JobRequestIn(BaseModel):
    model_config = {"extra": "forbid"}

    # counts are strict: JSON `true` or "4" is a client bug to refuse, not a count to guess
    cores: int = Field(ge=1, le=10_000_000, strict=True, description="CPU cores the job needs (a JSON integer)")
    walltime: Duration = Field(description='The requested time (its kill limit): seconds, or "2h", "30m"')
    nodes: int | None = Field(None, ge=1, le=1_000_000, strict=True)
    gpus: int = Field(0, ge=0, le=100_000, strict=True)
    memory: Size | None = Field(None, description='Per node: bytes, or "64GB"')
    user: str | None = Field(None, max_length=128, description="For the user's history (runtime predictions)")
    partition: str | None = Field(None, max_length=128)
    input: DataIn = DataIn()
    output: DataIn = DataIn()
    container: ContainerIn = ContainerIn()
    home: str | None = Field(None, max_length=128, description="Where it would run without advice")
    objective: Literal["turnaround", "cost", "energy", "co2", "weighted"] = "turnaround"
    risk: Literal["p50", "p90"] = Field("p50", description="Rank by the median outcome, or by the p90")
    weights: WeightsIn = WeightsIn()
    constraints: ConstraintsIn = ConstraintsIn()

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: float) -> float:
        if not math.isfinite(value) or value > 366 * 86400:
            raise ValueError("walltime must be at most 366 days")
        return value

    @model_validator(mode="after")
    def _some_weight(self) -> JobRequestIn:
        w = self.weights
        if self.objective == "weighted" and not (w.turnaround or w.cost or w.energy or w.co2):
            raise ValueError(
                "weights: objective weighted needs at least one of weights.turnaround, cost, energy, co2 above 0"
            )
        return self

    def to_request(self) -> JobRequest:
        c = self.constraints
        deadline = parse_time_ns(c.deadline) / 1e9 if c.deadline is not None else None
        return JobRequest(
            cores=self.cores,
            walltime_s=max(1, math.ceil(self.walltime)),
            nodes=self.nodes,
            gpus=self.gpus,
            memory_bytes=int(self.memory) if self.memory is not None else None,
            user=self.user,
            partition=self.partition,
            input=DataSpec(self.input.size, self.input.site),
            output=DataSpec(self.output.size, self.output.site),
            container=self.container.to_config(),
            home=self.home,
            objective=self.objective,
            risk=self.risk,
            weights=Weights(self.weights.turnaround, self.weights.cost, self.weights.energy, self.weights.co2),
            constraints=Constraints(tuple(c.allowed_sites), c.max_cost, deadline),
        )


class BandOut(BaseModel):
    p10: float
    p50: float
    p90: float


class SiteOut(BaseModel):
    site: str
    kind: str
    feasible: bool
    reason: str = Field(description="Why it ranks where it does, or why it cannot run the job")
    excluded_because: str | None = Field(description="capacity, gpus, partition, walltime, down, stale, no_route…")
    score: float | None = Field(description="The objective's measure at the chosen risk level (lower is better)")
    stage_in_s: BandOut | None
    wait_s: BandOut | None
    run_s: BandOut | None
    stage_out_s: BandOut | None
    turnaround_s: BandOut | None
    cost: BandOut | None
    energy_kwh: BandOut | None
    co2_g: BandOut | None
    start_at: str | None = Field(description="Wall clock (UTC) when the job starts, p50")
    end_at: str | None = Field(description="Wall clock (UTC) when its output is back, p50")
    start_at_s: float | None
    end_at_s: float | None
    jobs_ahead: int | None
    clock_speed: float = Field(description="Site seconds per wall second (a replayed site runs faster)")
    data_age_s: dict[str, float | None] = Field(description="Age of each input: state, queue, model")


class AdviceOut(BaseModel):
    advice_id: str
    created_at: str
    created_s: float
    objective: str
    risk: str
    home: str
    recommended: str | None = Field(description="Where to run (null: no site can run the job)")
    stayed_home: bool = Field(description="A better-looking site was passed over: its gain is inside its band")
    summary: str
    currency: str
    sites: list[SiteOut] = Field(description="Feasible sites best first, then the excluded ones with the reason")


class BatchIn(BaseModel):
    model_config = {"extra": "forbid"}

    jobs: list[JobRequestIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchOut(BaseModel):
    items: list[AdviceOut]


class OutcomeIn(BaseModel):
    model_config = {"extra": "forbid"}

    site: str = Field(max_length=128, description="Where the job was submitted")
    job_id: str = Field(min_length=1, max_length=256, description="Its job id there")
    stage_in_s: float | None = Field(None, ge=0, le=1e9, description="How long its input really took to move")


class AdviceRecordOut(BaseModel):
    advice_id: str
    created_s: float
    home: str | None
    recommended: str | None
    objective: str | None
    request: dict[str, Any]
    ranked: list[dict[str, Any]]
    data_ages: dict[str, Any] | None
    chosen_site: str | None
    job_id: str | None
    reported_s: float | None
    outcome: dict[str, Any] | None = Field(description="Realised stage-in, wait, run; errors; regret")
    joined_s: float | None
    hook: str | None = Field(description="How the answer was handed out: " + ", ".join(HOOKS))


HookParam = Annotated[
    Hook,
    Query(description="Which scheduler hook asks (kept in the advice log; the Dash twin counts answers by hook)"),
]


PreviewParam = Annotated[
    bool,
    Query(
        description="A dry run: the same ranking, but nothing booked (later answers do not see this job) and"
        " nothing logged; its id starts with `preview-` and cannot be reported"
    ),
]
BatchPreviewParam = Annotated[
    bool,
    Query(
        description="A dry run of the whole batch: each job still sees the earlier jobs' bookings, as in the"
        " real batch, but nothing is booked (later answers see none of these jobs) and nothing logged; the ids"
        " start with `preview-` and cannot be reported"
    ),
]
REPORT_REFUSED: Responses = {
    400: {"model": ErrorBody, "description": "A site the advice did not rank, or a job submitted before the advice"},
    409: {"model": ErrorBody, "description": "The advice was already reported with another job: the first is kept"},
}


@router.post(
    "/advice",
    response_model=AdviceOut,
    dependencies=ADVISE,
    responses={**BAD_REQUEST, **NOT_FOUND},
    summary="Where should this job run? Every site ranked by predicted turnaround, cost or energy",
)
def advise(service: ServiceDep, job: JobRequestIn, hook: HookParam = "api", preview: PreviewParam = False) -> Response:
    request = job.to_request()
    advice = service.advisor.preview(request) if preview else service.advisor.advise(request, hook)
    return json_response(dumps(advice_to_dict(advice)))


@router.post(
    "/advice/batch",
    response_model=BatchOut,
    dependencies=ADVISE,
    responses={**BAD_REQUEST, **NOT_FOUND},
    summary=f"Advice for up to {MAX_BATCH} jobs in order (each one's booking is seen by the next)",
)
def advise_batch(
    service: ServiceDep, batch: BatchIn, hook: HookParam = "api", preview: BatchPreviewParam = False
) -> Response:
    requests = [j.to_request() for j in batch.jobs]
    advisor = service.advisor
    answers = advisor.preview_batch(requests) if preview else advisor.advise_batch(requests, hook)
    return json_response(dumps({"items": [advice_to_dict(a) for a in answers]}))


AdviceId = Annotated[str, PathParam(pattern=_ADVICE_ID, description="As returned by POST /v1/advice")]


@router.get(
    "/advice/{advice_id}",
    response_model=AdviceRecordOut,
    dependencies=ADVISE,
    responses=NOT_FOUND,
    summary="One logged answer, with what the caller reported and the joined outcome",
)
def advice_record(service: ServiceDep, advice_id: AdviceId) -> Response:
    return json_response(dumps(service.advisor.log.get(advice_id)))


@router.post(
    "/advice/{advice_id}/outcome",
    response_model=AdviceRecordOut,
    dependencies=ADVISE,
    responses={**REPORT_REFUSED, **NOT_FOUND},
    summary="Report where the job was submitted and its job id; the outcome is joined when it ends",
    description="One job per advice: the same report again answers as the first did; a different one is refused"
    " (409) and the first kept. A job the twin already knows as submitted more than a minute before the advice"
    " was given is refused (400): it cannot be the advised job. A job not seen yet is taken as reported.",
)
def advice_outcome(service: ServiceDep, advice_id: AdviceId, report: OutcomeIn) -> Response:
    return json_response(dumps(service.advisor.report(advice_id, report.site, report.job_id, report.stage_in_s)))
