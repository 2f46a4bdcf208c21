"""The NVML backend: the driver's library through nvidia-ml-py (`import pynvml`), no subprocess.

Preferred where it works because it is cheaper than spawning nvidia-smi and reaches what
`--query-gpu` does not: the energy counter (nvmlDeviceGetTotalEnergyConsumption) and XID errors
(NVML events). Values are converted to the same names and units as the nvidia-smi path (the
exporter's), so a site can switch backends without its series changing.

XIDs: the devices are registered for nvmlEventTypeXidCriticalError when the backend opens; each
read drains the pending events without waiting (timeout 0), so no thread is needed and the counts
are those seen since the collector started, by code, as nvidia_gpu_exporter counts them.

Errors: a value the GPU does not support (NotSupported, NoPermission, ...) is left out; anything
else (GpuIsLost, Unknown) fails the read with the call and the GPU named.
"""

from __future__ import annotations

import contextlib
import ctypes.util
from collections.abc import Callable
from typing import Any

from collectors.base import CollectorError
from collectors.gpu_reading import GpuReading
from collectors.gpu_smi import normalize_uuid
from telemetry.catalog import Metric
from telemetry.catalog import gpu as g

__all__ = ["NvmlBackend", "NvmlUnavailable", "nvml_reason"]

# NVML errors that mean "this GPU or driver cannot give that value", not a failure.
_NO_VALUE_ERRORS = ("INVALID_ARGUMENT", "NOT_SUPPORTED", "NO_PERMISSION", "NOT_FOUND", "FUNCTION_NOT_FOUND", "NO_DATA")


class NvmlUnavailable(Exception):
    """NVML cannot be used here; the message says why (no nvidia-ml-py, no libnvidia-ml.so, ...)."""


def _pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        if ctypes.util.find_library("nvidia-ml") is None:
            raise NvmlUnavailable("libnvidia-ml.so not found (and nvidia-ml-py not installed)") from None
        raise NvmlUnavailable("nvidia-ml-py not installed (pip install 'continuum-twin[gpu]')") from None
    return pynvml


def _init(nv: Any) -> None:
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        code = getattr(exc, "value", None)
        if code == nv.NVML_ERROR_LIBRARY_NOT_FOUND:
            raise NvmlUnavailable("libnvidia-ml.so not found") from None
        if code == nv.NVML_ERROR_DRIVER_NOT_LOADED:
            raise NvmlUnavailable("the NVIDIA kernel driver is not loaded") from None
        raise NvmlUnavailable(f"nvmlInit failed: {exc}") from None


def nvml_reason() -> str | None:
    """None when NVML initialises here, else why not. Shuts NVML down again."""
    try:
        nv = _pynvml()
        _init(nv)
    except NvmlUnavailable as exc:
        return str(exc)
    with contextlib.suppress(Exception):
        nv.nvmlShutdown()
    return None


