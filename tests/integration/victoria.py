"""The real VictoriaMetrics (Debian `victoria-metrics` 1.79) as a test server: started on a free
port with its own storage dir, killed with SIGKILL, restarted on the same dir, read back through
its export API. Recipe and read-after-write behaviour: ../shared/SERVICES.md §3a.

Flags: `-influxSkipSingleField` stores our one-field lines under the metric name itself;
`-dedup.minScrapeInterval=1ms` keeps one sample per (series, millisecond), so a batch sent again
after a failure is stored once; `-search.latencyOffset=0s` and `-search.disableCache` make rows
visible to queries right after `/internal/force_flush`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, need_binary

HINT = "apt-get install -y --no-install-recommends victoria-metrics  (or: scripts/install-system-deps.sh test)"
START_DEADLINE = 30.0

__all__ = ["VictoriaMetrics"]


class VictoriaMetrics:
    def __init__(self, storage: Path, log_path: Path) -> None:
        self.binary = need_binary("victoria-metrics", HINT)
        self.storage = storage
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VictoriaMetrics:
        argv = [
            self.binary,
            f"-storageDataPath={self.storage}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-influxSkipSingleField",
            "-dedup.minScrapeInterval=1ms",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"victoria-metrics did not answer within {START_DEADLINE} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown flush, as in a power cut or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def export(self, metric: str) -> list[dict[str, Any]]:
        """Every stored series of `metric` with its raw values and ms timestamps (after a flush)."""
        httpx.get(self.url + "/internal/force_flush", timeout=10.0).raise_for_status()
        answer = httpx.post(
            self.url + "/api/v1/export",
            data={"match[]": metric, "start": "0", "end": str(int(time.time()) + 3600)},
            timeout=30.0,
        )
        answer.raise_for_status()
        return [json.loads(line) for line in answer.text.splitlines() if line.strip()]

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
