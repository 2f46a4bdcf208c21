"""NVIDIA GPU metrics (collectors.gpu), one series per GPU.

Naming follows nvidia_gpu_exporter (utkuozdemir/nvidia_gpu_exporter, prefix `nvidia_smi_`), not
DCGM exporter's `DCGM_FI_DEV_*`: its names are derived from the `nvidia-smi --query-gpu` fields
we read, and its golden output over a real H100 capture is our test oracle. So each name is the
exporter's, spelled from the field (`power.draw [W]` → `nvidia_smi_power_draw_watts`), and its
types are the exporter's too (gauges), except the four ECC `_total` counts: they only grow
(volatile ones restart with the driver), and a name ending in `_total` is a counter here. The exporter's temperature names carry no unit suffix; they are kept as they are
(unit `degC`) so its dashboards work on our store unchanged.

Labels: `uuid` (lowercase, without `GPU-`, as the exporter writes it), plus `index` (nvidia-smi's
index, which is NVML's enumeration order) and `name` (the model). With attribution configured a
GPU's series also carry whom it is allocated to, under DCGM exporter's label names: `hpc_job`
(the Slurm job id, from its GRES) or `namespace`/`pod`/`container` (from the kubelet's
pod-resources API). That is one job per GPU at a time, the cardinality DCGM exporter's
`--hpc-job-mapping-dir` accepts; leave attribution off where a store must not hold job ids.

Energy and XID errors come only through NVML: `--query-gpu` has no field for either.
"""

from telemetry.catalog._core import catalog

d = catalog.define
G = ("uuid", "index", "name", "hpc_job", "namespace", "pod", "container")
INFO = (*G, "driver_version", "cuda_version", "vbios_version", "pci_bus_id", "pci_sub_device_id", "serial", "compute_cap", "driver_model_current", "driver_model_pending")

GPU_INFO = d("nvidia_smi_gpu_info", "gauge", "", "Constant 1, labelled by the GPU's identity (driver, CUDA and VBIOS versions, PCI bus id, serial, compute capability).", INFO)

UTIL_GPU = d("nvidia_smi_utilization_gpu_ratio", "gauge", "ratio", "Fraction of the last sample period in which a kernel ran on the GPU (utilization.gpu).", G)
UTIL_MEMORY = d("nvidia_smi_utilization_memory_ratio", "gauge", "ratio", "Fraction of the last sample period in which device memory was read or written (utilization.memory).", G)
UTIL_ENCODER = d("nvidia_smi_utilization_encoder_ratio", "gauge", "ratio", "Video encoder utilisation (utilization.encoder).", G)
UTIL_DECODER = d("nvidia_smi_utilization_decoder_ratio", "gauge", "ratio", "Video decoder utilisation (utilization.decoder).", G)

MEMORY_TOTAL = d("nvidia_smi_memory_total_bytes", "gauge", "bytes", "Installed device memory (memory.total).", G)
MEMORY_USED = d("nvidia_smi_memory_used_bytes", "gauge", "bytes", "Device memory allocated by contexts (memory.used).", G)
MEMORY_FREE = d("nvidia_smi_memory_free_bytes", "gauge", "bytes", "Free device memory (memory.free).", G)
MEMORY_RESERVED = d("nvidia_smi_memory_reserved_bytes", "gauge", "bytes", "Device memory the driver reserves (memory.reserved).", G)

POWER_DRAW = d("nvidia_smi_power_draw_watts", "gauge", "watts", "Board power draw (power.draw; NVML nvmlDeviceGetPowerUsage).", G)
POWER_DRAW_AVERAGE = d("nvidia_smi_power_draw_average_watts", "gauge", "watts", "Board power draw averaged over one second (power.draw.average).", G)
POWER_DRAW_INSTANT = d("nvidia_smi_power_draw_instant_watts", "gauge", "watts", "Instantaneous board power draw (power.draw.instant).", G)
POWER_LIMIT = d("nvidia_smi_power_limit_watts", "gauge", "watts", "Software power limit (power.limit).", G)
POWER_ENFORCED_LIMIT = d("nvidia_smi_enforced_power_limit_watts", "gauge", "watts", "Power limit the driver enforces, the lowest of all limits (enforced.power.limit).", G)
ENERGY = d("nvidia_smi_energy_joules_total", "counter", "joules", "Energy consumed since the driver was loaded (NVML nvmlDeviceGetTotalEnergyConsumption, Volta and later). NVML only: nvidia-smi --query-gpu has no such field.", G)

