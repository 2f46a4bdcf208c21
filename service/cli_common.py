"""What every `ctwin` command shares: the consoles, the --config/--data-dir/--json options, and how
a command fails, loads its config and prints JSON. One module, so the sub-apps (tokens, models)
need not import service.cli, which imports them."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape

from service.config import ConfigError, LoadedConfig, ServeConfig, load_config
from telemetry.redact import install_log_redaction

__all__ = [
    "ConfigOpt",
    "DataDirOpt",
    "JsonOpt",
    "api_token",
    "emit_json",
    "err",
    "fail",
    "load",
    "out",
    "print_table",
    "service_url",
    "stop_on_signals",
]

out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (default: built-in)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", "-d", help="Where the store lives (overrides config)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print the reason (as text: brackets in it are not markup) and return the exit to raise."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def load(config: Path | None) -> LoadedConfig:
    """The config, or every problem with its file and line, then exit 2."""
    try:
        return load_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(problem.render(exc.source), highlight=False, markup=False)
        raise fail(f"{len(exc.problems)} problem(s) in the config; fix them and run `ctwin config check`") from None


def stop_on_signals() -> threading.Event:
    """Log to stderr (credentials masked) and return an event SIGTERM / SIGINT set: a long-running
    command waits on it, then stops cleanly. Installed first, so a stop asked for while starting is kept."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


_UNBOUNDED = 100_000
"""Wider than any table a command prints: the room a table is measured in when nothing limits it."""


def print_table(table: RenderableType) -> None:
    """A table on stdout: at the terminal's width, or, when stdout is a pipe or a file (which has
    no width; rich would assume 80 columns and fold every cell to fit), at the table's own natural
    width, so that no cell is cut short or wrapped and `grep`/`> file` see whole rows."""
    if out.is_terminal:
        out.print(table)
        return
    natural = out.measure(table, options=out.options.update_width(_UNBOUNDED)).maximum
    Console(file=out.file, width=max(natural, 1), color_system=None).print(table)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def service_url(serve: ServeConfig) -> str:
    """The running service as a client on this machine reaches it (a wildcard bind → loopback)."""
    host = "127.0.0.1" if serve.listen in ("0.0.0.0", "::") else serve.listen
    return f"http://{'[' + host + ']' if ':' in host else host}:{serve.port}"


def api_token(
    token: str | None, token_file: Path | None, *, options: str = "--token-file", scope: str = "advise"
) -> str:
    """An API token for a client command: `token`, else CTWIN_TOKEN, else `token_file`'s content.
    ValueError with the fix (`options`: where the command takes a file; `scope`: the one it needs)
    when there is none."""
    secret = token or os.environ.get("CTWIN_TOKEN")
    if not secret and token_file is not None:
        try:
            secret = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    if not secret:
        raise ValueError(
            f"no API token: pass --token, set CTWIN_TOKEN, or {options}"
            f" (create one with `ctwin token create NAME --scope {scope}`)"
        )
    return secret
