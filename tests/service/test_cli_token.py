"""`ctwin token create|list|revoke` through the real command tree, on a temporary data dir."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.auth import TokenStore
from service.cli import app

TOKEN_RE = re.compile(r"ctw_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_create_list_revoke_then_the_token_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    created = runner.invoke(app, ["token", "create", "ci", "--scope", "read", "--scope", "export", *data])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert TOKEN_RE.fullmatch(token)  # alone on stdout, so a shell can capture it
    assert "cannot be shown again" in created.stderr
    store = TokenStore(tmp_path / "tokens.json", check_interval_s=0)  # a server, re-reading at once
    info = store.verify(token)
    assert info is not None and info.scopes == ("read", "export")

    listed = runner.invoke(app, ["token", "list", *data])
    assert listed.exit_code == 0, listed.output
    assert info.id in listed.stdout and "ci" in listed.stdout and "read,export" in listed.stdout
    secret = token.split("_", 2)[2]
    assert secret not in listed.output and secret not in (tmp_path / "tokens.json").read_text()

    revoked = runner.invoke(app, ["token", "revoke", "ci", *data])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token 'ci' (id {info.id})" in revoked.stderr
    assert store.verify(token) is None
    assert "revoked" in runner.invoke(app, ["token", "list", *data]).stdout


def test_json_outputs(runner: CliRunner, tmp_path: Path) -> None:
    data = ["-d", str(tmp_path), "--json"]
    created = runner.invoke(app, ["token", "create", "bot", "-s", "advise,read", "--expires", "30d", *data])
    assert created.exit_code == 0, created.output
    made = json.loads(created.stdout)
    assert made["name"] == "bot" and made["scopes"] == ["read", "advise"] and made["status"] == "active"
    assert made["expires_s"] == pytest.approx(made["created_s"] + 30 * 86400)
    assert TOKEN_RE.fullmatch(made["token"])

    listed = json.loads(runner.invoke(app, ["token", "list", *data]).stdout)
    assert [row["id"] for row in listed] == [made["id"]]
    assert "token" not in listed[0] and not any("secret" in key for key in listed[0])

    revoked = json.loads(runner.invoke(app, ["token", "revoke", made["id"], *data]).stdout)
    assert revoked["status"] == "revoked" and revoked["revoked_s"] is not None


def test_default_scope_is_read(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["token", "create", "viewer", "-d", str(tmp_path), "--json"])
    assert json.loads(res.stdout)["scopes"] == ["read"]


def test_unknown_scope_lists_the_valid_ones(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["token", "create", "ci", "--scope", "root", "-d", str(tmp_path)])
    assert res.exit_code == 2
    assert "unknown scope 'root': valid scopes are read, export, advise, ingest, admin" in res.stderr
    assert not (tmp_path / "tokens.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expires", "soon"], "--expires: invalid duration 'soon'"),
        (["--expires", "0s"], "--expires: duration must be positive"),
    ],
)
def test_bad_expiry(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["token", "create", "ci", *args, "-d", str(tmp_path)])
    assert res.exit_code == 2
    assert message in res.stderr


def test_bad_name(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["token", "create", "two words", "-d", str(tmp_path)])
    assert res.exit_code == 2 and "invalid token name" in res.stderr


def test_revoke_unknown_and_ambiguous(runner: CliRunner, tmp_path: Path) -> None:
    data = ["-d", str(tmp_path)]
    res = runner.invoke(app, ["token", "revoke", "nobody", *data])
    assert res.exit_code == 1 and "no token has the id or name 'nobody'" in res.stderr
    for _ in range(2):
        runner.invoke(app, ["token", "create", "ci", *data])
    res = runner.invoke(app, ["token", "revoke", "ci", *data])
    assert res.exit_code == 1 and "2 tokens are named 'ci'" in res.stderr


def test_empty_list_says_how_to_create(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["token", "list", "-d", str(tmp_path)])
    assert res.exit_code == 0 and "ctwin token create" in res.stderr
    assert json.loads(runner.invoke(app, ["token", "list", "-d", str(tmp_path), "--json"]).stdout) == []


def test_corrupt_file_names_it(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "tokens.json").write_text("{")
    res = runner.invoke(app, ["token", "list", "-d", str(tmp_path)])
    assert res.exit_code == 1
    assert str(tmp_path / "tokens.json") in res.stderr


def test_config_tokens_file_is_honoured(runner: CliRunner, tmp_path: Path) -> None:
    tokens = tmp_path / "elsewhere" / "t.json"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"auth:\n  tokens_file: {tokens}\n")
    res = runner.invoke(app, ["token", "create", "ci", "-c", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    assert TokenStore(tokens).verify(json.loads(res.stdout)["token"]) is not None


def test_list_in_a_pipe_keeps_every_row_whole(runner: CliRunner, tmp_path: Path) -> None:
    """Not a terminal (CliRunner's stdout, like `| grep`): the table is as wide as its rows, not 80 columns."""
    name = "a-rather-long-token-name-for-the-nightly-export-job-on-cluster-7"
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(app, ["token", "create", name, "--scope", "read", "--scope", "export", *data]).exit_code == 0
    listed = runner.invoke(app, ["token", "list", *data], env={"COLUMNS": ""})
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if name in line)
    assert "read,export" in row and "active" in row and "never" in row
