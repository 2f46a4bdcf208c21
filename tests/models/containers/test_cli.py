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


def test_containers_advise_honours_top_and_says_the_caveat_and_the_node_it_assumed() -> None:
    """JSON and table alike: --top bounds the alternatives, the model's caveat is shown (as the
    API's what-if gives it), and the node size is stated whether or not it was given."""
    from models.containers.config import CAVEAT

    runner = CliRunner()
    result = runner.invoke(app, ["containers", "advise", "--json", "--top", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["alternatives"]) == 2 and doc["alternatives_total"] == 18
    assert doc["caveat"] == CAVEAT and "MLPerf" in doc["caveat"]
    assert doc["workload"]["cores_per_node"] is None
    assert "not given" in doc["node_size"] and "32" in doc["node_size"] and "--cores-per-node" in doc["node_size"]

    sized = json.loads(
        runner.invoke(app, ["containers", "advise", "--json", "--cores-per-node", "8", "--top", "20"]).stdout
    )
    assert sized["node_size"] == "8 CPUs (--cores-per-node)" and sized["workload"]["cores_per_node"] == 8
    assert len(sized["alternatives"]) == sized["alternatives_total"] == 4 * 3  # 1, 2, 4, 8 x three policies

    table = runner.invoke(app, ["containers", "advise", "--top", "3"])
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())  # rich wraps long lines at its console's width
    assert table.stdout.count("×") == 2 * 3  # three rows: the p50 and the band of each
    assert "the best 3 of 18 alternatives" in text
    assert "node: size not given" in text and f"caveat: {CAVEAT}" in text
