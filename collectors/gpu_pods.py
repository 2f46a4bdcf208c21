"""Which pod holds which GPU of this node: the kubelet's pod-resources API.

The kubelet serves `v1.PodResourcesLister/List` (k8s.io/kubelet/pkg/apis/podresources/v1/api.proto)
over gRPC on a unix socket, /var/lib/kubelet/pod-resources/kubelet.sock. For each pod and container
it lists the devices device plugins allocated; for `nvidia.com/gpu` NVIDIA's device plugin uses
the GPU UUIDs as device ids (`GPU-…`; with time-slicing a replica suffix `GPU-…::N`), which is
how DCGM exporter joins GPUs to pods. The call goes through grpcio (optional: the `gpu` extra)
with no generated code: the response is decoded here from the wire format, reading only the
fields below and skipping the rest (cpu_ids, memory, topology, dynamic_resources), so newer
kubelets' additions do not break it.

    ListPodResourcesResponse { repeated PodResources pod_resources = 1; }
    PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }
    ContainerResources { string name = 1; repeated ContainerDevices devices = 2; }
    ContainerDevices { string resource_name = 1; repeated string device_ids = 2; }
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from collectors.base import CollectorError
from collectors.gpu_smi import normalize_uuid

__all__ = ["LIST_METHOD", "ContainerDevice", "decode_list_response", "gpu_pods", "gpus_by_uuid"]

LIST_METHOD = "/v1.PodResourcesLister/List"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True, slots=True)
class ContainerDevice:
    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _fields(buf: bytes) -> Iterator[tuple[int, bytes | int]]:
    """(field number, value) of one message: bytes for length-delimited fields, int for varints;
    fixed-width fields are skipped (none of ours are)."""
    at = 0
    while at < len(buf):
        key, at = _varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(buf, at)
            yield number, value
        elif wire == 2:
            size, at = _varint(buf, at)
            if at + size > len(buf):
                raise ValueError(f"field {number}: length {size} past the end of the message")
            yield number, buf[at : at + size]
            at += size
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"field {number}: unsupported wire type {wire}")
        if at > len(buf):
            raise ValueError("truncated message")


def _text(value: bytes | int) -> str:
    if not isinstance(value, bytes):
        raise ValueError("a string field holds a varint")
    return value.decode("utf-8")


def _sub(value: bytes | int) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError("a message field holds a varint")
    return value


def decode_list_response(buf: bytes) -> list[ContainerDevice]:
    """Every (pod, container, resource) with its device ids, from a ListPodResourcesResponse."""
    out: list[ContainerDevice] = []
    for n, pod_raw in _fields(buf):
        if n != 1:
            continue
        pod = namespace = ""
        containers: list[bytes] = []
        for pn, pv in _fields(_sub(pod_raw)):
            if pn == 1:
                pod = _text(pv)
            elif pn == 2:
                namespace = _text(pv)
            elif pn == 3:
                containers.append(_sub(pv))
        for c_raw in containers:
            name = ""
            devices: list[tuple[str, list[str]]] = []
            for cn, cv in _fields(c_raw):
                if cn == 1:
                    name = _text(cv)
                elif cn == 2:
                    resource, ids = "", []
                    for dn, dv in _fields(_sub(cv)):
                        if dn == 1:
                            resource = _text(dv)
                        elif dn == 2:
                            ids.append(_text(dv))
                    devices.append((resource, ids))
            out.extend(ContainerDevice(namespace, pod, name, r, tuple(ids)) for r, ids in devices)
    return out


def gpus_by_uuid(devices: list[ContainerDevice], resource: str = GPU_RESOURCE) -> dict[str, dict[str, str]]:
    """GPU uuid (as our uuid label: lowercase, no `GPU-`, no `::replica`) → pod labels."""
    out: dict[str, dict[str, str]] = {}
    for d in devices:
        if d.resource != resource:
            continue
        for device_id in d.device_ids:
            uuid = normalize_uuid(device_id.split("::", 1)[0])
            out[uuid] = {"namespace": d.namespace, "pod": d.pod, "container": d.container}
    return out


def gpu_pods(socket_path: Path, timeout_s: float, resource: str = GPU_RESOURCE) -> dict[str, dict[str, str]]:
    """Ask the kubelet at `socket_path`; CollectorError naming the socket when it cannot."""
    try:
        import grpc
    except ImportError:
        raise CollectorError("pod_resources needs grpcio (pip install 'continuum-twin[gpu]')") from None
    if not socket_path.exists():
        raise CollectorError(f"pod-resources socket {socket_path} not found (is this a Kubernetes node?)")
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        call = channel.unary_unary(LIST_METHOD, request_serializer=lambda _: b"", response_deserializer=bytes)
        try:
            raw = call(None, timeout=timeout_s)
        except grpc.RpcError as exc:
            said = f"{exc.code().name}: {exc.details()}"
            raise CollectorError(f"pod-resources {socket_path} {LIST_METHOD}: {said}") from None
    try:
        return gpus_by_uuid(decode_list_response(raw), resource)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CollectorError(f"pod-resources {socket_path}: undecodable List response: {exc}") from None
