"""What a GPU backend (NVML or nvidia-smi) reads per GPU: one shape for both, so the collector
labels and emits without knowing where a value came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from telemetry.catalog import Metric

__all__ = ["GpuReading"]


@dataclass
class GpuReading:
    index: str
    uuid: str
    """Lowercase, without `GPU-`: the exporter's uuid label."""
    name: str
    info: dict[str, str] = field(default_factory=dict)
    """The other `nvidia_smi_gpu_info` labels (driver_version, vbios_version, ...), raw text."""
    values: list[tuple[Metric, float]] = field(default_factory=list)
    xids: dict[int, int] = field(default_factory=dict)
    """XID code → events seen since the backend opened (NVML only)."""
