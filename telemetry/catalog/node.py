"""Host metrics from /proc and /sys. Names follow node_exporter where it has one, so dashboards
and PromQL written for node_exporter read our data unchanged."""

from telemetry.catalog._core import catalog

d = catalog.define

CPU_SECONDS = d("node_cpu_seconds_total", "counter", "seconds", "Seconds the CPUs spent in each mode.", ("cpu", "mode"))
CPU_GUEST_SECONDS = d("node_cpu_guest_seconds_total", "counter", "seconds", "Seconds the CPUs spent running guests (VMs), per mode; already counted in user and nice.", ("cpu", "mode"))
CPU_COUNT = d("node_cpu_count", "gauge", "cpus", "Number of logical CPUs online.")
BOOT_TIME = d("node_boot_time_seconds", "gauge", "seconds", "Node boot time, in unixtime.")
CONTEXT_SWITCHES = d("node_context_switches_total", "counter", "switches", "Total number of context switches.")
PROCS_RUNNING = d("node_procs_running", "gauge", "processes", "Number of processes in runnable state.")
PROCS_BLOCKED = d("node_procs_blocked", "gauge", "processes", "Number of processes blocked waiting for I/O.")
INTERRUPTS = d("node_intr_total", "counter", "interrupts", "Total interrupts serviced.")
FORKS = d("node_forks_total", "counter", "forks", "Total processes and threads created.")

LOAD1 = d("node_load1", "gauge", "", "1m load average.")
LOAD5 = d("node_load5", "gauge", "", "5m load average.")
LOAD15 = d("node_load15", "gauge", "", "15m load average.")

MEM_TOTAL = d("node_memory_MemTotal_bytes", "gauge", "bytes", "Total usable memory (MemTotal).")
MEM_FREE = d("node_memory_MemFree_bytes", "gauge", "bytes", "Unused memory (MemFree).")
MEM_AVAILABLE = d("node_memory_MemAvailable_bytes", "gauge", "bytes", "Memory available for new work without swapping (MemAvailable).")
MEM_BUFFERS = d("node_memory_Buffers_bytes", "gauge", "bytes", "Block-device buffers (Buffers).")
MEM_CACHED = d("node_memory_Cached_bytes", "gauge", "bytes", "Page cache (Cached).")
MEM_SHMEM = d("node_memory_Shmem_bytes", "gauge", "bytes", "Shared memory and tmpfs (Shmem).")
SWAP_TOTAL = d("node_memory_SwapTotal_bytes", "gauge", "bytes", "Total swap (SwapTotal).")
SWAP_FREE = d("node_memory_SwapFree_bytes", "gauge", "bytes", "Unused swap (SwapFree).")

DISK_READS = d("node_disk_reads_completed_total", "counter", "operations", "Reads completed.", ("device",))
DISK_WRITES = d("node_disk_writes_completed_total", "counter", "operations", "Writes completed.", ("device",))
DISK_READ_BYTES = d("node_disk_read_bytes_total", "counter", "bytes", "Bytes read.", ("device",))
DISK_WRITTEN_BYTES = d("node_disk_written_bytes_total", "counter", "bytes", "Bytes written.", ("device",))
DISK_READ_TIME = d("node_disk_read_time_seconds_total", "counter", "seconds", "Seconds spent reading.", ("device",))
DISK_WRITE_TIME = d("node_disk_write_time_seconds_total", "counter", "seconds", "Seconds spent writing.", ("device",))
DISK_IO_TIME = d("node_disk_io_time_seconds_total", "counter", "seconds", "Seconds spent doing I/Os.", ("device",))
DISK_IO_NOW = d("node_disk_io_now", "gauge", "operations", "I/Os currently in progress.", ("device",))

FS_SIZE = d("node_filesystem_size_bytes", "gauge", "bytes", "Filesystem size.", ("device", "mountpoint", "fstype"))
FS_FREE = d("node_filesystem_free_bytes", "gauge", "bytes", "Free filesystem space.", ("device", "mountpoint", "fstype"))
FS_AVAIL = d("node_filesystem_avail_bytes", "gauge", "bytes", "Filesystem space available to non-root users.", ("device", "mountpoint", "fstype"))
FS_FILES = d("node_filesystem_files", "gauge", "inodes", "Total inodes.", ("device", "mountpoint", "fstype"))
FS_FILES_FREE = d("node_filesystem_files_free", "gauge", "inodes", "Free inodes.", ("device", "mountpoint", "fstype"))
FS_DEVICE_ERROR = d("node_filesystem_device_error", "gauge", "", "1 when statfs on the mount point failed (its size samples are then absent), else 0.", ("device", "mountpoint", "fstype"))

PSI_CPU_WAITING = d("node_pressure_cpu_waiting_seconds_total", "counter", "seconds", "Time some runnable task waited for CPU (PSI some).")
PSI_MEM_WAITING = d("node_pressure_memory_waiting_seconds_total", "counter", "seconds", "Time some task waited for memory (PSI some).")
PSI_MEM_STALLED = d("node_pressure_memory_stalled_seconds_total", "counter", "seconds", "Time all non-idle tasks stalled on memory (PSI full).")
PSI_IO_WAITING = d("node_pressure_io_waiting_seconds_total", "counter", "seconds", "Time some task waited for I/O (PSI some).")
PSI_IO_STALLED = d("node_pressure_io_stalled_seconds_total", "counter", "seconds", "Time all non-idle tasks stalled on I/O (PSI full).")
PSI_IRQ_STALLED = d("node_pressure_irq_stalled_seconds_total", "counter", "seconds", "Time all non-idle tasks stalled on IRQ handling (PSI full; kernels with CONFIG_IRQ_TIME_ACCOUNTING).")
# Derived by ctwin (no node_exporter equivalent): one series per host, so the twin can draw and
# query thousands of hosts over a day without reassembling per-CPU counters.
CPU_BUSY_RATIO = d("node_cpu_busy_ratio", "gauge", "ratio", "Busy share of all CPUs since the previous collection: 1 - (idle + iowait) / all, 0..1 (ctwin-derived).")
MEM_USED_RATIO = d("node_memory_used_ratio", "gauge", "ratio", "Share of memory in use: 1 - MemAvailable / MemTotal, 0..1 (ctwin-derived).")
