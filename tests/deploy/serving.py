"""`ctwin serve` as a separate process for the deploy tests: started as a unit, a venv or a pod
would start it, ready once /healthz answers, stopped by SIGTERM (its documented stop signal)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["Served", "serving"]


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    stdout: Path

    def exit_code(self) -> int | None:
        return self.proc.returncode


@contextlib.contextmanager
def serving(
    command: list[str],
    *,
    port: int,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 120,
    stop_timeout_s: float = 30,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Iterator[Served]:
    """Run `command` (a `ctwin serve ...` on 127.0.0.1:`port`) until the block ends; its exit code
    is in `.exit_code()` afterwards (SIGKILL after `stop_timeout_s` gives a negative one)."""
    log, stdout = cwd / "serve.log", cwd / "serve.stdout"
    with log.open("wb") as err, stdout.open("wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env) if env is not None else None, stdout=out,
                                stderr=err, start_new_session=True)  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}", proc, log, stdout)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            assert proc.poll() is None, f"{command[:2]} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no /healthz after {ready_timeout_s} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, stop_signal)
            try:
                proc.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
