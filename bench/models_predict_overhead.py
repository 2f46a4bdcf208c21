"""Batch prediction overhead: 10,000 jobs through our models vs the raw boosters' `predict`.

ours = RuntimeQuantileRegressor.predict_quantiles + WaitQuantileRegressor.predict_quantiles on the
       polars feature frame (column selection, category codes, reference, exp, cap, p10/p50/p90)
raw  = the `predict` calls of the fitted HistGradientBoosting models underneath (1 for runtime,
       3 for wait) on the prepared float matrix

Models are trained on SDSC-SP2's first 40,000 jobs and predict the next 10,000. Feature building
from job history is not in either side (it is measured by models_train_overhead and printed here
for information). R = median(ours) / median(raw) over REPEATS; target R <= 1.5.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine_note, result_line
from models.estimators import RuntimeQuantileRegressor, WaitQuantileRegressor
from models.features import FEATURES, collect_features
from service.cli_models import load_swf, resolve_log

NAME = "models_predict_overhead"
REPEATS = 15
JOBS = 10_000


def main() -> None:
    history = load_swf(resolve_log("SDSC-SP2"), "SDSC-SP2").collect().sort("submit_s", maintain_order=True)
    t0 = time.perf_counter()
    features = collect_features(history)
    print(f"features for {features.height:,} jobs: {time.perf_counter() - t0:.2f}s; {machine_note()}")
    train, test = features[:40_000], features[40_000 : 40_000 + JOBS].select(FEATURES)
    runtime = RuntimeQuantileRegressor().fit(train.select(FEATURES), train["runtime_s"].to_numpy())
    wait = WaitQuantileRegressor().fit(train.select(FEATURES), train["wait_s"].to_numpy())
    boosters = [(runtime, [runtime.estimator_]), (wait, [wait.estimator_, *wait.band_estimators_])]
    matrices = [model.encoding_.transform(test) for model, _ in boosters]
    ours_s, raw_s = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for model, _ in boosters:
            model.predict_quantiles(test)
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for (_, trees), matrix in zip(boosters, matrices, strict=True):
            for tree in trees:
                tree.predict(matrix)
        raw_s.append(time.perf_counter() - t0)
    ours, raw = statistics.median(ours_s), statistics.median(raw_s)
    print(f"{JOBS:,} jobs: ours {ours * 1e3:.1f} ms, raw predict {raw * 1e3:.1f} ms (medians of {REPEATS})")
    print(result_line(NAME, ours / raw, 1.5, lower_is_better=True))


if __name__ == "__main__":
    main()
