"""GPU → pod attribution through the kubelet's pod-resources API.

No kubelet can run here, so what is tested is: our hand decoder against responses encoded by
Google's protobuf runtime from the message shapes of k8s.io/kubelet/pkg/apis/podresources/v1/
api.proto (including fields we skip: cpu_ids, memory, topology), and the grpcio call over a real
unix socket to a grpcio server that serves `/v1.PodResourcesLister/List` with those bytes. The
GPU side is the real H100 capture replayed through nvidia-smi's command line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from collectors.base import CollectorError, Recorder
from collectors.gpu import GpuCollector, GpuConfig
from collectors.gpu_pods import ContainerDevice, decode_list_response, gpus_by_uuid
from telemetry.catalog import gpu as g
from tests.conftest import FIXTURES

CAPTURE = FIXTURES / "nvidia-smi" / "linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt.gz"
SMI = (sys.executable, str(FIXTURES / "nvidia-smi" / "replay_nvidia_smi.py"), "--capture", str(CAPTURE))
H100 = "GPU-00000000-0000-0000-0000-000000000000"

# api.proto (v1), as published; field numbers and types are the wire contract.
F = descriptor_pb2.FieldDescriptorProto
MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    # name: [(field, number, type, label, message type)]
    "ListPodResourcesRequest": [],
    "ListPodResourcesResponse": [("pod_resources", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".v1.PodResources")],
    "PodResources": [
        ("name", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        ("namespace", 2, F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        ("containers", 3, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".v1.ContainerResources"),
    ],
    "ContainerResources": [
        ("name", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        ("devices", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".v1.ContainerDevices"),
        ("cpu_ids", 3, F.TYPE_INT64, F.LABEL_REPEATED, ""),
        ("memory", 4, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".v1.ContainerMemory"),
    ],
    "ContainerMemory": [
        ("memory_type", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        ("size", 2, F.TYPE_UINT64, F.LABEL_OPTIONAL, ""),
        ("topology", 3, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".v1.TopologyInfo"),
    ],
    "ContainerDevices": [
        ("resource_name", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        ("device_ids", 2, F.TYPE_STRING, F.LABEL_REPEATED, ""),
        ("topology", 3, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".v1.TopologyInfo"),
    ],
    "TopologyInfo": [("nodes", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".v1.NUMANode")],
    "NUMANode": [("ID", 1, F.TYPE_INT64, F.LABEL_OPTIONAL, "")],
}


def message_classes() -> dict[str, Any]:
    proto = descriptor_pb2.FileDescriptorProto(name="ctwin_test_podresources_v1.proto", package="v1", syntax="proto3")
    for name, fields in MESSAGES.items():
        m = proto.message_type.add(name=name)
        for field, number, type_, label, type_name in fields:
            m.field.add(name=field, number=number, type=type_, label=label, type_name=type_name or None)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"v1.{name}")) for name in MESSAGES}


PB = message_classes()


def response() -> bytes:
    r = PB["ListPodResourcesResponse"]()
    train = r.pod_resources.add(name="train-0", namespace="ml")
    trainer = train.containers.add(name="trainer")
    trainer.cpu_ids.extend([2, 3])
    trainer.memory.add(memory_type="memory", size=1 << 30).topology.nodes.add(ID=0)
    gpu = trainer.devices.add(resource_name="nvidia.com/gpu")
    gpu.device_ids.append(H100)
    gpu.topology.nodes.add(ID=0)
    trainer.devices.add(resource_name="example.com/fpga").device_ids.append("fpga0")
    train.containers.add(name="sidecar")
    shared = r.pod_resources.add(name="notebook", namespace="lab")
    shared.containers.add(name="jupyter").devices.add(resource_name="nvidia.com/gpu").device_ids.extend(
        ["GPU-AAAAAAAA-0000-0000-0000-000000000001::0", "GPU-AAAAAAAA-0000-0000-0000-000000000001::3"]
    )
    r.pod_resources.add(name="web", namespace="default").containers.add(name="nginx")
    return bytes(r.SerializeToString())


def test_decoder_reads_what_the_reference_runtime_encodes() -> None:
    devices = decode_list_response(response())
    assert devices == [
        ContainerDevice("ml", "train-0", "trainer", "nvidia.com/gpu", (H100,)),
        ContainerDevice("ml", "train-0", "trainer", "example.com/fpga", ("fpga0",)),
        ContainerDevice(
            "lab",
            "notebook",
            "jupyter",
            "nvidia.com/gpu",
            ("GPU-AAAAAAAA-0000-0000-0000-000000000001::0", "GPU-AAAAAAAA-0000-0000-0000-000000000001::3"),
        ),
    ]
    assert gpus_by_uuid(devices) == {
        "00000000-0000-0000-0000-000000000000": {"namespace": "ml", "pod": "train-0", "container": "trainer"},
        "aaaaaaaa-0000-0000-0000-000000000001": {"namespace": "lab", "pod": "notebook", "container": "jupyter"},
    }
    assert decode_list_response(b"") == []  # a node with no pods: proto3's empty message


def test_decoder_refuses_truncated_bytes() -> None:
    with pytest.raises(ValueError, match="past the end"):
        decode_list_response(response()[:-3])


class Kubelet:
    """A grpcio server on a unix socket answering List with fixed bytes (or an error)."""

    def __init__(self, socket_path: Path, body: bytes | None, code: grpc.StatusCode | None = None) -> None:
        self.requests: list[bytes] = []

        def list_(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.requests.append(request)
            if code is not None:
                context.abort(code, "unknown service v1.PodResourcesLister")
            assert body is not None
            return body

        handler = grpc.unary_unary_rpc_method_handler(list_)  # no (de)serializers: raw bytes both ways
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("v1.PodResourcesLister", {"List": handler}),)
        )
        self.server.add_insecure_port(f"unix://{socket_path}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[tuple[Path, Kubelet]]:
    sock = tmp_path / "kubelet.sock"
    k = Kubelet(sock, response())
    yield sock, k
    k.stop()


def test_collector_labels_the_gpu_with_the_pod_holding_it(kubelet: tuple[Path, Kubelet]) -> None:
    sock, k = kubelet
    rec = Recorder()
    GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, pod_resources=sock)).gather(rec)
    assert k.requests == [b""]  # an empty ListPodResourcesRequest
    want = {"namespace": "ml", "pod": "train-0", "container": "trainer"}
    assert rec.samples and all({k: s.labels[k] for k in want} == want for s in rec.samples)
    assert rec.get(g.TEMP_GPU, pod="train-0") == 41.0


def test_kubelet_without_the_service_or_socket_is_the_collectors_error(tmp_path: Path) -> None:
    sock = tmp_path / "old-kubelet.sock"
    k = Kubelet(sock, None, grpc.StatusCode.UNIMPLEMENTED)
    try:
        with pytest.raises(CollectorError, match=r"old-kubelet.sock /v1.PodResourcesLister/List: UNIMPLEMENTED"):
            GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, pod_resources=sock)).gather(Recorder())
    finally:
        k.stop()
    with pytest.raises(CollectorError, match=r"socket .*missing.sock not found \(is this a Kubernetes node\?\)"):
        GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, pod_resources=tmp_path / "missing.sock")).gather(
            Recorder()
        )


def test_garbage_from_the_socket_is_refused_not_guessed(tmp_path: Path) -> None:
    sock = tmp_path / "kubelet.sock"
    k = Kubelet(sock, b"\x0a\xff\xff\xff\x0f")  # field 1, a length far past the end
    try:
        with pytest.raises(CollectorError, match="undecodable List response"):
            GpuCollector(GpuConfig(backend="nvidia-smi", command=SMI, pod_resources=sock)).gather(Recorder())
    finally:
        k.stop()
