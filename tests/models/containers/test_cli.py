"""`ctwin evaluate --containers` end to end on the shipped published runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app


def test_evaluate_containers_prints_the_table_and_writes_plots(tmp_path: Path) -> None:
    md = tmp_path / "table.md"
    result = CliRunner().invoke(
        app, ["evaluate", "--containers", "--plots", str(tmp_path / "plots"), "--markdown", str(md), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["runs"] == 3159 and len(doc["skipped"]) == 250 and doc["judged_fold"] == 16
    assert {(r["held_out"], r["model"]) for r in doc["rows"]} == {
        (h, m) for h in (4, 16, 32) for m in ("ours", "granularity rule", "no effect")
    }
    assert (tmp_path / "plots" / "containers-pred-vs-measured.html").exists()
    assert "| 16 | **ours** |" in md.read_text()


def test_a_missing_runs_source_names_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["containers", "evaluate", "--runs", str(tmp_path / "none.tar.gz")])
    assert result.exit_code != 0
    assert "pass --runs" in result.output


def test_an_unknown_fold_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["containers", "evaluate", "--fold", "7", "--plots", str(tmp_path)])
    assert result.exit_code != 0
    assert "no run has 7 containers" in result.output
