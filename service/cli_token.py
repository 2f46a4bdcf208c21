"""`ctwin token create|list|revoke`: manage the API tokens a running `ctwin serve` accepts.

Changes land in the tokens file (`auth.tokens_file`, default <data_dir>/tokens.json), which the
server re-reads within a second, so no restart is needed.

The option types and `_fail`/`_load`/`_emit_json` mirror service/cli.py; they are repeated rather
than imported because service.cli imports this module to register it.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from service.auth import SCOPES, AuthError, TokenInfo, TokenSpecError, TokenStore
from service.cli_common import ConfigOpt, DataDirOpt, JsonOpt, err, print_table
from service.cli_common import emit_json as _emit_json
from service.cli_common import fail as _fail
from service.cli_common import load as _load
from telemetry.schema import parse_duration

__all__ = ["token_app"]

token_app = typer.Typer(help="Create, list and revoke API tokens (stored hashed).", no_args_is_help=True)


def _store(config: Path | None, data_dir: Path | None) -> TokenStore:
    loaded = _load(config)
    try:
        return TokenStore(loaded.tokens_path(data_dir))
    except AuthError as exc:
        raise _fail(str(exc), 1) from None


def _when(seconds: float | None) -> str:
    return "" if seconds is None else datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _public(info: TokenInfo, now_s: float) -> dict[str, Any]:
    return {**info.model_dump(mode="json"), "status": info.status(now_s)}


@token_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A label for whoever or whatever uses the token")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help=f"One of {', '.join(SCOPES)}; repeatable or comma-separated"),
    ] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Lifetime such as 12h, 30d (default: never)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token (default scope: read). The token is printed once and cannot be shown again."""
    scopes = [s.strip() for item in scope or ["read"] for s in item.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise _fail(f"unknown scope {', '.join(map(repr, unknown)) or '(none)'}: valid scopes are {', '.join(SCOPES)}")
    try:
        expires_in_s = parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        raise _fail(f"--expires: {exc}") from None
    store = _store(config, data_dir)
    try:
        info, token = store.create(name, scopes, expires_in_s)
    except TokenSpecError as exc:
        raise _fail(str(exc)) from None
    except AuthError as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        _emit_json({**_public(info, time.time()), "token": token})
        return
    expiry = f"expires {_when(info.expires_s)}" if info.expires_s is not None else "never expires"
    err.print(
        f"created token {info.name!r} (id {info.id}, scopes: {', '.join(info.scopes)}, {expiry}).\n"
        "Store it now: it cannot be shown again. Send it as `Authorization: Bearer <token>` "
        "or paste it at /login.",
        highlight=False,
        markup=False,
    )
    sys.stdout.write(token + "\n")  # alone on stdout, so `TOKEN=$(ctwin token create ...)` works


@token_app.command("list")
def list_tokens(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """List tokens (never their secrets), including revoked and expired ones."""
    store = _store(config, data_dir)
    try:
        tokens = store.list()
    except AuthError as exc:
        raise _fail(str(exc), 1) from None
    now = time.time()
    if as_json:
        _emit_json([_public(info, now) for info in tokens])
        return
    if not tokens:
        err.print(f"no tokens in {store.path}; create one with `ctwin token create NAME --scope read`", markup=False)
        return
    table = Table("id", "name", "scopes", "created", "expires", "revoked", "status")
    for info in tokens:
        status = info.status(now)
        table.add_row(
            info.id,
            info.name,
            ",".join(info.scopes),
            _when(info.created_s),
            _when(info.expires_s) or "never",
            _when(info.revoked_s),
            status if status == "active" else f"[yellow]{status}[/yellow]",
        )
    print_table(table)


@token_app.command("revoke")
def revoke(
    id_or_name: Annotated[str, typer.Argument(help="The token's id, or its name if only one live token has it")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token; a running server refuses it within a second."""
    store = _store(config, data_dir)
    try:
        info = store.revoke(id_or_name)
    except AuthError as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        _emit_json(_public(info, time.time()))
    else:
        err.print(f"revoked token {info.name!r} (id {info.id})", highlight=False, markup=False)
