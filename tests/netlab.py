"""Two network namespaces joined by a veth pair, each end shaped by a `tbf` qdisc: a link between
two "sites" on one machine (../shared/SERVICES.md §6; netem is not in this kernel, tbf is).

Names carry a random token, so parallel runs (other worktrees, CI) never collide; the addresses
(10.77.0.1 and .2) exist only inside the two namespaces. Everything started in a namespace is
killed and both namespaces are deleted on exit (deleting one removes the veth pair too), whatever
the test did. Needs root and iproute2: without them the test skips, and fails under
CTWIN_REQUIRE_SERVERS=1.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT, servers_required

__all__ = ["NetLab", "netlab"]

ADDR_A, ADDR_B = "10.77.0.1", "10.77.0.2"


def _need(ok: bool, why: str) -> None:
    if ok:
        return
    if servers_required():
        pytest.fail(f"{why}; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
    pytest.skip(why)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


@dataclass
class NetLab:
    a: str
    """Namespace of end A (address ADDR_A)."""
    b: str
    rate: str
    veth_a: str = ""
    veth_b: str = ""
    addr_a: str = ADDR_A
    addr_b: str = ADDR_B
    _procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def argv(self, ns: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def run(self, ns: str, argv: Sequence[str], *, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run to completion inside a namespace (from the repository root); raises on failure."""
        done = subprocess.run(
            self.argv(ns, argv), cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in {ns} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def spawn(self, ns: str, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start in a namespace; killed when the lab is torn down."""
        proc = subprocess.Popen(
            self.argv(ns, argv),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def cut(self) -> None:
        """Take both ends of the link down: packets go nowhere, as on a cut cable."""
        for ns, dev in ((self.a, self.veth_a), (self.b, self.veth_b)):
            _ip("-n", ns, "link", "set", dev, "down")

    def restore(self) -> None:
        """Bring both ends back up (addresses and the tbf shaping stay as they were)."""
        for ns, dev in ((self.a, self.veth_a), (self.b, self.veth_b)):
            _ip("-n", ns, "link", "set", dev, "up")

    def stop_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@contextmanager
def netlab(rate: str = "100mbit", burst: str = "32kb", latency: str = "50ms") -> Iterator[NetLab]:
    """Namespaces A and B, veth A <-> B, `tbf rate RATE burst BURST latency LATENCY` on both ends."""
    _need(os.geteuid() == 0, "network namespaces need root")
    _need(shutil.which("ip") is not None and shutil.which("tc") is not None, "iproute2 (ip, tc) is not installed")
    token = secrets.token_hex(3)
    veth_a, veth_b = f"ctw{token}a", f"ctw{token}b"  # at most 15 characters
    lab = NetLab(a=f"ctwin-{token}-a", b=f"ctwin-{token}-b", rate=rate, veth_a=veth_a, veth_b=veth_b)
    made: list[str] = []
    try:
        try:
            for ns in (lab.a, lab.b):
                _ip("netns", "add", ns)
                made.append(ns)
        except RuntimeError as exc:
            _need(False, f"cannot create a network namespace: {exc}")
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_a, "netns", lab.a)
        _ip("link", "set", veth_b, "netns", lab.b)
        for ns, dev, addr in ((lab.a, veth_a, lab.addr_a), (lab.b, veth_b, lab.addr_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", burst,
                "latency", latency)  # fmt: skip
        yield lab
    finally:
        lab.stop_all()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=30)
        # a pair left in this namespace by a failed move (normally gone with its namespace)
        subprocess.run(["ip", "link", "del", veth_a], capture_output=True, check=False, timeout=30)
