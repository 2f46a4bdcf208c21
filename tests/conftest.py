"""Shared test plumbing.

Integration tests talk to real servers started by the test harness. On a developer's machine a
missing server binary skips the test; with CTWIN_REQUIRE_SERVERS=1 (set by .ci/run) it fails.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` (e.g. "16m") mounted at `path`, to fill up for disk-full tests.
    Needs root (the tests run as root here); where it cannot be mounted the test skips, and fails
    under CTWIN_REQUIRE_SERVERS."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        msg = f"cannot mount a tmpfs at {path}: {mounted.stderr.strip() or mounted.returncode} (needs root)"
        if servers_required():
            pytest.fail(msg + "; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
        pytest.skip(msg)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill_disk(path: Path) -> int:
    """Write zeros into `path` until the filesystem holding it is full; returns the bytes written."""
    chunk = b"\0" * (1 << 16)
    written = 0
    with path.open("wb", buffering=0) as fh:
        try:
            while True:
                written += fh.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:  # full, as wanted
                raise
        for size in (4096, 512, 1):  # the last blocks too
            try:
                while True:
                    written += fh.write(b"\0" * size)
            except OSError:
                pass
    return written
