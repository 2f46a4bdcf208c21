"""How the Slurm collector reaches Slurm: the `--json` commands or slurmrestd, behind one interface.

Both transports answer `requests()` (what to fetch, each named by the source an error message will
quote) and `fetch(kind)` (the raw JSON bytes, or CollectorError naming the source). Every call is
bounded: commands run in their own session and the whole process group is killed at the timeout
(a down slurmctld makes squeue hang for minutes; over ssh the remote side must die too), and HTTP
requests carry a timeout. The command runner and the httpx client are seams: tests inject a fake
runner serving real captured JSON and an httpx.MockTransport.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from collectors.base import CollectorError
from telemetry.redact import redact

__all__ = [
    "KINDS",
    "CliTransport",
    "CommandResult",
    "CommandRunner",
    "RestTransport",
    "Transport",
    "run_command",
]

KINDS = ("jobs", "nodes", "partitions", "accounting")


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    stdout: bytes
    stderr: bytes


CommandRunner = Callable[[Sequence[str], float, Mapping[str, str] | None], CommandResult]
"""(argv, timeout_s, extra environment) → result; raises TimeoutError on timeout, OSError if it
cannot start the command."""


def run_command(argv: Sequence[str], timeout_s: float, env: Mapping[str, str] | None = None) -> CommandResult:
    """The default runner: a subprocess in a new session, killed with its whole group on timeout."""
    full_env = {**os.environ, **env} if env else None
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"no answer within {timeout_s:g}s") from None
    return CommandResult(proc.returncode, out, err)


class Transport(Protocol):
    def requests(self) -> dict[str, str]:
        """kind ("jobs", "nodes", "partitions", "accounting") → source name, for this cycle."""
        ...

    def fetch(self, kind: str) -> bytes: ...

    def close(self) -> None: ...


def _clip(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CliTransport:
    """`squeue --json`, `sinfo -N --json`, `sacct --json` through a runner, optionally via a prefix.

    With a `command_prefix` (e.g. ["ssh", "login1"]) the SLURM_CONF setting travels as
    `env SLURM_CONF=...` inside the command, since a local environment variable would not cross ssh.
    """

    def __init__(
        self,
        *,
        prefix: Sequence[str],
        timeout_s: float,
        slurm_conf: str | None,
        accounting_window_s: float | None,
        runner: CommandRunner,
    ) -> None:
        self.prefix = list(prefix)
        self.timeout_s = timeout_s
        self.slurm_conf = slurm_conf
        self.window_s = accounting_window_s
        self.runner = runner
        self._argv: dict[str, list[str]] = {
            "jobs": ["squeue", "--json"],
            "nodes": ["sinfo", "-N", "--json"],  # -N: one entry per node from data_parser v0.0.39 on
        }
        if self.window_s is not None:
            # -X: allocations only (no steps); -a: every user; relative start avoids clock/TZ issues
            self._argv["accounting"] = ["sacct", "--json", "-X", "-a", "-S", f"now-{int(self.window_s)}seconds"]

    def _command(self, kind: str) -> list[str]:
        argv = self._argv[kind]
        if self.prefix and self.slurm_conf:
            return [*self.prefix, "env", f"SLURM_CONF={self.slurm_conf}", *argv]
        return [*self.prefix, *argv]

    def requests(self) -> dict[str, str]:
        return {kind: " ".join(self._command(kind)) for kind in self._argv}

    def fetch(self, kind: str) -> bytes:
        argv = self._command(kind)
        source = " ".join(argv)
        env = {"SLURM_CONF": self.slurm_conf} if self.slurm_conf and not self.prefix else None
        try:
            result = self.runner(argv, self.timeout_s, env)
        except TimeoutError:
            raise CollectorError(
                f"{source}: no answer within {self.timeout_s:g}s, killed (is slurmctld/slurmdbd up?)"
            ) from None
        except OSError as exc:
            raise CollectorError(f"{source}: cannot run: {exc}") from None
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip() or result.stdout.decode(errors="replace")
            raise CollectorError(f"{source}: exit status {result.returncode}: {_clip(said) or '(no output)'}")
        return result.stdout

    def close(self) -> None:
        pass


def read_token(token: str | None, token_file: Path | None) -> str:
    """The JWT, re-read from the file on every call so rotation needs no restart.

    The file may hold the bare token or `scontrol token`'s own `SLURM_JWT=<token>` line.
    """
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CollectorError(f"slurmrestd token_file {token_file}: {exc.strerror or exc}") from None
        text = text.removeprefix("SLURM_JWT=").strip()
        if not text:
            raise CollectorError(f"slurmrestd token_file {token_file}: empty")
        return text
    if not token:
        raise CollectorError("slurmrestd: no token configured")
    return token


class RestTransport:
    """slurmrestd over HTTP with a JWT (`X-SLURM-USER-NAME` / `X-SLURM-USER-TOKEN`)."""

    def __init__(
        self,
        *,
        url: str,
        api_version: str,
        user: str,
        token: str | None,
        token_file: Path | None,
        timeout_s: float,
        verify_tls: bool,
        accounting_window_s: float | None,
        client: httpx.Client | None,
    ) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.token = token
        self.token_file = token_file
        self.timeout_s = timeout_s
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=timeout_s, verify=verify_tls)
        v = api_version
        self._paths = {
            "jobs": f"/slurm/{v}/jobs",
            "nodes": f"/slurm/{v}/nodes",
            "partitions": f"/slurm/{v}/partitions",
        }
        if accounting_window_s is not None:
            # start_time (like sacct -S) with a relative time: ISO dates came back empty on 22.05
            self._paths["accounting"] = (
                f"/slurmdb/{v}/jobs?start_time=now-{int(accounting_window_s)}seconds&skip_steps=true"
            )

    def requests(self) -> dict[str, str]:
        return {kind: f"slurmrestd GET {redact(self.url + path)}" for kind, path in self._paths.items()}

    def fetch(self, kind: str) -> bytes:
        url = self.url + self._paths[kind]
        source = f"slurmrestd GET {redact(url)}"  # error messages never carry the URL's credentials
        headers = {"X-SLURM-USER-NAME": self.user, "X-SLURM-USER-TOKEN": read_token(self.token, self.token_file)}
        try:
            response = self.client.get(url, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise CollectorError(f"{source}: no answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise CollectorError(f"{source}: {type(exc).__name__}: {redact(exc)}") from None
        if response.status_code == 401:
            raise CollectorError(
                f"{source}: HTTP 401 Unauthorized: slurmrestd rejected the token of user {self.user!r} "
                f"(expired or wrong key? {_slurm_said(response)})"
            )
        if response.status_code != 200:
            raise CollectorError(f"{source}: HTTP {response.status_code}: {_slurm_said(response)}")
        return response.content

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def _slurm_said(response: httpx.Response) -> str:
    """The error slurmrestd put in its body (JSON `errors`), else the start of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _clip(response.text, 200) or "empty body"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        parts = [str(e.get("description") or e.get("error") or e) if isinstance(e, dict) else str(e) for e in errors]
        return _clip("; ".join(parts), 300)
    return _clip(response.text, 200) or "empty body"
