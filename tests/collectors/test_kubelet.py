"""The kubelet collector on a real `/stats/summary` (minikube, via newrelic/nri-kubernetes;
tests/fixtures/kubelet/PROVENANCE.md): every value asserted below is read off that file, scaled
as the catalog says (ns → s, nanocores → cores). The URL path is served by a local HTTP server
that checks the bearer token, as a kubelet does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from collectors import registry
from collectors.base import CollectorError, Recorder
from collectors.kubelet import KubeletCollector, KubeletConfig, summary_url
from telemetry.catalog import catalog
from tests.conftest import FIXTURES

SUMMARY = FIXTURES / "kubelet" / "kubelet_stats_summary_payload.json"
KSM = {"namespace": "kube-system", "pod": "kube-state-metrics-57f4659995-6n2qq"}


def _ns(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()) * 1_000_000_000


@pytest.fixture(scope="module")
def rec() -> Recorder:
    recorder = Recorder()  # strict: every label is checked against the catalog
    KubeletCollector(KubeletConfig(path=SUMMARY)).gather(recorder)
    return recorder


def _one(rec: Recorder, metric: str, **labels: str) -> tuple[float, int]:
    found = [s for s in rec.samples if s.metric == metric and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (metric, labels, found)
    return found[0].value, found[0].ts_ns


def test_the_node(rec: Recorder) -> None:
    assert _one(rec, "node_cpu_usage_seconds_total", host="minikube") == (
        22332102208229e-9,
        _ns("2018-03-02T13:42:44Z"),
    )
    assert rec.get("node_cpu_usage_cores", host="minikube") == pytest.approx(0.228759290)
    assert rec.get("node_memory_working_set_bytes") == 1305468928
    assert rec.get("node_memory_usage_bytes") == 1843650560
    assert rec.get("node_memory_rss_bytes") == 660684800
    node_net = {s.labels["interface"]: s.value for s in rec.samples
                if s.metric == "container_network_receive_errors_total" and "pod" not in s.labels}  # fmt: skip
    assert node_net == {"eth0": 0, "eth1": 21, "sit0": 0}
    node_tx = [s.value for s in rec.samples
               if s.metric == "container_network_transmit_bytes_total" and "pod" not in s.labels
               and s.labels["interface"] == "eth1"]  # fmt: skip
    assert node_tx == [302062791]
    assert rec.get("node_fs_capacity_bytes", fs="nodefs") == 17293533184
    assert rec.get("node_fs_available_bytes", fs="nodefs") == 14924988416
    assert rec.get("node_fs_used_bytes", fs="nodefs") == 1355673600
    assert rec.get("node_fs_used_bytes", fs="imagefs") == 969241979
    assert rec.get("node_fs_inodes", fs="nodefs") == 9732096
    assert rec.get("node_fs_inodes_free", fs="imagefs") == 9713372
    assert rec.get("node_fs_inodes_used", fs="nodefs") == 18724
    assert {s.labels["host"] for s in rec.samples} == {"minikube"}


def test_pods_and_containers(rec: Recorder) -> None:
    assert _one(rec, "pod_cpu_usage_seconds_total", **KSM) == (183932163412e-9, _ns("2018-03-02T13:42:40Z"))
    assert rec.get("pod_cpu_usage_cores", **KSM) == pytest.approx(0.0013931)
    assert rec.get("pod_memory_working_set_bytes", **KSM) == 53444608
    assert rec.get("pod_memory_usage_bytes", **KSM) == 54046720
    assert rec.get("pod_memory_rss_bytes", **KSM) == 20557824
    assert rec.get("container_network_receive_bytes_total", interface="eth0", **KSM) == 32575098
    assert rec.get("container_network_transmit_bytes_total", interface="eth0", **KSM) == 27840584
    assert rec.get("pod_ephemeral_storage_used_bytes", **KSM) == 7823360
    assert rec.get("pod_ephemeral_storage_capacity_bytes", **KSM) == 17293533184
    assert rec.get("pod_ephemeral_storage_inodes_used", **KSM) == 13

    ksm = {**KSM, "container": "kube-state-metrics"}
    value, ts = _one(rec, "container_cpu_usage_seconds_total", **ksm)  # the cgroup collector's family, reused
    assert (value, ts) == (44403435220e-9, _ns("2018-03-02T13:42:55Z"))
    assert rec.get("container_cpu_usage_cores", **ksm) == pytest.approx(0.000941138)
    assert rec.get("container_memory_working_set_bytes", **ksm) == 15110144
    assert rec.get("container_memory_usage_bytes", **ksm) == 15568896
    assert rec.get("container_memory_rss_bytes", **ksm) == 14671872
    assert rec.get("container_fs_usage_bytes", fs="rootfs", **ksm) == 28672
    assert rec.get("container_fs_usage_bytes", fs="logs", **ksm) == 5763072
    assert rec.get("container_fs_limit_bytes", fs="rootfs", **ksm) == 17293533184
    assert rec.get("container_fs_inodes_used", fs="rootfs", **ksm) == 7
    assert rec.get("container_fs_inodes", fs="logs", **ksm) == 9732096
    assert rec.get("container_fs_inodes_free", fs="logs", **ksm) == 9713372
    assert rec.get("container_start_time_seconds", **ksm) == _ns("2018-03-01T14:30:29Z") / 1e9
    dns = {"namespace": "kube-system", "pod": "kube-dns-54cccfbdf8-dznm7", "container": "dnsmasq"}
    assert rec.get("container_memory_working_set_bytes", **dns) == 5783552


def test_counts_and_catalog(rec: Recorder) -> None:
    pods = {s.labels["pod"] for s in rec.samples if s.metric == "pod_memory_working_set_bytes"}
    containers = {(s.labels["pod"], s.labels["container"]) for s in rec.samples
                  if s.metric == "container_memory_working_set_bytes"}  # fmt: skip
    assert len(pods) == 8 and len(containers) == 12
    # 3 node interfaces + per pod: 2 or 3 interfaces (2 pods have eth1) → 3 + 6*2 + 2*3 = 21
    assert len([s for s in rec.samples if s.metric == "container_network_receive_bytes_total"]) == 21
    assert all(s.metric in catalog for s in rec.samples)
    assert registry.get("kubelet") is KubeletCollector


class _Kubelet(BaseHTTPRequestHandler):
    token = "kubelet-token"
    body = SUMMARY.read_bytes()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"Unauthorized")
            return
        ok = self.path in ("/stats/summary", "/api/v1/nodes/minikube/proxy/stats/summary")
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body if ok else b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kubelet_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Kubelet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_over_http_with_a_bearer_token(kubelet_url: str, tmp_path: Path, rec: Recorder) -> None:
    token = tmp_path / "token"
    token.write_text("kubelet-token\n")
    direct, proxied = Recorder(), Recorder()
    KubeletCollector(KubeletConfig(url=kubelet_url + "/stats/summary", token_file=token)).gather(direct)
    KubeletCollector(KubeletConfig(url=kubelet_url, nodes=["minikube"], token_file=token)).gather(proxied)
    assert direct.samples == proxied.samples
    assert len(direct.samples) == len(rec.samples)
    token.write_text("wrong")
    with pytest.raises(CollectorError, match="HTTP 401"):
        KubeletCollector(KubeletConfig(url=kubelet_url + "/stats/summary", token_file=token)).gather(Recorder())
    token.write_text("kubelet-token")
    with pytest.raises(CollectorError, match="nodes/nowhere/proxy/stats/summary: HTTP 404"):
        KubeletCollector(KubeletConfig(url=kubelet_url, nodes=["minikube", "nowhere"], token_file=token)).gather(
            partial := Recorder()
        )
    assert len(partial.samples) == len(rec.samples)  # the node that answered is kept


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of url and path"):
        KubeletConfig()
    with pytest.raises(ValidationError, match="exactly one of url and path"):
        KubeletConfig(url="https://n:10250/stats/summary", path=SUMMARY)
    with pytest.raises(ValidationError, match="nodes are read through the API server"):
        KubeletConfig(path=SUMMARY, nodes=["a"])
    with pytest.raises(ValidationError, match="Extra inputs"):
        KubeletConfig.model_validate({"path": str(SUMMARY), "tokenfile": "x"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pods": []}))
    with pytest.raises(CollectorError, match="no `node` object"):
        KubeletCollector(KubeletConfig(path=bad)).gather(Recorder())
    bad.write_text("{")
    with pytest.raises(CollectorError, match="not JSON"):
        KubeletCollector(KubeletConfig(path=bad)).gather(Recorder())
    assert KubeletCollector(KubeletConfig(path=tmp_path / "none.json")).availability() == (
        f"{tmp_path / 'none.json'}: no such file"
    )
    assert summary_url("https://api:6443/", "n1") == "https://api:6443/api/v1/nodes/n1/proxy/stats/summary"