class NvmlBackend:
    """An open NVML session; `read()` once per gather, `close()` on shutdown."""

    def __init__(self) -> None:
        self._nv = _pynvml()
        _init(self._nv)
        self._no_value = frozenset(getattr(self._nv, f"NVML_ERROR_{name}") for name in _NO_VALUE_ERRORS)
        self._events: Any = None
        self._xids: dict[str, dict[int, int]] = {}
        self._register_xid_events()

    # -- helpers ---------------------------------------------------------------------------------

    def _get(self, fn: Callable[..., Any], *args: Any, where: str = "") -> Any:
        try:
            return fn(*args)
        except self._nv.NVMLError as exc:
            if getattr(exc, "value", None) in self._no_value:
                return None
            raise CollectorError(f"NVML {getattr(fn, '__name__', fn)}{where}: {exc}") from exc

    def _register_xid_events(self) -> None:
        nv = self._nv
        try:
            events = nv.nvmlEventSetCreate()
        except nv.NVMLError:
            return  # no event support (e.g. some vGPU guests): XID counts stay empty
        registered = 0
        for i in range(nv.nvmlDeviceGetCount()):
            with contextlib.suppress(nv.NVMLError):
                nv.nvmlDeviceRegisterEvents(nv.nvmlDeviceGetHandleByIndex(i), nv.nvmlEventTypeXidCriticalError, events)
                registered += 1
        if registered:
            self._events = events
        else:
            with contextlib.suppress(nv.NVMLError):
                nv.nvmlEventSetFree(events)

    def _drain_xids(self) -> None:
        nv = self._nv
        if self._events is None:
            return
        while True:
            try:
                data = nv.nvmlEventSetWait_v2(self._events, 0)
            except nv.NVMLError as exc:
                if getattr(exc, "value", None) == nv.NVML_ERROR_TIMEOUT:
                    return
                raise CollectorError(f"NVML nvmlEventSetWait_v2: {exc}") from exc
            uuid = self._get(nv.nvmlDeviceGetUUID, data.device)
            per_gpu = self._xids.setdefault(normalize_uuid(uuid) if uuid else "unknown", {})
            per_gpu[int(data.eventData)] = per_gpu.get(int(data.eventData), 0) + 1

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> list[GpuReading]:
        nv = self._nv
        self._drain_xids()
        driver = self._get(nv.nvmlSystemGetDriverVersion) or "[N/A]"
        cuda_raw = self._get(nv.nvmlSystemGetCudaDriverVersion)
        cuda = f"{cuda_raw // 1000}.{cuda_raw % 1000 // 10}" if isinstance(cuda_raw, int) else ""
        out: list[GpuReading] = []
        for i in range(nv.nvmlDeviceGetCount()):
            out.append(self._read_device(i, driver, cuda))
        return out

    def _read_device(self, i: int, driver: str, cuda: str) -> GpuReading:
        nv = self._nv
        where = f" (GPU {i})"
        h = self._get(nv.nvmlDeviceGetHandleByIndex, i, where=where)
        get: Callable[..., Any] = lambda fn, *a: self._get(fn, h, *a, where=where)  # noqa: E731
        uuid = normalize_uuid(get(nv.nvmlDeviceGetUUID) or "")
        pci = get(nv.nvmlDeviceGetPciInfo)
        cap = get(nv.nvmlDeviceGetCudaComputeCapability)
        reading = GpuReading(
            index=str(i),
            uuid=uuid,
            name=get(nv.nvmlDeviceGetName) or "",
            info={
                "driver_version": driver,
                "cuda_version": cuda,
                "vbios_version": get(nv.nvmlDeviceGetVbiosVersion) or "[N/A]",
                "pci_bus_id": _text(pci.busId) if pci is not None else "[N/A]",
                "pci_sub_device_id": f"0x{pci.pciSubSystemId:08X}" if pci is not None else "[N/A]",
                "serial": get(nv.nvmlDeviceGetSerial) or "[N/A]",
                "compute_cap": f"{cap[0]}.{cap[1]}" if cap else "[N/A]",
                "driver_model_current": "[N/A]",  # Windows only (WDDM/TCC)
                "driver_model_pending": "[N/A]",
            },
            xids=dict(self._xids.get(uuid, {})),
        )
        values = reading.values

        def put(metric: Metric, value: float | None) -> None:
            if value is not None:
                values.append((metric, float(value)))

        util = get(nv.nvmlDeviceGetUtilizationRates)
        if util is not None:
            put(g.UTIL_GPU, util.gpu / 100)
            put(g.UTIL_MEMORY, util.memory / 100)
        enc, dec = get(nv.nvmlDeviceGetEncoderUtilization), get(nv.nvmlDeviceGetDecoderUtilization)
        put(g.UTIL_ENCODER, enc[0] / 100 if enc else None)
        put(g.UTIL_DECODER, dec[0] / 100 if dec else None)
        mem = get(nv.nvmlDeviceGetMemoryInfo, nv.nvmlMemory_v2) if hasattr(nv, "nvmlMemory_v2") else None
        mem = mem if mem is not None else get(nv.nvmlDeviceGetMemoryInfo)
        if mem is not None:
            put(g.MEMORY_TOTAL, mem.total)
            put(g.MEMORY_USED, mem.used)
            put(g.MEMORY_FREE, mem.free)
            put(g.MEMORY_RESERVED, getattr(mem, "reserved", None))
        milli = lambda v: v / 1000 if v is not None else None  # noqa: E731 - mW → W, mJ → J
        put(g.POWER_DRAW, milli(get(nv.nvmlDeviceGetPowerUsage)))
        put(g.POWER_LIMIT, milli(get(nv.nvmlDeviceGetPowerManagementLimit)))
        put(g.POWER_ENFORCED_LIMIT, milli(get(nv.nvmlDeviceGetEnforcedPowerLimit)))
        put(g.ENERGY, milli(get(nv.nvmlDeviceGetTotalEnergyConsumption)))
        put(g.TEMP_GPU, get(nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU))
        put(g.TEMP_MEMORY, self._field(h, getattr(nv, "NVML_FI_DEV_MEMORY_TEMP", None)))
        fan = get(nv.nvmlDeviceGetFanSpeed)
        put(g.FAN_SPEED, fan / 100 if fan is not None else None)
        put(g.PSTATE, get(nv.nvmlDeviceGetPerformanceState))
        mhz = lambda v: v * 1e6 if v is not None else None  # noqa: E731
        for metric, clock in (
            (g.CLOCK_GRAPHICS, nv.NVML_CLOCK_GRAPHICS),
            (g.CLOCK_SM, nv.NVML_CLOCK_SM),
            (g.CLOCK_MEMORY, nv.NVML_CLOCK_MEM),
            (g.CLOCK_VIDEO, nv.NVML_CLOCK_VIDEO),
        ):
            put(metric, mhz(get(nv.nvmlDeviceGetClockInfo, clock)))
        for metric, clock in (
            (g.CLOCK_MAX_GRAPHICS, nv.NVML_CLOCK_GRAPHICS),
            (g.CLOCK_MAX_SM, nv.NVML_CLOCK_SM),
            (g.CLOCK_MAX_MEMORY, nv.NVML_CLOCK_MEM),
        ):
            put(metric, mhz(get(nv.nvmlDeviceGetMaxClockInfo, clock)))
        self._reasons(get(nv.nvmlDeviceGetCurrentClocksEventReasons), put)
        ecc = get(nv.nvmlDeviceGetEccMode)
        put(g.ECC_MODE, ecc[0] if ecc else None)
        for metric, kind, counter in (
            (g.ECC_CORRECTED_VOLATILE, nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_VOLATILE_ECC),
            (g.ECC_CORRECTED_AGGREGATE, nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_AGGREGATE_ECC),
            (g.ECC_UNCORRECTED_VOLATILE, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC),
            (g.ECC_UNCORRECTED_AGGREGATE, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_AGGREGATE_ECC),
        ):
            put(metric, get(nv.nvmlDeviceGetTotalEccErrors, kind, counter) if ecc and ecc[0] else None)
        rows = get(nv.nvmlDeviceGetRemappedRows)
        if rows:
            for metric, value in zip(
                (g.REMAPPED_CORRECTABLE, g.REMAPPED_UNCORRECTABLE, g.REMAPPED_PENDING, g.REMAPPED_FAILURE),
                rows,
                strict=False,
            ):
                put(metric, int(value))
        put(g.PCIE_GEN, get(nv.nvmlDeviceGetCurrPcieLinkGeneration))
        put(g.PCIE_GEN_MAX, get(nv.nvmlDeviceGetMaxPcieLinkGeneration))
        put(g.PCIE_WIDTH, get(nv.nvmlDeviceGetCurrPcieLinkWidth))
        put(g.PCIE_WIDTH_MAX, get(nv.nvmlDeviceGetMaxPcieLinkWidth))
        mig = get(nv.nvmlDeviceGetMigMode)
        put(g.MIG_MODE, mig[0] if mig else None)
        put(g.PERSISTENCE_MODE, get(nv.nvmlDeviceGetPersistenceMode))
        return reading

    def _field(self, handle: Any, field_id: int | None) -> float | None:
        """One NVML field value (e.g. NVML_FI_DEV_MEMORY_TEMP), None when unsupported."""
        if field_id is None:
            return None
        values = self._get(self._nv.nvmlDeviceGetFieldValues, handle, [field_id])
        if not values or values[0].nvmlReturn != 0:
            return None
        v = values[0]
        # valueType 0 double, 1 uint, 2 ulong, 3 ulonglong, 4 slonglong, 5 sint (nvmlValueType_t)
        kind = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}.get(v.valueType)
        return float(getattr(v.value, kind)) if kind else None

    def _reasons(self, mask: int | None, put: Callable[[Metric, float | None], None]) -> None:
        if mask is None:
            return
        nv = self._nv
        put(g.EVENT_REASONS_ACTIVE, mask)
        for metric, bit in (
            (g.EVENT_GPU_IDLE, nv.nvmlClocksEventReasonGpuIdle),
            (g.EVENT_SW_POWER_CAP, nv.nvmlClocksEventReasonSwPowerCap),
            (g.EVENT_HW_SLOWDOWN, nv.nvmlClocksEventReasonHwSlowdown),
            (g.EVENT_HW_THERMAL, nv.nvmlClocksEventReasonHwThermalSlowdown),
            (g.EVENT_HW_POWER_BRAKE, nv.nvmlClocksEventReasonHwPowerBrakeSlowdown),
            (g.EVENT_SW_THERMAL, nv.nvmlClocksEventReasonSwThermalSlowdown),
        ):
            put(metric, 1 if mask & bit else 0)

    def close(self) -> None:
        nv = self._nv
        if self._events is not None:
            with contextlib.suppress(nv.NVMLError):
                nv.nvmlEventSetFree(self._events)
            self._events = None
        with contextlib.suppress(nv.NVMLError):
            nv.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
