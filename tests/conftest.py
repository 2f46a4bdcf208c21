"""Shared test plumbing.

Integration tests talk to real servers started by the test harness. On a developer's machine a
missing server binary skips the test; with CTWIN_REQUIRE_SERVERS=1 (set by .ci/run) it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"


def servers_required() -> bool:
    return os.environ.get("CTWIN_REQUIRE_SERVERS", "") not in ("", "0", "false")


def need_binary(name: str, hint: str) -> str:
    """Path of a server binary, or skip (fail under CTWIN_REQUIRE_SERVERS) with the install hint."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    msg = f"{name} not installed ({hint})"
    if servers_required():
        pytest.fail(msg + "; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
