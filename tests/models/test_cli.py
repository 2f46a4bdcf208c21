"""`train` and `evaluate` end to end on a slice of a shipped log."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.artifacts import ModelRegistry
from service.cli_models import models_app, resolve_log, site_name

from .conftest import KTH


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The KTH-SP2 header and its first 5,000 jobs."""
    lines = gzip.decompress(KTH.read_bytes()).decode().splitlines()
    header = [line for line in lines if line.startswith(";")]
    body = [line for line in lines if line.strip() and not line.startswith(";")][:5000]
    path = tmp_path_factory.mktemp("logs") / "KTH-SP2-1996-2.1-cln.swf"
    path.write_text("\n".join(header + body) + "\n")
    return path


def test_log_names_resolve() -> None:
    assert resolve_log("KTH-SP2").name.startswith("KTH-SP2-1996")
    assert site_name(Path("CTC-SP2-1996-3.1-cln.swf.gz")) == "CTC-SP2"
    with pytest.raises(ValueError, match="no SWF log"):
        resolve_log("NO-SUCH-LOG")


def test_train_writes_loadable_models(tmp_path: Path, small_log: Path) -> None:
    result = CliRunner().invoke(models_app, ["train", "--log", str(small_log), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert {w["kind"] for w in written} == {"runtime", "wait"}
    registry = ModelRegistry(tmp_path)
    runtime = registry.current("runtime")
    assert runtime is not None and runtime.card.training_window["sites"] == ["KTH-SP2"]
    assert {r["model"] for r in runtime.card.scores["by_model"]} == {"ours", "user estimate", "AVE2"}


def test_evaluate_prints_tables_and_writes_plots(tmp_path: Path, small_log: Path) -> None:
    md = tmp_path / "eval.md"
    args = ["evaluate", "--log", str(small_log), "--plots", str(tmp_path / "plots"), "--markdown", str(md), "--json"]
    result = CliRunner().invoke(models_app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(r["target"], r["protocol"]) for r in data["results"]] == [("runtime", "split"), ("wait", "split")]
    assert any(p.endswith("error-cdf.html") for p in data["plots"])
    assert "| KTH-SP2 | **ours** |" in md.read_text()


def test_unknown_log_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(models_app, ["evaluate", "--log", "NO-SUCH-LOG", "--plots", str(tmp_path)])
    assert result.exit_code == 2 and "no SWF log" in result.output