TEMP_GPU = d("nvidia_smi_temperature_gpu", "gauge", "degC", "GPU core temperature in degrees Celsius (temperature.gpu).", G)
TEMP_MEMORY = d("nvidia_smi_temperature_memory", "gauge", "degC", "HBM temperature in degrees Celsius (temperature.memory).", G)
TEMP_TLIMIT = d("nvidia_smi_temperature_gpu_tlimit", "gauge", "degC", "Headroom in degrees Celsius before the GPU slows down for heat (temperature.gpu.tlimit).", G)
FAN_SPEED = d("nvidia_smi_fan_speed_ratio", "gauge", "ratio", "Intended fan speed (fan.speed); absent on passively cooled boards.", G)
PSTATE = d("nvidia_smi_pstate", "gauge", "", "Performance state, 0 (P0, maximum) to 12 (minimum) (pstate).", G)

CLOCK_GRAPHICS = d("nvidia_smi_clocks_current_graphics_clock_hz", "gauge", "hertz", "Graphics clock (clocks.current.graphics).", G)
CLOCK_SM = d("nvidia_smi_clocks_current_sm_clock_hz", "gauge", "hertz", "Streaming-multiprocessor clock (clocks.current.sm).", G)
CLOCK_MEMORY = d("nvidia_smi_clocks_current_memory_clock_hz", "gauge", "hertz", "Memory clock (clocks.current.memory).", G)
CLOCK_VIDEO = d("nvidia_smi_clocks_current_video_clock_hz", "gauge", "hertz", "Video encoder/decoder clock (clocks.current.video).", G)
CLOCK_MAX_GRAPHICS = d("nvidia_smi_clocks_max_graphics_clock_hz", "gauge", "hertz", "Maximum graphics clock (clocks.max.graphics).", G)
CLOCK_MAX_SM = d("nvidia_smi_clocks_max_sm_clock_hz", "gauge", "hertz", "Maximum SM clock (clocks.max.sm).", G)
CLOCK_MAX_MEMORY = d("nvidia_smi_clocks_max_memory_clock_hz", "gauge", "hertz", "Maximum memory clock (clocks.max.memory).", G)

EVENT_REASONS_ACTIVE = d("nvidia_smi_clocks_event_reasons_active", "gauge", "", "Bitmask of the reasons clocks are held down now (clocks_event_reasons.active; NVML nvmlClocksEventReason*). Drivers before clocks_event_reasons report no throttle series.", G)
EVENT_GPU_IDLE = d("nvidia_smi_clocks_event_reasons_gpu_idle", "gauge", "", "1 while clocks are low because nothing runs (clocks_event_reasons.gpu_idle).", G)
EVENT_SW_POWER_CAP = d("nvidia_smi_clocks_event_reasons_sw_power_cap", "gauge", "", "1 while the software power cap holds clocks down (clocks_event_reasons.sw_power_cap).", G)
EVENT_HW_SLOWDOWN = d("nvidia_smi_clocks_event_reasons_hw_slowdown", "gauge", "", "1 while hardware slowdown (heat, power brake) halves clocks or more (clocks_event_reasons.hw_slowdown).", G)
EVENT_HW_THERMAL = d("nvidia_smi_clocks_event_reasons_hw_thermal_slowdown", "gauge", "", "1 during hardware thermal slowdown (clocks_event_reasons.hw_thermal_slowdown).", G)
EVENT_HW_POWER_BRAKE = d("nvidia_smi_clocks_event_reasons_hw_power_brake_slowdown", "gauge", "", "1 while the external power brake is asserted (clocks_event_reasons.hw_power_brake_slowdown).", G)
EVENT_SW_THERMAL = d("nvidia_smi_clocks_event_reasons_sw_thermal_slowdown", "gauge", "", "1 during software thermal slowdown (clocks_event_reasons.sw_thermal_slowdown).", G)
EVENT_SW_POWER_CAP_TIME = d("nvidia_smi_clocks_event_reasons_counters_sw_power_cap_seconds", "gauge", "seconds", "Time clocks were held down by the power cap since the driver loaded (clocks_event_reasons_counters.sw_power_cap).", G)
EVENT_HW_THERMAL_TIME = d("nvidia_smi_clocks_event_reasons_counters_hw_thermal_slowdown_seconds", "gauge", "seconds", "Time in hardware thermal slowdown since the driver loaded (clocks_event_reasons_counters.hw_thermal_slowdown).", G)
EVENT_SW_THERMAL_TIME = d("nvidia_smi_clocks_event_reasons_counters_sw_thermal_slowdown_seconds", "gauge", "seconds", "Time in software thermal slowdown since the driver loaded (clocks_event_reasons_counters.sw_thermal_slowdown).", G)
EVENT_HW_POWER_BRAKE_TIME = d("nvidia_smi_clocks_event_reasons_counters_hw_power_brake_slowdown_seconds", "gauge", "seconds", "Time under the power brake since the driver loaded (clocks_event_reasons_counters.hw_power_brake_slowdown).", G)

