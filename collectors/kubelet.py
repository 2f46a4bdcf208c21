"""The kubelet's `/stats/summary`: a node's, its pods' and their containers' CPU, memory, network
and filesystems, as the kubelet measured them (telemetry.catalog.kubernetes for the names).

Sources (one of):
- `url`: the kubelet itself, `https://NODE:10250/stats/summary`, with a bearer token (`token_file`,
  a service account allowed `nodes/stats`) and the kubelet's CA (`ca_file`) or `insecure: true`
  (kubelets often serve a self-signed certificate);
- `url` of the API server plus `nodes: [NAME, ...]`: each node's summary through the apiserver's
  proxy, `/api/v1/nodes/NAME/proxy/stats/summary` (no route to the kubelets needed);
- `path`: a saved summary (one node), for replays and tests.

Every sample carries the kubelet's own measurement time (each stat's `time`) and `host` = the
node's name. `systemContainers` (kubelet, runtime) and volumes are not read. A field the kubelet
left out (a pod not yet measured) is absent, never 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field, model_validator

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.registry import register
from collectors.secret import read_secret
from telemetry.catalog import Metric
from telemetry.catalog import container as cm
from telemetry.catalog import kubernetes as km
from telemetry.redact import redact
from telemetry.schema import ByteSize, Duration

__all__ = ["KubeletCollector", "KubeletConfig", "emit_summary", "summary_url"]

SUMMARY_PATH = "/stats/summary"


class KubeletConfig(CollectorConfig):
    url: str | None = Field(
        None, description="The kubelet's https://NODE:10250/stats/summary, or the API server's URL with `nodes`"
    )
    nodes: list[str] = Field(
        default_factory=list, description="Read these nodes through the API server's proxy (url = the apiserver)"
    )
    path: Path | None = Field(None, description="A saved /stats/summary JSON file instead of a URL")
    token_file: Path | None = Field(None, description="Bearer token (re-read on every request)")
    ca_file: Path | None = Field(None, description="CA bundle of the kubelet's or API server's certificate")
    insecure: bool = Field(False, description="Do not verify the server's certificate (self-signed kubelets)")
    timeout: Duration = Field(10.0, gt=0, description="Per request")
    body_size_limit: ByteSize = Field(64 * 2**20, ge=1024, description="Largest summary read")

    @model_validator(mode="after")
    def _one_source(self) -> KubeletConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("the kubelet collector needs exactly one of url and path")
        if self.nodes and self.url is None:
            raise ValueError("nodes are read through the API server: set url to the API server's URL")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s)://..., got {redact(self.url)!r}")
        return self


def summary_url(base: str, node: str | None) -> str:
    """The summary's URL: `base` itself, or the apiserver's proxy path for `node`."""
    if node is None:
        return base
    return f"{base.rstrip('/')}/api/v1/nodes/{node}/proxy{SUMMARY_PATH}"


@register
class KubeletCollector(Collector):
    name: ClassVar[str] = "kubelet"
    config_model = KubeletConfig
    config: KubeletConfig

    def __init__(self, config: KubeletConfig | None = None) -> None:
        super().__init__(config)
        self._http: httpx.Client | None = None

    def availability(self) -> str | None:
        if self.config.path is not None and not self.config.path.is_file():
            return f"{self.config.path}: no such file"
        return None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def gather(self, emit: Emit) -> None:
        if self.config.path is not None:
            emit_summary(_load(self.config.path.read_bytes(), str(self.config.path)), emit)
            return
        assert self.config.url is not None
        errors = []
        targets: list[str | None] = list(self.config.nodes) or [None]
        for node in targets:
            url = summary_url(self.config.url, node)
            try:
                emit_summary(_load(self._fetch(url), redact(url)), emit)
            except CollectorError as exc:  # one unreachable node does not hide the others
                errors.append(str(exc))
        if errors:
            raise CollectorError("; ".join(errors))

    def _fetch(self, url: str) -> bytes:
        if self._http is None:
            verify: str | bool = False if self.config.insecure else (str(self.config.ca_file or "") or True)
            self._http = httpx.Client(verify=verify, timeout=self.config.timeout)
        headers = {"Accept": "application/json"}
        if self.config.token_file is not None:
            token = read_secret(file=self.config.token_file, what="token_file")
            headers["Authorization"] = f"Bearer {token}"
        limit = self.config.body_size_limit
        try:
            with self._http.stream("GET", url, headers=headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise CollectorError(f"{redact(url)}: HTTP {resp.status_code}: {resp.text[:300]}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise CollectorError(f"{redact(url)}: body_size_limit exceeded: more than {limit} bytes")
                return bytes(body)
        except httpx.HTTPError as exc:
            raise CollectorError(f"{redact(url)}: {type(exc).__name__}: {redact(str(exc))}") from None


def _load(body: bytes, source: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise CollectorError(f"{source}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("node"), dict):
        raise CollectorError(f"{source}: not a kubelet /stats/summary (no `node` object)")
    return doc


# ----------------------------------------------------------------------------------------- parsing
def _ts_ns(stat: Mapping[str, Any], fallback: int | None) -> int | None:
    """The stat's RFC 3339 `time` in unix ns (the kubelet writes `Z` or an offset, maybe fractions)."""
    text = stat.get("time")
    if not isinstance(text, str):
        return fallback
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


