"""Closing the loop (issue 6): the service forecasts with a learned runtime model from its models
directory, picks a newly trained one up without a restart, logs each job's first runtime
prediction and scores it when the job ends, and exposes the running accuracy in the API and
/metrics."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config

pytest.importorskip("skops")

CONFIG = """
sites:
  - name: kth
    kind: hpc
    collectors:
      - {type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 0.3s, speed: 3600, start_offset: 30d}
"""


def _train(directory: Path) -> None:
    from models.artifacts import ModelCard, save_model
    from models.estimators import RuntimeQuantileRegressor
    from models.features import FEATURES, build_features
    from service.cli_models import load_swf
    from tests.models.conftest import KTH

    rows = build_features(load_swf(KTH, "kth").head(4000)).collect().filter(pl.col("runtime_s").is_not_null())
    model = RuntimeQuantileRegressor().fit(rows.select(FEATURES), rows["runtime_s"].to_numpy())
    save_model(model, directory, ModelCard(kind="runtime"))


def test_learned_model_is_hot_loaded_used_and_scored(tmp_path: Path) -> None:
    loaded = parse_config(CONFIG)
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        deadline = time.monotonic() + 20
        while client.get("/v1/sites/kth/forecast", headers=auth).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.get("/v1/sites/kth/forecast", headers=auth).json()["predictor"] == "ave2"
        missing = client.get("/v1/sites/kth/forecast", params={"predictor": "learned"}, headers=auth)
        assert missing.status_code == 409 and "ctwin train" in missing.json()["error"]["message"]
        assert missing.json()["error"]["code"] == "no_model"  # not "no_batch_queue": the queue is there

        _train(loaded.models_path(tmp_path))  # a new model lands while the service runs
        deadline = time.monotonic() + 20
        body: dict = {}
        while time.monotonic() < deadline:
            body = client.get("/v1/sites/kth/forecast", headers=auth).json()
            if body["predictor"].startswith("learned") and body["accuracy"]["runtime"]["scored"] >= 3:
                break
            time.sleep(0.3)
        assert body["predictor"].startswith("learned (runtime-"), body["predictor"]
        runtime = body["accuracy"]["runtime"]
        assert runtime["scored"] >= 3 and 0 < runtime["mean_accuracy"] <= 1 and runtime["mae_s"] >= 0
        metrics = client.get("/metrics").text
    assert 'ctwin_model_runtime_scored_total{site="kth"}' in metrics
    assert 'ctwin_model_runtime_mean_accuracy_ratio{site="kth"}' in metrics


def test_a_tampered_artefact_is_refused_and_the_service_keeps_forecasting(tmp_path: Path) -> None:
    loaded = parse_config(CONFIG)
    models_dir = loaded.models_path(tmp_path)
    _train(models_dir)
    artefact = next(models_dir.glob("runtime-*.skops"))
    artefact.write_bytes(artefact.read_bytes() + b"tampered")
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["read"])[1]
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        deadline = time.monotonic() + 20
        res = client.get("/v1/sites/kth/forecast", headers={"Authorization": f"Bearer {token}"})
        while res.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            res = client.get("/v1/sites/kth/forecast", headers={"Authorization": f"Bearer {token}"})
        assert res.status_code == 200 and res.json()["predictor"] == "ave2"
