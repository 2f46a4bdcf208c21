"""`ctwin serve` as a user starts it, for the pages' browser tests: a subprocess with its own store
and configuration on a free port, ready once /readyz answers, its first admin token read from its
log, stopped by SIGTERM and required to exit 0."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

__all__ = ["LOCAL_AND_KTH", "Served", "served_twin"]

LOCAL_AND_KTH = """
sites:
  - name: local
    kind: edge
    collectors: [{type: node, interval: 1s}]
  - name: kth-sp2
    kind: hpc
    collectors: [{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 1s, speed: 600, start_offset: 60d}]
links:
  - {between: [local, kth-sp2], bandwidth_gbps: 10, latency_ms: 30}
"""
"""This host and KTH-SP2 replayed 600 times faster than it ran, joined by a 10 Gb/s link."""


@dataclass(frozen=True)
class Served:
    url: str
    """The base URL, ending in "/"."""
    token: str
    """The admin token `ctwin serve` printed on its first start."""
    work: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def served_twin(config: str, work: Path, *, settle_s: float = 2.5, ready_timeout_s: float = 60) -> Iterator[Served]:
    """Serve `config` (YAML text) from `work`; `settle_s` after ready lets the collectors run twice
    (a CPU busy share needs two readings)."""
    path = work / "ctwin.yaml"
    path.write_text(config)
    port = free_port()
    log_path = work / "serve.log"
    log = log_path.open("w")
    command = ["serve", "-c", str(path), "-d", str(work / "data"), "--port", str(port)]
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", *command], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"ctwin serve exited: {log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ctwin serve not ready after {ready_timeout_s} s: {log_path.read_text()}")
            time.sleep(0.1)
        time.sleep(settle_s)
        lines = log_path.read_text().splitlines()
        token = next(lines[i + 1].strip() for i, x in enumerate(lines) if "first API token" in x)
        yield Served(url + "/", token, work)
    finally:
        proc.terminate()
        code = proc.wait(30)
        log.close()
        assert code == 0, log_path.read_text()