class _Out:
    """Emits one stat object's fields with its time and labels, skipping absent fields."""

    def __init__(self, emit: Emit, host: str) -> None:
        self.emit = emit
        self.host = host

    def fields(
        self,
        stat: Any,
        table: tuple[tuple[str, Metric, float], ...],
        labels: Mapping[str, str],
    ) -> None:
        if not isinstance(stat, Mapping):
            return
        ts = _ts_ns(stat, None)
        for key, metric, scale in table:  # scale: the divisor to the catalog's unit
            value = stat.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.emit(metric, value / scale, {"host": self.host, **labels}, ts)

    def network(self, net: Any, labels: Mapping[str, str]) -> None:
        if not isinstance(net, Mapping):
            return
        interfaces = net.get("interfaces")
        if not isinstance(interfaces, list):  # older kubelets: the default interface only
            interfaces = [net] if net.get("name") else []
        for iface in interfaces:
            if isinstance(iface, Mapping) and iface.get("name"):
                merged = {"time": net.get("time"), **iface}
                self.fields(merged, _NET, {**labels, "interface": str(iface["name"])})


_NS = 1e9  # divisors: nanoseconds and nanocores; dividing (not × 1e-9) rounds exactly
_CPU_NODE = (("usageCoreNanoSeconds", km.NODE_CPU, _NS), ("usageNanoCores", km.NODE_CPU_CORES, _NS))
_MEM_NODE = (
    ("workingSetBytes", km.NODE_MEM_WS, 1.0),
    ("usageBytes", km.NODE_MEM_USAGE, 1.0),
    ("rssBytes", km.NODE_MEM_RSS, 1.0),
)
_FS_NODE = (
    ("capacityBytes", km.NODE_FS_CAPACITY, 1.0),
    ("availableBytes", km.NODE_FS_AVAILABLE, 1.0),
    ("usedBytes", km.NODE_FS_USED, 1.0),
    ("inodes", km.NODE_FS_INODES, 1.0),
    ("inodesFree", km.NODE_FS_INODES_FREE, 1.0),
    ("inodesUsed", km.NODE_FS_INODES_USED, 1.0),
)
_NET = (
    ("rxBytes", km.POD_NET_RX, 1.0),
    ("txBytes", km.POD_NET_TX, 1.0),
    ("rxErrors", km.POD_NET_RX_ERRS, 1.0),
    ("txErrors", km.POD_NET_TX_ERRS, 1.0),
)
_CPU_POD = (("usageCoreNanoSeconds", km.POD_CPU, _NS), ("usageNanoCores", km.POD_CPU_CORES, _NS))
_MEM_POD = (
    ("workingSetBytes", km.POD_MEM_WS, 1.0),
    ("usageBytes", km.POD_MEM_USAGE, 1.0),
    ("rssBytes", km.POD_MEM_RSS, 1.0),
)
_EPHEMERAL = (
    ("usedBytes", km.POD_EPHEMERAL_USED, 1.0),
    ("capacityBytes", km.POD_EPHEMERAL_CAPACITY, 1.0),
    ("inodesUsed", km.POD_EPHEMERAL_INODES_USED, 1.0),
)
_CPU_CTR = (("usageCoreNanoSeconds", cm.CPU_USAGE, _NS), ("usageNanoCores", km.CTR_CPU_CORES, _NS))
_MEM_CTR = (
    ("workingSetBytes", km.CTR_MEM_WS, 1.0),
    ("usageBytes", cm.MEM_USAGE, 1.0),
    ("rssBytes", cm.MEM_ANON, 1.0),
)
_FS_CTR = (
    ("usedBytes", km.CTR_FS_USAGE, 1.0),
    ("capacityBytes", km.CTR_FS_LIMIT, 1.0),
    ("inodes", km.CTR_FS_INODES, 1.0),
    ("inodesFree", km.CTR_FS_INODES_FREE, 1.0),
    ("inodesUsed", km.CTR_FS_INODES_USED, 1.0),
)


def emit_summary(doc: Mapping[str, Any], emit: Emit) -> None:
    """Emit a /stats/summary document (a pure function of it; module docstring)."""
    node = doc["node"]
    host = str(node.get("nodeName") or "")
    if not host:
        raise CollectorError("the summary names no node (node.nodeName)")
    out = _Out(emit, host)
    out.fields(node.get("cpu"), _CPU_NODE, {})
    out.fields(node.get("memory"), _MEM_NODE, {})
    out.network(node.get("network"), {})
    out.fields(node.get("fs"), _FS_NODE, {"fs": "nodefs"})
    out.fields((node.get("runtime") or {}).get("imageFs"), _FS_NODE, {"fs": "imagefs"})
    for pod in doc.get("pods") or ():
        ref = pod.get("podRef") or {}
        labels = {"namespace": str(ref.get("namespace") or ""), "pod": str(ref.get("name") or "")}
        out.fields(pod.get("cpu"), _CPU_POD, labels)
        out.fields(pod.get("memory"), _MEM_POD, labels)
        out.network(pod.get("network"), labels)
        out.fields(pod.get("ephemeral-storage"), _EPHEMERAL, labels)
        for ctr in pod.get("containers") or ():
            c_labels = {**labels, "container": str(ctr.get("name") or "")}
            out.fields(ctr.get("cpu"), _CPU_CTR, c_labels)
            out.fields(ctr.get("memory"), _MEM_CTR, c_labels)
            for fs in ("rootfs", "logs"):
                out.fields(ctr.get(fs), _FS_CTR, {**c_labels, "fs": fs})
            started = _ts_ns({"time": ctr.get("startTime")}, None)
            if started is not None:  # stamped like the container's CPU stat, so a re-read is the same sample
                emit(km.CTR_START, started / 1e9, {"host": host, **c_labels}, _ts_ns(ctr.get("cpu") or {}, None))
