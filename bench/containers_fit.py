"""Fit + evaluate cost of the container-effect model on the published runs (issue 16).

ours  = ContainerEffectRegressor.fit on every Offline run but the judged held-out count (16
        containers per node): encoding, a calibration fit without one more whole count, the served
        fit; then predict_quantiles on the held-out runs and their metrics
plain = HistGradientBoostingRegressor() with scikit-learn's defaults fitted on the same training
        matrix against log(effect ratio)

R = ours_seconds / plain_seconds, best of `ROUNDS` alternating runs each (the machine is shared;
the minimum is the least disturbed). Target: R <= 2. Last line: NAME: ratio=R target=2.0 PASS|FAIL.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.ensemble import HistGradientBoostingRegressor

from bench._common import machine_note, result_line
from models.containers.effect import effect_features, published_effects
from models.containers.estimators import ContainerEffectRegressor
from models.containers.evaluation import HELD_OUT, effect_metrics
from models.containers.published import load_published_runs

NAME = "containers_fit"
ROUNDS = 7


def main() -> None:
    effects = published_effects(load_published_runs().runs).rows
    train = effects.filter(pl.col("containers") != HELD_OUT)
    test = effects.filter(pl.col("containers") == HELD_OUT)
    print(f"{train.height} training runs, {test.height} held-out runs ({HELD_OUT} containers); {machine_note()}")
    X_train, y_train = effect_features(train), train["ratio"].to_numpy()
    X_test, y_test = effect_features(test), test["ratio"].to_numpy()
    matrix, target = X_train.to_numpy().astype(np.float64), np.log(y_train)
    ours_s, plain_s = [], []
    metrics: dict[str, float] = {}
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        model = ContainerEffectRegressor().fit(X_train, y_train)
        q = model.predict_quantiles(X_test)
        metrics = effect_metrics(y_test, q.p10, q.p50, q.p90)
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain = HistGradientBoostingRegressor(random_state=0).fit(matrix, target)
        plain_s.append(time.perf_counter() - t0)
        print(
            f"  ours {ours_s[-1] * 1e3:.0f} ms (2 fits x {model.n_iter_} iter.)  plain {plain_s[-1] * 1e3:.0f} ms "
            f"({plain.n_iter_} iter.)"
        )
    print(
        f"held-out MdAPE {metrics['mape_pct']:.2f} %, p90 coverage {metrics['p90_coverage']:.3f}; "
        f"best ours {min(ours_s) * 1e3:.0f} ms, best plain {min(plain_s) * 1e3:.0f} ms"
    )
    print(result_line(NAME, min(ours_s) / min(plain_s), 2.0, lower_is_better=True))


if __name__ == "__main__":
    main()
