"""NVIDIA GPUs: utilisation, memory, power and energy, temperatures, clocks, throttle reasons,
ECC and XID errors, PCIe link, per GPU uuid; names as nvidia_gpu_exporter's (telemetry.catalog.gpu).

Two backends behind one reading (collectors.gpu_reading):
- NVML through nvidia-ml-py, where the package is installed and nvmlInit succeeds: no
  subprocess, and the only source of the energy counter and XID errors.
- `nvidia-smi --query-gpu=<fields> --format=csv` otherwise, parsed as the exporter parses it
  (collectors.gpu_smi). `command` replaces `nvidia-smi` (a full path, `ssh gpu01 nvidia-smi`, or
  a replay of a capture in tests); the fields asked for are those of our table that
  `--help-query-gpu` lists, so an older driver is asked only what it knows.
`backend: auto` (the default) takes NVML when it works and falls back to nvidia-smi; when neither
works, `availability()` says why and `ctwin plugins` shows it.

Attribution (optional): `slurm` labels each GPU with the running job that holds it (`hpc_job`,
from the jobs' `gres_detail`, collectors.gpu_slurm); `pod_resources` with the pod that holds it
(`namespace`, `pod`, `container`, from the kubelet's pod-resources API, collectors.gpu_pods).
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from collectors.base import Collector, CollectorConfig, CollectorError, Emit, Unavailable
from collectors.gpu_reading import GpuReading
from collectors.gpu_slurm import gpu_jobs_on_node
from collectors.gpu_smi import exporter_name, normalize_uuid, parse_help_fields, parse_query_csv, parse_value
from collectors.registry import register
from collectors.slurm_doc import SlurmJSONError, load_document
from collectors.slurm_transport import CommandRunner, run_command
from telemetry.catalog import Metric
from telemetry.catalog import gpu as g
from telemetry.schema import Duration, StrictModel

__all__ = ["FIELDS", "AttributionError", "GpuCollector", "GpuConfig", "GpuSlurmConfig", "SmiBackend"]

# --query-gpu field → catalog metric. Names are the exporter's for the field's header; the test
# on the real capture checks each one against exporter_name() and the exporter's golden output.
FIELDS: tuple[tuple[str, Metric], ...] = (
    ("utilization.gpu", g.UTIL_GPU),
    ("utilization.memory", g.UTIL_MEMORY),
    ("utilization.encoder", g.UTIL_ENCODER),
    ("utilization.decoder", g.UTIL_DECODER),
    ("memory.total", g.MEMORY_TOTAL),
    ("memory.used", g.MEMORY_USED),
    ("memory.free", g.MEMORY_FREE),
    ("memory.reserved", g.MEMORY_RESERVED),
    ("power.draw", g.POWER_DRAW),
    ("power.draw.average", g.POWER_DRAW_AVERAGE),
    ("power.draw.instant", g.POWER_DRAW_INSTANT),
    ("power.limit", g.POWER_LIMIT),
    ("enforced.power.limit", g.POWER_ENFORCED_LIMIT),
    ("temperature.gpu", g.TEMP_GPU),
    ("temperature.memory", g.TEMP_MEMORY),
    ("temperature.gpu.tlimit", g.TEMP_TLIMIT),
    ("fan.speed", g.FAN_SPEED),
    ("pstate", g.PSTATE),
    ("clocks.current.graphics", g.CLOCK_GRAPHICS),
    ("clocks.current.sm", g.CLOCK_SM),
    ("clocks.current.memory", g.CLOCK_MEMORY),
    ("clocks.current.video", g.CLOCK_VIDEO),
    ("clocks.max.graphics", g.CLOCK_MAX_GRAPHICS),
    ("clocks.max.sm", g.CLOCK_MAX_SM),
    ("clocks.max.memory", g.CLOCK_MAX_MEMORY),
    ("clocks_event_reasons.active", g.EVENT_REASONS_ACTIVE),
    ("clocks_event_reasons.gpu_idle", g.EVENT_GPU_IDLE),
    ("clocks_event_reasons.sw_power_cap", g.EVENT_SW_POWER_CAP),
    ("clocks_event_reasons.hw_slowdown", g.EVENT_HW_SLOWDOWN),
    ("clocks_event_reasons.hw_thermal_slowdown", g.EVENT_HW_THERMAL),
    ("clocks_event_reasons.hw_power_brake_slowdown", g.EVENT_HW_POWER_BRAKE),
    ("clocks_event_reasons.sw_thermal_slowdown", g.EVENT_SW_THERMAL),
    ("clocks_event_reasons_counters.sw_power_cap", g.EVENT_SW_POWER_CAP_TIME),
    ("clocks_event_reasons_counters.hw_thermal_slowdown", g.EVENT_HW_THERMAL_TIME),
    ("clocks_event_reasons_counters.sw_thermal_slowdown", g.EVENT_SW_THERMAL_TIME),
    ("clocks_event_reasons_counters.hw_power_brake_slowdown", g.EVENT_HW_POWER_BRAKE_TIME),
    ("ecc.mode.current", g.ECC_MODE),
    ("ecc.errors.corrected.volatile.total", g.ECC_CORRECTED_VOLATILE),
    ("ecc.errors.corrected.aggregate.total", g.ECC_CORRECTED_AGGREGATE),
    ("ecc.errors.uncorrected.volatile.total", g.ECC_UNCORRECTED_VOLATILE),
    ("ecc.errors.uncorrected.aggregate.total", g.ECC_UNCORRECTED_AGGREGATE),
    ("ecc.errors.corrected.volatile.dram", g.ECC_CORRECTED_VOLATILE_DRAM),
    ("ecc.errors.uncorrected.volatile.dram", g.ECC_UNCORRECTED_VOLATILE_DRAM),
    ("remapped_rows.correctable", g.REMAPPED_CORRECTABLE),
    ("remapped_rows.uncorrectable", g.REMAPPED_UNCORRECTABLE),
    ("remapped_rows.pending", g.REMAPPED_PENDING),
    ("remapped_rows.failure", g.REMAPPED_FAILURE),
    ("pcie.link.gen.current", g.PCIE_GEN),
    ("pcie.link.gen.max", g.PCIE_GEN_MAX),
    ("pcie.link.width.current", g.PCIE_WIDTH),
    ("pcie.link.width.max", g.PCIE_WIDTH_MAX),
    ("mig.mode.current", g.MIG_MODE),
    ("persistence_mode", g.PERSISTENCE_MODE),
)
# Identity: labels, not values. `query field → gpu_info label`, as the exporter names them.
IDENTITY: tuple[tuple[str, str], ...] = (
    ("index", "index"),
    ("uuid", "uuid"),
    ("name", "name"),
    ("driver_version", "driver_version"),
    ("vbios_version", "vbios_version"),
    ("pci.bus_id", "pci_bus_id"),
    ("pci.sub_device_id", "pci_sub_device_id"),
    ("serial", "serial"),
    ("compute_cap", "compute_cap"),
    ("driver_model.current", "driver_model_current"),
    ("driver_model.pending", "driver_model_pending"),
)


class AttributionError(CollectorError):
    """The GPUs were read but whom they belong to was not: the samples are kept."""

    partial = True


class GpuSlurmConfig(StrictModel):
    """Where the running jobs come from: a command printing squeue/slurmrestd jobs JSON, or a file."""

    command: tuple[str, ...] = ("squeue", "--json")
    """E.g. ["ssh", "login1", "squeue", "--json"]; ignored when `file` is set."""
    file: Path | None = None
    """A jobs JSON document kept current by something else (a prolog, a cron'd squeue)."""
    node: str | None = None
    """This host's Slurm node name; default: the short hostname."""
    timeout_s: Duration = 10.0


class GpuConfig(CollectorConfig):
    backend: Literal["auto", "nvml", "nvidia-smi"] = "auto"
    command: tuple[str, ...] = Field(("nvidia-smi",), min_length=1)
    """The nvidia-smi argv prefix; the query options are appended."""
    timeout_s: Duration = 10.0
    """Per nvidia-smi call; a wedged driver makes it hang, and the process group is killed."""
    slurm: GpuSlurmConfig | None = None
    """Label each GPU with the Slurm job holding it (`hpc_job`)."""
    pod_resources: Path | None = None
    """The kubelet's pod-resources socket (usually /var/lib/kubelet/pod-resources/kubelet.sock):
    label each GPU with the pod holding it (`namespace`, `pod`, `container`)."""


class SmiBackend:
    """`nvidia-smi --query-gpu` through a runner (the seam tests use to replay a capture)."""

    def __init__(self, command: Sequence[str], timeout_s: float, runner: CommandRunner = run_command) -> None:
        self.command = tuple(command)
        self.timeout_s = timeout_s
        self.runner = runner
        self._fields: list[str] | None = None
        self._cuda: str | None = None

    @property
    def shown(self) -> str:
        return " ".join(self.command)

    def _run(self, *args: str) -> str:
        return run_checked(self.runner, [*self.command, *args], self.timeout_s).decode("utf-8", "replace")

    def fields(self) -> list[str]:
        """What to ask: identity plus our table, less what this driver's --help-query-gpu lacks."""
        if self._fields is None:
            wanted = [q for q, _ in IDENTITY] + [q for q, _ in FIELDS]
            try:
                known = parse_help_fields(self._run("--help-query-gpu"))
            except CollectorError:
                known = set()
            self._fields = [q for q in wanted if q in known] if known else wanted
        return self._fields

    def cuda_version(self) -> str:
        """`CUDA Version : 13.1` from `nvidia-smi --version` (the exporter's cuda_version label)."""
        if self._cuda is None:
            try:
                text = self._run("--version")
            except CollectorError:
                text = ""
            found = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.lower().startswith("cuda version")]
            self._cuda = found[0] if found else ""
        return self._cuda

    def read(self) -> list[GpuReading]:
        fields = self.fields()
        text = self._run(f"--query-gpu={','.join(fields)}", "--format=csv")
        try:
            rows = parse_query_csv(text, fields)
        except ValueError as exc:
            raise CollectorError(f"{self.shown} --query-gpu: unexpected output: {exc}") from None
        metrics = dict(FIELDS)
        readings: list[GpuReading] = []
        for row in rows:
            labels = {label: row.raw(q) or "" for q, label in IDENTITY}
            reading = GpuReading(
                index=labels.pop("index"),
                uuid=normalize_uuid(labels.pop("uuid")),
                name=labels.pop("name"),
                info={**labels, "cuda_version": self.cuda_version()},
            )
            for q, (header, raw) in row.cells.items():
                metric = metrics.get(q)
                if metric is None:
                    continue
                name, scale = exporter_name(header)
                if name != metric.name:
                    raise CollectorError(
                        f"{self.shown}: field {q} came back as {header!r} (→ {name}), not {metric.name}: "
                        "nvidia-smi changed its unit; this collector needs updating"
                    )
                value = parse_value(q, raw, scale)
                if value is not None:
                    reading.values.append((metric, value))
            readings.append(reading)
        return readings

    def close(self) -> None:
        pass


