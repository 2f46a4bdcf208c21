"""Artefacts: only files from the model directory, matching their card, with trusted types, load;
a registry serves a newly written model without a restart."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import skops.io as sio

from models.artifacts import ModelCard, ModelRefused, ModelRegistry, card_path, load_model, save_model
from models.estimators import RuntimeQuantileRegressor
from models.features import FEATURES


@pytest.fixture(scope="module")
def train(kth_features: pl.DataFrame) -> pl.DataFrame:
    return kth_features.head(3000)


@pytest.fixture(scope="module")
def fitted(train: pl.DataFrame) -> RuntimeQuantileRegressor:
    return RuntimeQuantileRegressor(max_iter=20).fit(train.select(FEATURES), train["runtime_s"])


def test_round_trip_with_a_complete_card(tmp_path: Path, fitted: RuntimeQuantileRegressor, train: pl.DataFrame) -> None:
    path, card = save_model(fitted, tmp_path, ModelCard(kind="runtime", scores={"mae_s": 1.0}))
    loaded = load_model(path, tmp_path)
    X = train.select(FEATURES)
    np.testing.assert_array_equal(loaded.model.predict(X), fitted.predict(X))
    on_disk = json.loads(card_path(path).read_text())
    assert on_disk["artefact"] == path.name and len(on_disk["artefact_sha256"]) == 64
    assert {"scikit-learn", "skops", "numpy", "polars", "python"} <= set(on_disk["versions"])
    assert on_disk["params"]["max_iter"] == 20 and loaded.card == card
    assert load_model(path.name, tmp_path).card == card  # a bare name is looked up in the directory


def test_a_new_models_dir_and_its_files_are_owner_only(tmp_path: Path, fitted: RuntimeQuantileRegressor) -> None:
    old = os.umask(0o022)  # a caller's usual umask: the modes must not depend on it
    try:
        path, _ = save_model(fitted, tmp_path / "models", ModelCard(kind="runtime"))
    finally:
        os.umask(old)
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (path.parent, path, card_path(path))] == [
        "0o700",
        "0o600",
        "0o600",
    ]


def test_a_changed_file_is_refused(tmp_path: Path, fitted: RuntimeQuantileRegressor) -> None:
    path, _ = save_model(fitted, tmp_path, ModelCard(kind="runtime"))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelRefused, match=rf"{path.name}.*sha256 .* does not match its card"):
        load_model(path, tmp_path)


def test_a_file_outside_the_directory_is_refused(tmp_path: Path, fitted: RuntimeQuantileRegressor) -> None:
    trusted, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    trusted.mkdir()
    path, _ = save_model(fitted, elsewhere, ModelCard(kind="runtime"))
    with pytest.raises(ModelRefused, match="not in the model directory"):
        load_model(path, trusted)
    with pytest.raises(ModelRefused, match="not in the model directory"):
        load_model(trusted / ".." / "elsewhere" / path.name, trusted)
    (trusted / path.name).symlink_to(path)  # a link inside pointing outside
    with pytest.raises(ModelRefused, match="not in the model directory"):
        load_model(trusted / path.name, trusted)


def test_a_file_without_card_is_refused(tmp_path: Path, fitted: RuntimeQuantileRegressor) -> None:
    path, _ = save_model(fitted, tmp_path, ModelCard(kind="runtime"))
    card_path(path).unlink()
    with pytest.raises(ModelRefused, match="no readable model card"):
        load_model(path, tmp_path)


class Gadget:
    """Stands for any class an attacker would like to have instantiated on load."""

    def __init__(self) -> None:
        self.armed = True


def test_untrusted_types_are_refused_even_with_a_matching_card(tmp_path: Path) -> None:
    path, _ = save_model({"model": Gadget()}, tmp_path, ModelCard(kind="runtime"))
    with pytest.raises(ModelRefused, match=rf"{path.name}.*not trusted: .*Gadget"):
        load_model(path, tmp_path)


def test_registry_hot_reloads_a_new_model(
    tmp_path: Path, fitted: RuntimeQuantileRegressor, train: pl.DataFrame
) -> None:
    registry = ModelRegistry(tmp_path, poll_s=0.0)
    assert registry.current("runtime") is None
    first, _ = save_model(fitted, tmp_path, ModelCard(kind="runtime"))
    live = registry.current("runtime")
    assert live is not None and live.path.name == first.name
    newer = RuntimeQuantileRegressor(max_iter=5).fit(train.select(FEATURES), train["runtime_s"])
    time.sleep(0.01)
    second, _ = save_model(newer, tmp_path, ModelCard(kind="runtime"))
    served = registry.current("runtime")
    assert served is not None and served.path.name == second.name
    assert served.model.max_iter == 5


def test_registry_keeps_serving_when_a_new_artefact_is_bad(tmp_path: Path, fitted: RuntimeQuantileRegressor) -> None:
    registry = ModelRegistry(tmp_path, poll_s=0.0)
    good, _ = save_model(fitted, tmp_path, ModelCard(kind="runtime"))
    assert registry.current("runtime") is not None
    time.sleep(0.01)
    bad, _ = save_model(fitted, tmp_path, ModelCard(kind="runtime"))
    bad.write_bytes(b"tampered")
    served = registry.current("runtime")
    assert served is not None and served.path.name == good.name
    assert bad.name in registry.errors["runtime"]


def test_registry_polls_no_more_often_than_asked(tmp_path: Path, fitted: RuntimeQuantileRegressor) -> None:
    registry = ModelRegistry(tmp_path, poll_s=3600)
    assert registry.current("runtime") is None
    save_model(fitted, tmp_path, ModelCard(kind="runtime"))
    assert registry.current("runtime") is None  # not yet looked
    registry.refresh()
    assert registry.current("runtime") is not None


def test_skops_file_has_only_the_expected_types(fitted: RuntimeQuantileRegressor) -> None:
    from models.artifacts import TRUSTED_TYPES

    assert set(sio.get_untrusted_types(data=sio.dumps(fitted))) <= TRUSTED_TYPES


def test_a_models_dir_not_made_yet_is_no_model_not_a_fault(tmp_path: Path) -> None:
    """A fresh install has no models directory until the first `ctwin train`: nothing served, no
    error to alarm an operator; a directory that cannot be read is still reported."""
    registry = ModelRegistry(tmp_path / "models", poll_s=0)
    assert registry.current("runtime") is None and registry.errors == {}
    (tmp_path / "file").write_text("not a directory")
    broken = ModelRegistry(tmp_path / "file", poll_s=0)
    assert broken.current("runtime") is None and "cannot list" in broken.errors["*"]
