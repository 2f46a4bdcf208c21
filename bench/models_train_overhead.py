"""Training overhead of our runtime pipeline on SDSC-BLUE (232,536 jobs after the strong filter).

ours  = causal features from the job history (polars) + RuntimeQuantileRegressor.fit
        (encoding, log target relative to AVE2, median booster on 85 %, conformal band on 15 %)
plain = HistGradientBoostingRegressor() with scikit-learn's defaults, fitted on the same feature
        matrix (the one our encoding produces) against log run time

R = ours_seconds / plain_seconds, best of `ROUNDS` alternating runs each (the machine is shared;
the minimum is the least disturbed). Target: R <= 2 (issue 6). Last line: NAME: ratio=R target=2.0.
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
from models.estimators import RuntimeQuantileRegressor
from models.features import FEATURES, collect_features
from service.cli_models import load_swf, resolve_log

NAME = "models_train_overhead"
ROUNDS = 2


def main() -> None:
    history = load_swf(resolve_log("SDSC-BLUE"), "SDSC-BLUE").collect()
    print(f"SDSC-BLUE: {history.height:,} jobs; {machine_note()}")
    ours_s, plain_s = [], []
    matrix = target = None
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        features = collect_features(history).filter(pl.col("runtime_s").is_not_null())
        model = RuntimeQuantileRegressor().fit(features.select(FEATURES), features["runtime_s"].to_numpy())
        ours_s.append(time.perf_counter() - t0)
        if matrix is None:
            matrix = model.encoding_.transform(features.select(FEATURES))
            target = np.log(np.maximum(features["runtime_s"].to_numpy(), 1.0))
        t0 = time.perf_counter()
        plain = HistGradientBoostingRegressor(random_state=0).fit(matrix, target)
        plain_s.append(time.perf_counter() - t0)
        print(f"  ours {ours_s[-1]:.2f}s ({model.n_iter_} iter.)  plain {plain_s[-1]:.2f}s ({plain.n_iter_} iter.)")
    assert matrix is not None
    print(
        f"matrix {matrix.shape[0]:,} x {matrix.shape[1]}; best ours {min(ours_s):.2f}s, best plain {min(plain_s):.2f}s"
    )
    print(result_line(NAME, min(ours_s) / min(plain_s), 2.0, lower_is_better=True))


if __name__ == "__main__":
    main()
