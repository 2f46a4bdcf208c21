"""Secrets a collector needs (a password, a bearer token), read from a file or an environment
variable instead of the config file.

Why not inline in the YAML: a config is copied, committed, echoed by `ctwin config check` and read
by people who should not hold the exporter's password. A file (mode 0600, a Kubernetes or systemd
credential) or a variable keeps the secret where secret stores put it. Files are re-read on every
use, so rotating one needs no restart. Errors name the file or the variable, never the value.
"""

from __future__ import annotations

import os
from pathlib import Path

from collectors.base import CollectorError

__all__ = ["ENV_NAME", "read_secret"]

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def read_secret(*, file: Path | None = None, env: str | None = None, what: str) -> str:
    """The secret from `file` (stripped of surrounding blanks) or else the variable `env`.

    `what` names it in errors ("basic_auth.password_file"). CollectorError when it is missing,
    unreadable or empty: a collector that cannot authenticate fails visibly, never anonymously."""
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise CollectorError(f"{what} {file}: cannot read: {reason}") from None
        if not value:
            raise CollectorError(f"{what} {file}: empty")
        return value
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise CollectorError(f"{what}: environment variable {env} is not set or empty")
        return value
    raise CollectorError(f"{what}: no file or environment variable given")
