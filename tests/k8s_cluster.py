"""A real Kubernetes control plane for the scheduler-hook tests: etcd 3.4 + kube-apiserver and
kube-scheduler v1.20.2 (scripts/install-k8s-control-plane.sh builds them from Debian's source
package; ../shared/KUBERNETES.md), on free ports in a temporary directory.

- `k8s_control_plane` (session fixture): etcd and the apiserver, started once (4-8 s), stopped at
  the end by PID. No controller-manager and no kubelet: nodes are plain Node objects with the
  status they were created with (admission plugins ServiceAccount and TaintNodesByCondition are
  off, so they stay Ready and untainted), and pods are bound by the scheduler, never run.
- `ControlPlane.scheduler(extenders)`: a kube-scheduler with that KubeSchedulerConfiguration's
  extenders, as a context manager (it starts in about a second; a test that needs another
  extender configuration starts another one).
- `ControlPlane.namespace()`: a fresh namespace per test, so tests do not see each other's pods.

The binaries come from $K8S_BIN, else the install script's default prefix. Without them a test
skips with the command that builds them; under CTWIN_REQUIRE_SERVERS=1 (CI) it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from collectors.kube_api import KubeClient, KubeError
from tests.conftest import free_port, servers_required

__all__ = ["ControlPlane", "k8s_control_plane", "node_object", "until"]

DEFAULT_BIN = Path.home() / ".cache" / "k8s-control-plane" / "v1.20.2" / "bin"
HINT = "scripts/install-k8s-control-plane.sh (builds kube-apiserver and kube-scheduler v1.20.2, ~4 min)"
ADMIN_TOKEN = "admin-token-" + uuid.uuid4().hex
SCHEDULER_TOKEN = "scheduler-token-" + uuid.uuid4().hex


def _need(condition: bool, message: str) -> None:
    if condition:
        return
    if servers_required():
        pytest.fail(message + "; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
    pytest.skip(message)


def _binaries() -> tuple[str, str, str]:
    bin_dir = Path(os.environ.get("K8S_BIN", DEFAULT_BIN))
    apiserver, scheduler = bin_dir / "kube-apiserver", bin_dir / "kube-scheduler"
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    _need(apiserver.exists() and scheduler.exists(), f"no kube-apiserver/kube-scheduler in {bin_dir}: run {HINT}")
    _need(os.access(etcd, os.X_OK), f"etcd not installed: run {HINT} (it installs Debian's etcd-server)")
    _need(shutil.which("openssl") is not None, "openssl not installed (apt-get install openssl)")
    return str(etcd), str(apiserver), str(scheduler)


def until(what: str, check: Any, timeout_s: float = 20) -> Any:
    """`check()`'s first truthy value, polled every 50 ms; an assertion error naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def node_object(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    operating_system: str = "linux",
    gpus: int = 0,
) -> dict[str, Any]:
    """A Node as a kubelet (or interLink's virtual kubelet) would register it: Ready, with capacity."""
    capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    stamp = "2026-01-01T00:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": [dict(t) for t in taints]} if taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "test node, no kubelet",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
            "nodeInfo": {
                "operatingSystem": operating_system,
                "architecture": "amd64",
                "kubeletVersion": "v1.20.2",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "",
                "osImage": "",
                "containerRuntimeVersion": "",
                "kubeProxyVersion": "",
            },
        },
    }


