"""Container what-if: a job's container configuration → the predicted effect of each alternative."""

from __future__ import annotations

from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from models.containers.config import CAVEAT
from service.api.advice import ContainerIn
from service.api.deps import ADVISE, NO_QUEUE, ServiceDep, v1_router
from service.api.errors import ApiError
from service.api.latest import dumps
from service.api.sites import json_response

__all__ = ["WhatIfIn", "router"]

router = v1_router("containers")
MAX_ALTERNATIVES = 500


class WorkloadIn(BaseModel):
    """What the job asks of each configuration (all optional: unset is routed as unknown)."""

    model_config = {"extra": "forbid"}

    nodes: int = Field(1, ge=1, le=100_000, description="Hosts the job spans")
    cores_per_node: int | None = Field(None, ge=1, le=100_000)
    client_batch: int | None = Field(None, ge=1, le=1_000_000, description="Inference: the client's batch size")
    server_batch: int | None = Field(None, ge=0, le=1_000_000, description="Inference: the server's batch size")


class WhatIfIn(BaseModel):
    model_config = {"extra": "forbid"}

    configuration: ContainerIn = Field(ContainerIn(), description="How the job runs now (the reference)")
    workload: WorkloadIn = WorkloadIn()
    alternatives: list[ContainerIn] = Field(
        default_factory=list,
        max_length=MAX_ALTERNATIVES,
        description="Configurations to compare; empty: every container count dividing the node × every affinity",
    )

    @field_validator("alternatives")
    @classmethod
    def _alternatives_fit_the_node(cls, alternatives: list[ContainerIn], info: ValidationInfo) -> list[ContainerIn]:
        """Names the entry that does not fit: in a list of hundreds, "one of them" is no answer."""
        workload = info.data.get("workload")
        cores = workload.cores_per_node if isinstance(workload, WorkloadIn) else None
        for i, c in enumerate(alternatives):
            if cores is not None and c.containers_per_node is not None and c.containers_per_node > cores:
                raise ValueError(
                    f"alternatives[{i}]: {c.containers_per_node} containers per node do not fit {cores} cores per node"
                )
        return alternatives

    @model_validator(mode="after")
    def _fits_the_node(self) -> WhatIfIn:
        cores, c = self.workload.cores_per_node, self.configuration
        if cores is not None and c.containers_per_node is not None and c.containers_per_node > cores:
            raise ValueError(
                f"configuration: {c.containers_per_node} containers per node do not fit {cores} cores per node"
            )
        return self


class BandOut(BaseModel):
    p10: float
    p50: float
    p90: float


class AlternativeOut(BaseModel):
    configuration: dict[str, object]
    describe: str
    effect: BandOut = Field(description="Predicted throughput ÷ that of the current configuration (> 1: faster)")
    current: bool


class WhatIfOut(BaseModel):
    model: str = Field(description="Which model answered: an artefact, or the built-in one")
    alternatives: list[AlternativeOut] = Field(description="Best first")
    caveat: str


@router.post(
    "/containers/whatif",
    response_model=WhatIfOut,
    dependencies=ADVISE,
    responses=NO_QUEUE,
    summary="How should this job be containerised? The predicted effect of each alternative configuration",
)
def container_whatif(service: ServiceDep, body: WhatIfIn) -> Response:
    effects = service.advisor.containers
    if effects is None:
        raise ApiError(409, "no_model", "the container-effect model is not part of this service")
    w = body.workload
    rows, used = effects.whatif(
        body.configuration.to_config(),
        [a.to_config() for a in body.alternatives],
        hosts=w.nodes,
        cores_per_node=w.cores_per_node,
        client_batch=w.client_batch,
        server_batch=w.server_batch,
    )
    out = {
        "model": used.source,
        "alternatives": [{**a.as_dict(), "describe": a.config.describe()} for a in rows],
        "caveat": CAVEAT,
    }
    return json_response(dumps(out))
