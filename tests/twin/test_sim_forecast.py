"""Forecasts from a live state, worked out by hand, and checked against a replay."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from tests.twin.sim_helpers import job, kth_slice
from twin.sim import (
    Ave2,
    Clairvoyant,
    History,
    Job,
    Policy,
    RunningJob,
    RuntimePrediction,
    SimTimeError,
    Simulator,
    Site,
    SiteState,
    forecast,
    queue_order,
)

FOUR = Site.single("tiny", 4)


def state_at_100() -> SiteState:
    """Capacity 4 at t=100: R1 (2 procs, limit 200, started 50) runs to 250; R2 (2 procs, limit 30,
    started 90) to 120. Pending in priority order: P1 (4 procs, 100 s), P2 (2, 100 s), P3 (1, 10 s)."""
    return SiteState(
        now_s=100,
        site=FOUR,
        running=(RunningJob(job("R1", 40, None, 200, 2), 50), RunningJob(job("R2", 80, None, 30, 2), 90)),
        pending=(job("P1", 60, None, 100, 4), job("P2", 95, None, 100, 2), job("P3", 99, None, 10, 1)),
    )


def predicted(frame: pl.DataFrame) -> dict[str, int | None]:
    return dict(zip(frame["job_id"].to_list(), frame["predicted_start_s"].to_list(), strict=True))


def test_easy_forecast_from_a_state() -> None:
    # P1 needs the whole machine: R1's planned end, 250. P2 fits in R2's processors at 120 and
    # ends at 220 <= 250; P3 then fits at 220 (ends 230). X (2 procs, 500 s) cannot end by 250:
    # it waits for P1 (250-350).
    x = job("X", 0, None, 500, 2)
    frame = forecast(state_at_100(), Policy.easy(), extra=[x])
    assert predicted(frame) == {"P1": 250, "P2": 120, "P3": 220, "X": 350}
    assert frame["hypothetical"].to_list() == [False, False, False, True]
    assert frame["predicted_end_s"].to_list() == [350, 220, 230, 850]
    assert frame.columns == ["job_id", "partition", "hypothetical", "predicted_start_s", "predicted_end_s"]


def test_fcfs_forecast_from_the_same_state() -> None:
    # P1 250-350; then P2 and P3 at 350; X needs 2 with 1 free: it waits for P3 (360).
    frame = forecast(state_at_100(), Policy.fcfs(), extra=[job("X", 0, None, 500, 2)])
    assert predicted(frame) == {"P1": 250, "P2": 350, "P3": 350, "X": 360}


def test_a_running_job_past_its_prediction_is_corrected_first() -> None:
    # AVE2 predicts 10 s for u (history 5 s and 15 s), but R has run 50 s: the requested-time
    # correction plans it to its 300 s limit, so P (all 4 processors) starts at 0 + 300.
    history = History()
    history.record("u", 5)
    history.record("u", 15)
    state = SiteState(
        now_s=50,
        site=FOUR,
        running=(RunningJob(job("R", 0, None, 300, 1, "u"), 0),),
        pending=(job("P", 10, None, 100, 4, "v"),),
        history=history,
    )
    assert predicted(forecast(state, Policy.easy_plus_plus("reqtime"), Ave2())) == {"P": 300}
    # Tsafrir's correction steps up from the prediction instead: 10 + 60 = 70 > 50.
    assert predicted(forecast(state, Policy.easy_plus_plus("tsafrir"), Ave2())) == {"P": 70}
    # A job already past its limit (Slurm is killing it) is taken to end now.
    late = SiteState(50, FOUR, (RunningJob(job("R", 0, None, 30, 1), 0),), (job("P", 10, None, 100, 4),))
    assert predicted(forecast(late, Policy.easy())) == {"P": 50}


class Banded:
    """A batch predictor with a p10-p90 band: p50 = half the request, p10/p90 = 0.25 / 0.9 of it."""

    name = "banded"

    def predict(self, job: Job, history: History) -> float:
        return (job.req_s or 0) / 2

    def observe(self, job: Job) -> None:
        pass

    def predict_batch(self, jobs: Sequence[Job], history: History) -> RuntimePrediction:
        req = np.array([j.req_s for j in jobs], dtype=np.float64)
        return RuntimePrediction(p50=req / 2, p10=req / 4, p90=req * 0.9)


def test_a_predictor_band_gives_early_and_late_starts() -> None:
    # One processor; R (limit 400, started at 0) and P waiting at t=0. R runs p50 200 s
    # (P at 200), p10 100 s (P at 100), p90 360 s (P at 360).
    state = SiteState(
        0, Site.single("one", 1), (RunningJob(job("R", 0, None, 400, 1), 0),), (job("P", 0, None, 80, 1),)
    )
    frame = forecast(state, Policy.easy_plus_plus(), Banded())
    assert frame.select("predicted_start_s", "start_early_s", "start_late_s").row(0) == (200, 100, 360)


def test_forecast_rejects_a_state_from_the_future() -> None:
    with pytest.raises(SimTimeError, match="R"):
        forecast(SiteState(10, FOUR, (RunningJob(job("R", 0, None, 30, 1), 20),)), Policy.easy())
    with pytest.raises(SimTimeError, match="P"):
        forecast(SiteState(10, FOUR, (), (job("P", 11, None, 30, 1),)), Policy.easy())


def test_an_oversized_pending_job_is_dropped_on_request_with_a_null_start() -> None:
    state = SiteState(0, FOUR, (), (job("huge", 0, None, 10, 8), job("ok", 0, None, 10, 1)))
    frame = forecast(state, Policy.easy(), oversize="drop")
    assert predicted(frame) == {"huge": None, "ok": 0}


def test_fcfs_clairvoyant_forecast_from_a_replayed_state_matches_the_replay() -> None:
    # Under FCFS later arrivals never move earlier jobs, so with exact run times the forecast
    # made at any instant must give every pending job the start the replay gave it.
    site = Site.single("KTH-SP2", 100)
    jobs = sorted(kth_slice(), key=queue_order)
    full = Simulator(site, Policy.fcfs())
    for j in jobs:
        full.submit(j)
    full.run()
    replay_start = dict(zip((j.job_id for j in full.jobs), full.start_times(), strict=True))
    for cut in (jobs[500].submit_s + 1, jobs[1500].submit_s + 1):
        sim = Simulator(site, Policy.fcfs())
        for j in jobs:
            if j.submit_s < cut:
                sim.submit(j)
        sim.run(until=cut)
        state = sim.state()
        assert state.now_s == cut and state.pending, "the cut should find a queue"
        frame = forecast(state, Policy.fcfs(), Clairvoyant())
        assert predicted(frame) == {jid: replay_start[jid] for jid in frame["job_id"].to_list()}
