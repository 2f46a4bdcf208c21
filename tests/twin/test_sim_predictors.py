"""The runtime predictors and the history they learn from."""

from __future__ import annotations

import numpy as np
import pytest

from tests.twin.sim_helpers import job
from twin.sim import Ave2, Clairvoyant, History, Job, RequestedTime, SimInputError, predict_all
from twin.sim.predictors import BatchPredictor, Pinned, RuntimePrediction


def test_ave2_is_the_floor_mean_of_the_users_last_two_completions_capped_at_the_request() -> None:
    history = History.from_jobs(
        [job("1", 0, 100, 200, 1, "u"), job("2", 0, 51, 200, 1, "u"), job("3", 0, 9, 9, 1, "v")]
    )
    ave2 = Ave2()
    assert ave2.predict(job("a", 0, None, 1000, 1, "u"), history) == 75  # (100 + 51) // 2
    assert ave2.predict(job("b", 0, None, 60, 1, "u"), history) == 60  # capped at the request
    assert ave2.predict(job("c", 0, None, 500, 1, "v"), history) == 500  # one completion: the request
    assert ave2.predict(job("d", 0, None, 500, 1, "w"), history) == 500  # none at all: the request
    history.record("u", 1)
    assert history.recent("u") == (51, 1) and history.completed("u") == 3
    assert ave2.predict(job("a", 0, None, 1000, 1, "u"), history) == 26


def test_requested_time_and_clairvoyant() -> None:
    history = History()
    assert RequestedTime().predict(job("a", 0, 10, 60, 1), history) == 60
    assert Clairvoyant().predict(job("a", 0, 10, 60, 1), history) == 10
    with pytest.raises(SimInputError, match="actual run time"):
        Clairvoyant().predict(job("p", 0, None, 60, 1), history)
    with pytest.raises(SimInputError, match="no requested time"):
        RequestedTime().predict(job("p", 0, 10, None, 1), history)
    with pytest.raises(ValueError, match="depth"):
        History(0)


class Batch:
    name = "batch"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, job, history):  # type: ignore[no-untyped-def]
        raise AssertionError("the batch method should be used")

    def observe(self, job) -> None:  # type: ignore[no-untyped-def]
        pass

    def predict_batch(self, jobs, history):  # type: ignore[no-untyped-def]
        from twin.sim import RuntimePrediction

        self.calls += 1
        return RuntimePrediction(np.array([float(j.req_s) for j in jobs[: len(jobs) - self.calls + 1]]))


def test_predict_all_uses_a_batch_method_and_checks_its_answer() -> None:
    jobs = [job("a", 0, None, 5, 1), job("b", 0, None, 7, 1)]
    batch = Batch()
    assert predict_all(batch, jobs, History()).p50.tolist() == [5.0, 7.0]
    assert predict_all(RequestedTime(), jobs, History()).p50.tolist() == [5.0, 7.0]
    with pytest.raises(SimInputError, match="1 predictions for 2 jobs"):
        predict_all(batch, jobs, History())  # the second call answers one short


def test_pinned_jobs_run_as_long_as_they_are_told_and_the_others_as_predicted() -> None:
    class Banded:
        name = "banded"

        def predict(self, job: Job, history: History) -> float:
            return 10.0

        def observe(self, job: Job) -> None:
            pass

        def predict_batch(self, jobs: list[Job], history: History) -> RuntimePrediction:
            n = len(jobs)
            return RuntimePrediction(np.full(n, 10.0), np.full(n, 5.0), np.full(n, 20.0))

    jobs = [Job("a", 0, None, 100, 1, user="u"), Job("hold", 0, None, 10**8, 4, user="x")]
    pinned = Pinned(Banded(), {"hold": 10**8})
    assert isinstance(pinned, BatchPredictor) and pinned.name == "banded"
    out = pinned.predict_batch(jobs, History())
    assert out.p50.tolist() == [10.0, 1e8] and out.p10 is not None and out.p90 is not None
    assert out.p10.tolist() == [5.0, 1e8] and out.p90.tolist() == [20.0, 1e8]
    assert Pinned(Ave2(), {"hold": 7}).predict(jobs[1], History()) == 7.0
    assert Pinned(Ave2(), {"hold": 7}).predict(jobs[0], History()) == 100  # ave2 without history: the request