@dataclass
class ControlPlane:
    workdir: Path
    url: str
    ca_file: Path
    scheduler_bin: str
    admin_token: str = ADMIN_TOKEN
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self) -> KubeClient:
        return KubeClient(self.url, token=self.admin_token, ca_file=self.ca_file, timeout_s=10)

    def kubeconfig(self, token: str | None = None, name: str = "admin") -> Path:
        path = self.workdir / f"{name}.kubeconfig"
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": name, "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": name}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------ objects
    @contextlib.contextmanager
    def namespace(self) -> Iterator[str]:
        name = "t-" + uuid.uuid4().hex[:10]
        with self.client() as kube:
            kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        try:
            yield name
        finally:
            with self.client() as kube, contextlib.suppress(KubeError):
                kube.delete(f"/api/v1/namespaces/{name}")

    @contextlib.contextmanager
    def nodes(self, *nodes: Mapping[str, Any]) -> Iterator[list[str]]:
        """Create the Node objects for the test; delete them after (nodes are cluster-wide)."""
        names = [n["metadata"]["name"] for n in nodes]
        with self.client() as kube:
            for node in nodes:
                kube.create("/api/v1/nodes", node)
        try:
            yield names
        finally:
            with self.client() as kube:
                for name in names:
                    with contextlib.suppress(KubeError):
                        kube.delete(f"/api/v1/nodes/{name}")

    def wait_bound(self, namespace: str, pod: str, timeout_s: float = 30.0) -> str | None:
        """The node the scheduler bound the pod to, or None if it is still unbound at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self.client() as kube:
            while time.monotonic() < deadline:
                node = kube.get(f"/api/v1/namespaces/{namespace}/pods/{pod}").get("spec", {}).get("nodeName")
                if node:
                    return str(node)
                time.sleep(0.1)
        return None

    def events(self, namespace: str, pod: str) -> list[str]:
        with self.client() as kube:
            items = kube.list(f"/api/v1/namespaces/{namespace}/events", field_selector=f"involvedObject.name={pod}")[
                "items"
            ]
        return [f"{e.get('reason')}: {e.get('message')}" for e in items]

    # ------------------------------------------------------------------ the scheduler
    @contextlib.contextmanager
    def scheduler(self, extenders: Sequence[Mapping[str, Any]] = ()) -> Iterator[Path]:
        """A kube-scheduler with these `extenders` entries (KubeSchedulerConfiguration v1beta1, as
        1.20 reads it); yields its log file."""
        tag = uuid.uuid4().hex[:6]
        config = self.workdir / f"scheduler-{tag}.yaml"
        kubeconfig = self.kubeconfig(SCHEDULER_TOKEN, "scheduler")
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1beta1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    "leaderElection": {"leaderElect": False},
                    "percentageOfNodesToScore": 100,
                    "extenders": [dict(e) for e in extenders],
                }
            )
        )
        with self._scheduler(config, kubeconfig) as log:
            yield log

    @contextlib.contextmanager
    def scheduler_from_file(self, config: Path) -> Iterator[Path]:
        """A kube-scheduler reading a KubeSchedulerConfiguration file (e.g. the one in deploy/);
        its clientConnection.kubeconfig is pointed at this control plane."""
        kubeconfig = self.kubeconfig(SCHEDULER_TOKEN, "scheduler")
        doc = yaml.safe_load(config.read_text())
        doc["clientConnection"] = {"kubeconfig": str(kubeconfig)}
        doc["leaderElection"] = {"leaderElect": False}
        patched = self.workdir / f"scheduler-{uuid.uuid4().hex[:6]}-{config.name}"
        patched.write_text(yaml.safe_dump(doc))
        with self._scheduler(patched, kubeconfig) as log:
            yield log

    @contextlib.contextmanager
    def _scheduler(self, config: Path, kubeconfig: Path) -> Iterator[Path]:
        port = free_port()
        log = config.with_suffix(".log")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [self.scheduler_bin, f"--config={config}", f"--authentication-kubeconfig={kubeconfig}",
                 f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
                 f"--secure-port={port}", "--port=0", "-v=2"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            _wait(lambda: httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=1).status_code == 200,
                  30, proc, log)  # fmt: skip
            yield log
        finally:
            _stop(proc)


def _wait(ready: Any, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    name = Path(str(proc.args[0] if isinstance(proc.args, list) else proc.args)).name
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError, OSError):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _certificates(pki: Path) -> None:
    pki.mkdir(parents=True)
    (pki / "san.cnf").write_text(
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    steps = [
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=ctwin-test-ca",
        "openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver",
        "openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2"
        " -extfile san.cnf -extensions ext",
        "openssl genrsa -out sa.key 2048",
        "openssl rsa -in sa.key -pubout -out sa.pub",
    ]
    for step in steps:
        subprocess.run(step.split(), cwd=pki, check=True, capture_output=True)
    (pki / "tokens.csv").write_text(
        f'{ADMIN_TOKEN},admin,uid-admin,"system:masters"\n{SCHEDULER_TOKEN},system:kube-scheduler,uid-sched\n'
    )


@pytest.fixture(scope="session")
def k8s_control_plane() -> Iterator[ControlPlane]:
    etcd, apiserver, scheduler = _binaries()
    workdir = Path(tempfile.mkdtemp(prefix="ctwin-k8s-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _certificates(workdir / "pki")
        pki = workdir / "pki"
        client_port, peer_port, metrics_port, api_port = (free_port() for _ in range(4))
        etcd_log = workdir / "etcd.log"
        with etcd_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [etcd, "--name", "t", "--data-dir", str(workdir / "etcd"),
                 "--listen-client-urls", f"http://127.0.0.1:{client_port}",
                 "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-cluster", f"t=http://127.0.0.1:{peer_port}",
                 "--listen-metrics-urls", f"http://127.0.0.1:{metrics_port}"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
        _wait(lambda: httpx.get(f"http://127.0.0.1:{client_port}/health", timeout=1).status_code == 200,
              30, procs[0], etcd_log)  # fmt: skip
        api_log = workdir / "apiserver.log"
        with api_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [apiserver, f"--etcd-servers=http://127.0.0.1:{client_port}",
                 "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1", f"--secure-port={api_port}",
                 f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                 f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={pki / 'tokens.csv'}",
                 "--service-account-issuer=https://kubernetes.default.svc",
                 f"--service-account-key-file={pki / 'sa.pub'}",
                 f"--service-account-signing-key-file={pki / 'sa.key'}",
                 "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
                 "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition", "--allow-privileged=true",
                 f"--cert-dir={workdir / 'certs'}", "--enable-priority-and-fairness=false", "--profiling=false"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
        url = f"https://127.0.0.1:{api_port}"
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        _wait(lambda: httpx.get(f"{url}/readyz", headers=headers, verify=str(pki / "ca.crt"), timeout=2).status_code
              == 200, 90, procs[1], api_log)  # fmt: skip
        yield ControlPlane(workdir, url, pki / "ca.crt", scheduler, procs=procs)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