ECC_MODE = d("nvidia_smi_ecc_mode_current", "gauge", "", "1 when ECC is on (ecc.mode.current).", G)
ECC_CORRECTED_VOLATILE = d("nvidia_smi_ecc_errors_corrected_volatile_total", "counter", "errors", "Corrected ECC errors since the driver loaded, all memories (ecc.errors.corrected.volatile.total).", G)
ECC_CORRECTED_AGGREGATE = d("nvidia_smi_ecc_errors_corrected_aggregate_total", "counter", "errors", "Corrected ECC errors over the GPU's life (ecc.errors.corrected.aggregate.total).", G)
ECC_UNCORRECTED_VOLATILE = d("nvidia_smi_ecc_errors_uncorrected_volatile_total", "counter", "errors", "Uncorrected ECC errors since the driver loaded, all memories (ecc.errors.uncorrected.volatile.total).", G)
ECC_UNCORRECTED_AGGREGATE = d("nvidia_smi_ecc_errors_uncorrected_aggregate_total", "counter", "errors", "Uncorrected ECC errors over the GPU's life (ecc.errors.uncorrected.aggregate.total).", G)
ECC_CORRECTED_VOLATILE_DRAM = d("nvidia_smi_ecc_errors_corrected_volatile_dram", "gauge", "errors", "Corrected DRAM ECC errors since the driver loaded (ecc.errors.corrected.volatile.dram).", G)
ECC_UNCORRECTED_VOLATILE_DRAM = d("nvidia_smi_ecc_errors_uncorrected_volatile_dram", "gauge", "errors", "Uncorrected DRAM ECC errors since the driver loaded (ecc.errors.uncorrected.volatile.dram).", G)
REMAPPED_CORRECTABLE = d("nvidia_smi_remapped_rows_correctable", "gauge", "rows", "Memory rows remapped after correctable errors (remapped_rows.correctable).", G)
REMAPPED_UNCORRECTABLE = d("nvidia_smi_remapped_rows_uncorrectable", "gauge", "rows", "Memory rows remapped after uncorrectable errors (remapped_rows.uncorrectable).", G)
REMAPPED_PENDING = d("nvidia_smi_remapped_rows_pending", "gauge", "", "1 when a row remap waits for a GPU reset (remapped_rows.pending).", G)
REMAPPED_FAILURE = d("nvidia_smi_remapped_rows_failure", "gauge", "", "1 when a row remap failed (remapped_rows.failure): the GPU needs service.", G)
XID_ERRORS = d("nvidia_smi_xid_errors_total", "counter", "errors", "XID errors seen since the collector started, by XID code (NVML event nvmlEventTypeXidCriticalError). NVML only: nvidia-smi --query-gpu reports no XIDs.", (*G, "xid"))

PCIE_GEN = d("nvidia_smi_pcie_link_gen_current", "gauge", "", "Current PCIe link generation (pcie.link.gen.current; lower than max while idle).", G)
PCIE_GEN_MAX = d("nvidia_smi_pcie_link_gen_max", "gauge", "", "Maximum PCIe link generation of GPU and host together (pcie.link.gen.max).", G)
PCIE_WIDTH = d("nvidia_smi_pcie_link_width_current", "gauge", "lanes", "Current PCIe link width (pcie.link.width.current).", G)
PCIE_WIDTH_MAX = d("nvidia_smi_pcie_link_width_max", "gauge", "lanes", "Maximum PCIe link width (pcie.link.width.max).", G)

MIG_MODE = d("nvidia_smi_mig_mode_current", "gauge", "", "1 when the GPU is partitioned into MIG instances (mig.mode.current); per-instance series are not collected.", G)
PERSISTENCE_MODE = d("nvidia_smi_persistence_mode", "gauge", "", "1 when persistence mode keeps the driver loaded without clients (persistence_mode).", G)
