"""A new job's run time at each site from the learned model: its features are the user's history
at that site as of now (one model call for every site), the same numbers the model gives the job
as a row of the history; a site that does not know the user gets the best-known site's
prediction scaled by speed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from service.cli_models import load_swf
from twin.advice.request import JobRequest
from twin.advice.runtimes import guess_runtimes, request_rows
from twin.learned import HypotheticalRuntimes
from twin.sim.predictors import History
from twin.topology import Placement, SiteSpec

pytest.importorskip("sklearn")

KTH = Path(__file__).resolve().parents[3] / "collectors" / "traces" / "KTH-SP2-1996-2.1-cln.swf.gz"


@dataclass
class Source:
    site: str
    now_s: int
    history: History
    runtimes: HypotheticalRuntimes

    def hypothetical(self) -> HypotheticalRuntimes:
        return self.runtimes


@pytest.fixture(scope="module")
def model_and_rows() -> tuple[object, pl.DataFrame]:
    from models.estimators import RuntimeQuantileRegressor
    from models.features import FEATURES, collect_features

    rows = load_swf(KTH, "kth").collect()
    train = collect_features(rows.head(4000)).filter(pl.col("runtime_s").is_not_null())
    model = RuntimeQuantileRegressor(max_iter=30).fit(train.select(FEATURES), train["runtime_s"].to_numpy())
    return model, rows.slice(4000, 3000)


def test_learned_guesses_match_the_model_on_the_same_job_as_a_history_row(model_and_rows) -> None:  # type: ignore[no-untyped-def]
    from models.features import FEATURES, collect_features

    model, rows = model_and_rows
    now = int(rows["submit_s"].max()) + 1
    user = rows["user"].value_counts(sort=True)["user"][0]
    source = Source("kth", now, History(), HypotheticalRuntimes(model, rows, "kth", now))
    faster = SiteSpec("fast", "cloud", placement=Placement(speed=2.0))
    sites = (SiteSpec("kth", "hpc"), faster)
    request = JobRequest(cores=4, walltime_s=36_000, user=user)
    guesses = guess_runtimes([request], sites, {"kth": source}, ["kth"])[0]
    job = request_rows([request]).with_columns(pl.lit("kth").alias("site"), pl.lit(now).alias("submit_s"))
    expected = model.predict_quantiles(
        collect_features(pl.concat([rows, job], how="vertical_relaxed")).tail(1).select(FEATURES)
    )  # type: ignore[attr-defined]
    p10, p50, p90 = (float(np.asarray(q)[0]) for q in expected)
    here = guesses["kth"]
    assert here.source == "learned"
    # the band's top is capped at the request: a batch scheduler kills the job there
    assert (here.band.p10, here.band.p50, here.band.p90) == pytest.approx([p10, p50, min(p90, 36_000)])
    there = guesses["fast"]
    assert there.band.p50 == pytest.approx(here.band.p50 / 2) and "at kth, ×2 speed" in there.source


def test_a_request_asked_again_of_the_same_base_reuses_its_prediction(model_and_rows) -> None:  # type: ignore[no-untyped-def]
    """Pods of one Deployment, a job array: the same request of the same site at the same instant has
    the same features, so the model is called once for it; a new request is still predicted, with
    the numbers a cold call gives."""
    model, rows = model_and_rows
    now = int(rows["submit_s"].max()) + 1
    user = rows["user"].value_counts(sort=True)["user"][0]
    calls: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(model, name)

        def predict_quantiles(self, X: pl.DataFrame) -> object:
            calls.append(X.height)
            return model.predict_quantiles(X)

    source = Source("kth", now, History(), HypotheticalRuntimes(Counting(), rows, "kth", now))
    sites = (SiteSpec("kth", "hpc"),)
    one, other = JobRequest(cores=4, walltime_s=36_000, user=user), JobRequest(cores=8, walltime_s=3600, user=user)
    first = guess_runtimes([one, one], sites, {"kth": source}, ["kth", "kth"])
    again = guess_runtimes([one], sites, {"kth": source}, ["kth"])
    mixed = guess_runtimes([one, other], sites, {"kth": source}, ["kth", "kth"])
    assert calls == [1, 1]  # [one, one] is one row; `one` again is none; `other` is one
    assert first[0]["kth"] == first[1]["kth"] == again[0]["kth"] == mixed[0]["kth"]
    cold = guess_runtimes(
        [other], sites, {"kth": Source("kth", now, History(), HypotheticalRuntimes(model, rows, "kth", now))}, ["kth"]
    )
    assert mixed[1]["kth"] == cold[0]["kth"]
