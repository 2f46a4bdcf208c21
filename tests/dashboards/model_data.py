"""Real inputs for the models page: a registry holding a really trained runtime model (a small
gradient-boosting fit on the first KTH-SP2 jobs, scored on the rest like `ctwin train`),
and a real AdviceLog whose answers were reported and joined to jobs that ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from models.artifacts import ModelCard, ModelRegistry, data_sha256, save_model
from telemetry.jobs import conform_jobs
from twin.advice.log import AdviceLog
from twin.advice.outcome import Advice, Band, SiteOutcome
from twin.advice.request import JobRequest

if TYPE_CHECKING:
    from twin.advice.live import Advisor


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


def trained_registry(directory: Path, jobs: int = 3000) -> ModelRegistry:
    """`ctwin train`'s steps on a slice of KTH-SP2: held-out scores of the model fitted on
    the first 80%, then the model fitted on all rows, saved with its card."""
    from models.estimators import RuntimeQuantileRegressor
    from models.evaluation import evaluate_split
    from models.features import FEATURES, collect_features, feature_schema
    from service.cli_models import load_swf, resolve_log

    history = load_swf(resolve_log("KTH-SP2"), "KTH-SP2").head(jobs)
    frame = collect_features(history).sort("site", "submit_s", maintain_order=True)
    models = {"ours": RuntimeQuantileRegressor(max_iter=30)}
    scores = evaluate_split(frame, models, "runtime_s", 0.8).metrics
    rows = frame.filter(pl.col("runtime_s").is_not_null())
    model = RuntimeQuantileRegressor(max_iter=30).fit(rows.select(FEATURES), rows["runtime_s"].to_numpy())
    card = ModelCard(
        kind="runtime",
        features=feature_schema(),
        training_window={
            "first_submit_s": rows["submit_s"].min(),
            "last_submit_s": rows["submit_s"].max(),
            "jobs": rows.height,
            "sites": ["KTH-SP2"],
            "sources": ["KTH-SP2"],
        },
        data_sha256=data_sha256(rows),
        scores={"holdout": 0.2, "by_model": scores.to_dicts()},
    )
    save_model(model, directory, card)
    registry = ModelRegistry(directory, poll_s=0.0)
    return registry


def advised(t0_s: float, outcomes: Sequence[tuple[float, float, float]]) -> tuple[Advisor, Clock]:
    """A real Advisor over a real two-site twin, fresh at `t0_s`: one job advised per outcome
    `(joined_at_s, realised_wait_s, realised_run_s)` at t0, reported as run where it was advised,
    and joined at `joined_at_s` when its job is seen ending. The predictions are the Advisor's own."""
    from telemetry.pipeline import CollectorStats
    from telemetry.schema import Batch, Sample
    from twin.advice.herding import HerdingLedger
    from twin.advice.live import Advisor
    from twin.advice.rank import AdvicePolicy
    from twin.live import build_twin
    from twin.topology import CollectorSpec, LinkSpec, Placement, SiteSpec, Topology

    clock = Clock(t0_s)
    names = ("home", "hpc1")
    sites = tuple(
        SiteSpec(n, "hpc", collectors=(CollectorSpec(f"{n}/slurm", "slurm", 30.0),), placement=Placement(speed=1.0))
        for n in names
    )
    stats = {f"{n}/slurm": CollectorStats(f"{n}/slurm", collections=1, last_success_s=t0_s) for n in names}
    twin = build_twin(
        Topology(sites, (LinkSpec("home", "hpc1", bandwidth_bps=10e9, latency_s=0.01),)), None, stats, clock=clock
    )
    ns = int(t0_s * 1e9)
    samples = [
        Sample("batch_cpus", v, {"site": n, "state": st}, ns)
        for n in names
        for st, v in (("allocated", 0), ("idle", 64))
    ]
    twin.state.write(Batch.from_samples(samples))
    advisor = Advisor(
        twin, AdviceLog(None, clock), HerdingLedger(600.0, clock), AdvicePolicy(default_home="home"), clock=clock
    )
    for i, (joined_at, r_wait, r_run) in enumerate(outcomes):
        clock.now = t0_s
        answer = advisor.advise(JobRequest(cores=1, walltime_s=7200))
        site = answer.recommended or "home"
        advisor.report(answer.advice_id, site, f"j{i}")
        clock.now = joined_at
        start = int(t0_s + r_wait)
        job = {"site": site, "job_id": f"j{i}", "user": "u", "state": "COMPLETED", "submit_s": int(t0_s),
               "start_s": start, "end_s": start + int(r_run), "req_walltime_s": 7200, "alloc_cores": 1,
               "observed_s": int(joined_at)}  # fmt: skip
        advisor.log.observe(site, conform_jobs(pl.DataFrame([job])).collect())
    clock.now = max([t0_s, *(o[0] for o in outcomes)])
    return advisor, clock


def joined_log(
    clock: Clock, outcomes: Sequence[tuple[float, float, float, float, float]], site: str = "hpc1"
) -> AdviceLog:
    """An AdviceLog (no store) with one answer per outcome `(joined_at_s, predicted_wait_s,
    predicted_run_s, realised_wait_s, realised_run_s)`: recorded, reported as run at `site`, and
    joined when its job is seen ending. A second site is always predicted 10 min slower."""
    log = AdviceLog(None, clock)
    for i, (joined_at, p_wait, p_run, r_wait, r_run) in enumerate(outcomes):
        created = joined_at - r_wait - r_run - 60
        clock.now = created
        ranked = tuple(
            SiteOutcome(
                name, "hpc", True, "fits",
                stage_in_s=Band.point(0.0), wait_s=Band.point(p_wait + extra), run_s=Band.point(p_run),
                stage_out_s=Band.point(0.0), turnaround_s=Band.point(p_wait + p_run + extra),
            )
            for name, extra in ((site, 0.0), ("other", 600.0))
        )  # fmt: skip
        advice = Advice(
            f"adv-{int(created * 1000):011x}-{i:08x}", created, "turnaround", "p50", "home", site, ranked, ""
        )
        log.record(advice, JobRequest(cores=1, walltime_s=7200))
        log.report(advice.advice_id, site, str(i))
        clock.now = joined_at
        start = int(created + 60 + r_wait)
        job = {"site": site, "job_id": str(i), "user": "u", "state": "COMPLETED", "submit_s": int(created + 60),
               "start_s": start, "end_s": start + int(r_run), "req_walltime_s": 7200, "alloc_cores": 1,
               "observed_s": int(joined_at)}  # fmt: skip
        log.observe(site, conform_jobs(pl.DataFrame([job])).collect())
    return log