def run_checked(runner: CommandRunner, argv: Sequence[str], timeout_s: float) -> bytes:
    """stdout of a command that must succeed; CollectorError naming the command otherwise."""
    shown = " ".join(argv)[:200]
    try:
        result = runner(argv, timeout_s, None)
    except TimeoutError:
        raise CollectorError(f"{shown}: no answer within {timeout_s:g}s, killed") from None
    except OSError as exc:
        raise CollectorError(f"{shown}: cannot run: {exc.strerror or exc}") from None
    if result.returncode != 0:
        said = " ".join((result.stderr or result.stdout).decode("utf-8", "replace").split())[:300]
        raise CollectorError(f"{shown}: exit status {result.returncode}: {said}")
    return result.stdout


def _both(nvml: str, smi: str) -> str:
    driverless = nvml.startswith("libnvidia-ml.so not found")
    return f"{'no NVIDIA driver: ' if driverless else ''}{nvml} and {smi}"


def _smi_reason(command: Sequence[str]) -> str | None:
    return None if shutil.which(command[0]) else f"{command[0]} not on PATH"


@register
class GpuCollector(Collector):
    """NVIDIA GPUs through NVML (nvidia-ml-py) or nvidia-smi, nvidia_gpu_exporter's metric names."""

    name: ClassVar[str] = "gpu"
    config_model: ClassVar[type[CollectorConfig]] = GpuConfig

    def __init__(self, config: CollectorConfig | None = None, *, runner: CommandRunner = run_command) -> None:
        super().__init__(config)
        if not isinstance(self.config, GpuConfig):
            raise TypeError(f"GpuCollector needs a GpuConfig, got {type(self.config).__name__}")
        self.runner = runner
        self._backend: Any = None
        self.backend_name: str | None = None

    @property
    def cfg(self) -> GpuConfig:
        assert isinstance(self.config, GpuConfig)
        return self.config

    def _nvml_reason(self) -> str | None:
        from collectors.gpu_nvml import nvml_reason

        return nvml_reason()

    def availability(self) -> str | None:
        want = self.cfg.backend
        nvml = self._nvml_reason() if want in ("auto", "nvml") else "not tried (backend: nvidia-smi)"
        if nvml is None:
            return None
        if want == "nvml":
            return f"NVML unavailable: {nvml}"
        smi = _smi_reason(self.cfg.command)
        if smi is None:
            return None
        if want == "nvidia-smi":
            return smi
        return _both(nvml, smi)

    def _open(self) -> Any:
        want = self.cfg.backend
        nvml_problem = "not tried (backend: nvidia-smi)"
        if want in ("auto", "nvml"):
            from collectors.gpu_nvml import NvmlBackend, NvmlUnavailable

            try:
                backend = NvmlBackend()
                self.backend_name = "nvml"
                return backend
            except NvmlUnavailable as exc:
                if want == "nvml":
                    raise Unavailable(f"NVML unavailable: {exc}") from None
                nvml_problem = str(exc)
        smi = _smi_reason(self.cfg.command)
        if smi is not None:
            raise Unavailable(smi if want == "nvidia-smi" else _both(nvml_problem, smi))
        self.backend_name = "nvidia-smi"
        return SmiBackend(self.cfg.command, self.cfg.timeout_s, self.runner)

    def gather(self, emit: Emit) -> None:
        if self._backend is None:
            self._backend = self._open()
        readings: list[GpuReading] = self._backend.read()
        # Attribution is an extra: when its source fails, the GPU series still go out, unlabelled,
        # and the failure is reported as a partial error (the pipeline keeps what was emitted).
        problems: list[str] = []
        jobs: dict[int, str] = {}
        pods: dict[str, dict[str, str]] = {}
        if self.cfg.slurm is not None:
            try:
                jobs = self._slurm_jobs()
            except CollectorError as exc:
                problems.append(str(exc))
        if self.cfg.pod_resources is not None:
            try:
                pods = self._pods()
            except CollectorError as exc:
                problems.append(str(exc))
        for r in readings:
            labels = {"uuid": r.uuid, "index": r.index, "name": r.name}
            job = jobs.get(int(r.index)) if r.index.isdigit() else None
            if job is not None:
                labels["hpc_job"] = job
            labels.update(pods.get(r.uuid, {}))
            emit(g.GPU_INFO, 1.0, {**labels, **r.info})
            for metric, value in r.values:
                emit(metric, value, labels)
            for xid, count in sorted(r.xids.items()):
                emit(g.XID_ERRORS, count, {**labels, "xid": str(xid)})
        if problems:
            raise AttributionError("GPU series sent without attribution: " + "; ".join(problems))

    # -- attribution -----------------------------------------------------------------------------

    def _slurm_jobs(self) -> dict[int, str]:
        s = self.cfg.slurm
        assert s is not None
        node = s.node or socket.gethostname().split(".")[0]
        if s.file is not None:
            source = str(s.file)
            try:
                data: bytes = s.file.read_bytes()
            except OSError as exc:
                raise CollectorError(f"slurm jobs file {source}: {exc.strerror or exc}") from None
        else:
            source = " ".join(s.command)
            data = run_checked(self.runner, s.command, s.timeout_s)
        try:
            return gpu_jobs_on_node(load_document(data, source), node)
        except (SlurmJSONError, ValueError) as exc:
            raise CollectorError(f"{source}: {exc}") from None

    def _pods(self) -> dict[str, dict[str, str]]:
        from collectors.gpu_pods import gpu_pods

        assert self.cfg.pod_resources is not None
        return gpu_pods(self.cfg.pod_resources, self.cfg.timeout_s)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
