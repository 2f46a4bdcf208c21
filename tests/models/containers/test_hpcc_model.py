"""The container-effect model on our own HPCC runs (the committed ones), judged on held-out
repetitions against the measured factor effects."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import models.containers.hpcc_model as hm
from models.containers.hpcc import load_hpcc_runs


@pytest.fixture(scope="module")
def runs() -> pl.DataFrame:
    return load_hpcc_runs()


@pytest.fixture(scope="module")
def verdict(runs: pl.DataFrame) -> hm.HpccVerdict:
    return hm.evaluate_hpcc(runs, metrics=("star_stream_triad_gbs", "avg_ping_pong_latency_us", "wall_s"))


def test_every_factor_level_is_judged(verdict: hm.HpccVerdict) -> None:
    t = verdict.table
    assert set(t["factor"]) == {"ranks", "binding", "transport", "runtime"}
    assert t["measured"].is_finite().all() and t["predicted"].is_finite().all()
    assert verdict.orders.height == 3 * 4 - 1  # ping-pong latency has no 1-rank reference: no ranks row


def test_the_clear_effects_are_right(verdict: hm.HpccVerdict) -> None:
    """What the measurement tells apart on this machine: 4 ranks halve STREAM and multiply the wall
    time; TCP multiplies the ping-pong latency about elevenfold."""
    t = verdict.table
    row = {(r["metric"], r["factor"], r["level"]): r for r in t.iter_rows(named=True)}
    for key in [
        ("star_stream_triad_gbs", "ranks", "4"),
        ("wall_s", "ranks", "4"),
        ("avg_ping_pong_latency_us", "transport", "tcp-lo"),
        ("avg_ping_pong_latency_us", "transport", "tcp-veth"),
        ("star_stream_triad_gbs", "transport", "tcp-veth"),
    ]:
        assert row[key]["sign"], row[key]
    assert row[("avg_ping_pong_latency_us", "transport", "tcp-lo")]["predicted"] > 5


def test_it_beats_assuming_no_effect(
    runs: pl.DataFrame, verdict: hm.HpccVerdict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_effect(train: pl.DataFrame, test: pl.DataFrame, metric: str) -> np.ndarray:
        return np.full(test.height, float(train[metric].median()))  # type: ignore[arg-type]

    monkeypatch.setattr(hm, "predict_figure", no_effect)
    baseline = hm.evaluate_hpcc(runs, metrics=("star_stream_triad_gbs", "avg_ping_pong_latency_us", "wall_s"))
    assert verdict.table["sign"].sum() > baseline.table["sign"].sum()


def test_the_noise_floor_decides_what_counts_as_no_effect() -> None:
    assert hm._side(1.05, 0.10) == 0 and hm._side(0.85, 0.10) == -1 and hm._side(1.2, 0.10) == 1
    levels = [("ref", 1.0, 1.0), ("a", 1.03, 0.97), ("b", 0.5, 0.6)]
    assert hm._ordered(levels, 0.10)  # ref and a are within the floor: their order is not judged
    assert not hm._ordered(levels, 0.0)


def test_on_a_quiet_machine_every_sign_is_right(runs: pl.DataFrame) -> None:
    """Study seed18 (N = 1000, nothing else running): every factor level's sign on held-out
    repetitions; the order of every factor's levels but one (the runtimes' ring bandwidth, at the
    noise floor: README)."""
    quiet = hm.studies(runs)["seed18"]
    verdict = hm.evaluate_hpcc(quiet)
    assert verdict.table["sign"].all(), verdict.table.filter(~pl.col("sign"))
    assert verdict.orders["order"].sum() >= verdict.orders.height - 1, verdict.orders.filter(~pl.col("order"))


def test_the_held_out_repetitions_are_the_last_forty_percent() -> None:
    five = pl.DataFrame({"rep": [0, 1, 2, 3, 4]})
    ten = pl.DataFrame({"rep": list(range(10))})
    assert hm.held_out_reps(five) == [3, 4]
    assert hm.held_out_reps(ten) == [6, 7, 8, 9]


def test_with_ten_repetitions_every_order_is_right(runs: pl.DataFrame) -> None:
    """Study seed19 (N = 1000, 10 repetitions, 4 held out, quiet): the order of every factor's
    levels, and every sign but one, which sits at the noise floor (README): the measured and the
    predicted effect are within 5 % of each other, and the prediction follows what the training
    repetitions measured (within 2 %): the held-out repetitions moved, not the model."""
    verdict = hm.evaluate_hpcc(hm.studies(runs)["seed19"])
    assert verdict.orders["order"].all(), verdict.orders.filter(~pl.col("order"))
    wrong = verdict.table.filter(~pl.col("sign"))
    assert wrong.height <= 1, wrong
    for r in wrong.iter_rows(named=True):
        assert abs(r["measured"] / r["predicted"] - 1) < 0.05, r
        assert abs(r["predicted"] / r["trained"] - 1) < 0.02, r
