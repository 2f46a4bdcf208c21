"""The published runs load through our own parser, from the real shipped tarball (Liu & Guitart's
results.json files, byte-identical to upstream), exactly; bad files are named and the rest kept."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import polars as pl
import pytest

from models.containers.effect import published_effects
from models.containers.published import PUBLISHED_RUNS, RUN_SCHEMA, load_published_runs, parse_run


@pytest.fixture(scope="module")
def loaded():  # type: ignore[no-untyped-def]
    return load_published_runs()


def test_every_file_is_a_run_or_a_named_problem(loaded) -> None:  # type: ignore[no-untyped-def]
    with tarfile.open(PUBLISHED_RUNS) as tar:
        files = [m.name for m in tar if m.name.endswith("/results.json")]
    assert len(files) == 3409
    assert loaded.runs.height + len(loaded.problems) == 3409
    assert loaded.runs.height == 3159
    assert dict(loaded.runs.schema) == RUN_SCHEMA
    # the 250 skipped are the Scanflow/Seldon folders whose names carry no configuration
    assert {p.path.split("/")[0] for p in loaded.problems} == {"results_scanflow", "test", "output-baseline"}
    assert all("configuration is unknown" in p.reason for p in loaded.problems)


def test_one_run_exactly(loaded) -> None:  # type: ignore[no-untyped-def]
    row = loaded.runs.filter(pl.col("path") == "exp3/none-resnet-4-32-O-16-2/results.json").row(0, named=True)
    # values as the file and its folder name state them
    assert row["experiment"] == "exp3" and row["hosts"] == 4
    assert (row["env"], row["cpu_affinity"], row["memory_affinity"]) == ("none", False, False)
    assert (row["containers"], row["cpus_per_container"], row["memory_gib_per_container"]) == (4, 8.0, 32.0)
    assert (row["server_batch"], row["scenario"], row["client_batch"], row["rep"]) == (32, "Offline", 16, 2)
    assert row["client_threads"] == 256 and row["target_qps"] == 200.0
    assert row["qps"] == pytest.approx(564.3626525768965)
    assert row["latency_mean_s"] == pytest.approx(26.56321260141162)
    assert row["latency_p90_s"] == pytest.approx(45.996769631)
    assert row["queries"] == 32768 and row["application"] == "resnet50" and row["backend"] == "tfserving"


def test_eight_field_names_and_memory_affinity(loaded) -> None:  # type: ignore[no-untyped-def]
    row = loaded.runs.filter(pl.col("path") == "output-exp15/none-resnet-4-32-O-10-10-2/results.json").row(
        0, named=True
    )
    assert (row["load"], row["extra"], row["rep"], row["client_batch"]) == (10, 10, 2, 10)
    one = loaded.runs.filter((pl.col("env") == "cpumemory") & (pl.col("containers") == 1))
    assert one.height > 0 and not one["memory_affinity"].any()  # the script does nothing with one container


def test_bad_files_are_reported_and_the_rest_kept(tmp_path: Path) -> None:
    with tarfile.open(PUBLISHED_RUNS) as tar:
        good = tar.extractfile("./exp1/none-resnet-4-32-O-16-2/results.json").read()  # type: ignore[union-attr]
    (tmp_path / "exp1" / "none-resnet-4-32-O-16-2").mkdir(parents=True)
    (tmp_path / "exp1" / "none-resnet-4-32-O-16-2" / "results.json").write_bytes(good)
    broken = tmp_path / "exp1" / "none-resnet-2-32-O-16-1"
    broken.mkdir()
    (broken / "results.json").write_bytes(good[: len(good) // 2])
    liar = tmp_path / "exp1" / "none-resnet-2-32-O-8-1"  # says batch 8, LoadGen ran 16
    liar.mkdir()
    (liar / "results.json").write_bytes(good)
    odd = tmp_path / "exp1" / "mystery"
    odd.mkdir()
    (odd / "results.json").write_bytes(good)
    loaded = load_published_runs(tmp_path)
    assert loaded.runs["path"].to_list() == ["exp1/none-resnet-4-32-O-16-2/results.json"]
    reasons = {p.path: p.reason for p in loaded.problems}
    assert "not JSON" in reasons["exp1/none-resnet-2-32-O-16-1/results.json"]
    assert "max_batchsize=16 contradicts" in reasons["exp1/none-resnet-2-32-O-8-1/results.json"]
    assert "configuration is unknown" in reasons["exp1/mystery/results.json"]


def test_scenario_missing_from_the_file_is_an_error() -> None:
    doc = {"TestScenario.Server": {"qps": 1.0}, "cmdline": "Namespace(scenario='Server')"}
    with pytest.raises(ValueError, match=r"no TestScenario\.Offline"):
        parse_run("exp1/none-resnet-1-32-O-1-1/results.json", json.dumps(doc).encode())


def test_missing_source_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such tarball or folder"):
        load_published_runs(tmp_path / "nope.tar.gz")


def test_effects_are_ratios_to_the_workload_reference(loaded) -> None:  # type: ignore[no-untyped-def]
    effects = published_effects(loaded.runs)
    assert effects.rows["scenario"].unique().to_list() == ["Offline"]
    reference = effects.rows.filter((pl.col("env") == "none") & (pl.col("containers") == 1))
    assert reference["ratio"].median() == pytest.approx(1.0, abs=0.01)
    # the effect sizes PROVENANCE states: splitting one node gives +20-72 % (median of repetitions)
    split = effects.rows.filter((pl.col("hosts") == 1) & (pl.col("containers") > 1) & (pl.col("env") == "none"))
    assert 1.15 < split["ratio"].median() < 1.5
    assert effects.without_reference == 3
