"""What-ifs: a scenario (jobs moved, nodes added or drained, sites or links down, a link's
bandwidth) simulated on copies of the twin's state, side by side with today — every affected
job's predicted start, and a job's ranking (previewed: nothing booked, nothing logged)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.api.advice import AdviceOut, JobRequestIn
from service.api.deps import BAD_REQUEST, NOT_FOUND, READ, Responses, ServiceDep, v1_router
from service.api.errors import ErrorBody
from service.api.latest import dumps
from service.api.sites import json_response
from twin.advice.serialise import advice_to_dict
from twin.whatif import Change, Comparison, LinkBandwidth, LinkDown, MoveJob, Nodes, SiteDown, WhatIf
from twin.whatif.engine import MAX_CHANGES

__all__ = ["WhatIfIn", "comparison_to_dict", "router"]

router = v1_router("whatif")

Name = Annotated[str, Field(min_length=1, max_length=128)]
INVALID: Responses = {422: {"model": ErrorBody, "description": "A scenario that cannot be (or a malformed body)"}}


class MoveIn(BaseModel):
    model_config = {"extra": "forbid", "populate_by_name": True}

    kind: Literal["move"]
    job: Annotated[str, Field(min_length=1, max_length=256)]
    from_site: Name = Field(alias="from")
    to_site: Name = Field(alias="to")


class NodesIn(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["nodes"]
    site: Name
    add: int = Field(0, ge=0, le=1_000_000)
    drain: int = Field(0, ge=0, le=1_000_000)


class SiteDownIn(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["site_down"]
    site: Name


class LinkDownIn(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["link_down"]
    a: Name
    b: Name


class LinkBandwidthIn(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["link_bandwidth"]
    a: Name
    b: Name
    gbps: float = Field(gt=0, le=1e6)


ChangeIn = Annotated[MoveIn | NodesIn | SiteDownIn | LinkDownIn | LinkBandwidthIn, Field(discriminator="kind")]


class WhatIfIn(BaseModel):
    model_config = {"extra": "forbid"}

    changes: list[ChangeIn] = Field(min_length=1, max_length=MAX_CHANGES, description="Applied in order")
    job: JobRequestIn | None = Field(None, description="Rank the sites for this job today and under the scenario")
    limit: int = Field(500, ge=1, le=100_000, description="At most this many affected jobs, the biggest shift first")

    def to_changes(self) -> list[Change]:
        out: list[Change] = []
        for c in self.changes:
            match c:
                case MoveIn():
                    out.append(MoveJob(c.job, c.from_site, c.to_site))
                case NodesIn():
                    out.append(Nodes(c.site, c.add, c.drain))
                case SiteDownIn():
                    out.append(SiteDown(c.site))
                case LinkDownIn():
                    out.append(LinkDown(c.a, c.b))
                case LinkBandwidthIn():
                    out.append(LinkBandwidth(c.a, c.b, c.gbps))
        return out


class JobShiftOut(BaseModel):
    job_id: str
    site: str = Field(description="Where the job is under the scenario")
    from_site: str = Field(description="Where it is today")
    today_start_s: int | None = Field(description="Predicted start today, in its site's clock")
    scenario_start_s: int | None = Field(description="Under the scenario (null: it does not start)")
    shift_s: int | None = Field(description="How much later it starts (negative: earlier), as waits")
    note: str


class WhatIfOut(BaseModel):
    changes: list[str] = Field(description="Each change, as a sentence")
    sites: list[str] = Field(description="The sites whose queues the scenario changed")
    now_s: dict[str, int] = Field(description="Each of those sites' clock now (trace time for a replayed site)")
    affected: int
    earlier: int
    later: int
    jobs: list[JobShiftOut]
    today: AdviceOut | None
    scenario: AdviceOut | None
    notes: list[str] = Field(description="What the simulation assumed (how many cores a node is)")


def comparison_to_dict(out: Comparison) -> dict[str, Any]:
    return {
        "changes": list(out.described),
        "sites": list(out.sites),
        "now_s": out.now_s,
        "affected": out.affected,
        "earlier": out.earlier,
        "later": out.later,
        "jobs": [vars(s) for s in out.jobs],
        "today": advice_to_dict(out.today) if out.today is not None else None,
        "scenario": advice_to_dict(out.scenario) if out.scenario is not None else None,
        "notes": list(out.notes),
    }


@router.post(
    "/whatif",
    response_model=WhatIfOut,
    dependencies=READ,
    responses={**BAD_REQUEST, **NOT_FOUND, **INVALID},
    summary="What if a job moved, nodes were added or drained, a site or link went down: starts and ranking vs today",
)
def whatif(service: ServiceDep, body: WhatIfIn) -> Response:
    request = body.job.to_request() if body.job is not None else None
    result = WhatIf(service.advisor).run(body.to_changes(), request, limit=body.limit)
    return json_response(dumps(comparison_to_dict(result)))
