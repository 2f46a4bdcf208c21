"""Per-container (cgroup) metrics, for cgroup v1 and v2 alike. Names follow cAdvisor's so that
Kubernetes users recognise them; `container` is the cgroup path below the hierarchy root."""

from telemetry.catalog._core import catalog

d = catalog.define
C = ("container",)
K = ("container", "pod", "namespace")  # also emitted by the kubelet collector, per pod (catalog.kubernetes)

CPU_USAGE = d("container_cpu_usage_seconds_total", "counter", "seconds", "CPU time consumed.", K)
CPU_USER = d("container_cpu_user_seconds_total", "counter", "seconds", "CPU time consumed in user mode.", C)
CPU_SYSTEM = d("container_cpu_system_seconds_total", "counter", "seconds", "CPU time consumed in kernel mode.", C)
CFS_PERIODS = d("container_cpu_cfs_periods_total", "counter", "periods", "Elapsed CFS enforcement periods.", C)
CFS_THROTTLED_PERIODS = d("container_cpu_cfs_throttled_periods_total", "counter", "periods", "CFS periods in which the container was throttled.", C)
CFS_THROTTLED_SECONDS = d("container_cpu_cfs_throttled_seconds_total", "counter", "seconds", "Total time the container was throttled.", C)
CPU_QUOTA = d("container_spec_cpu_quota_cores", "gauge", "cores", "CPU limit in cores (quota / period); absent when unlimited.", C)

MEM_USAGE = d("container_memory_usage_bytes", "gauge", "bytes", "Current memory usage, including page cache.", K)
MEM_LIMIT = d("container_spec_memory_limit_bytes", "gauge", "bytes", "Memory limit; absent when unlimited.", C)
MEM_ANON = d("container_memory_rss_bytes", "gauge", "bytes", "Anonymous memory (rss in v1, anon in v2; the kubelet's rssBytes).", K)
MEM_FILE = d("container_memory_cache_bytes", "gauge", "bytes", "Page cache memory (cache in v1, file in v2).", C)
MEM_OOM_KILLS = d("container_oom_events_total", "counter", "events", "OOM kills inside the container.", C)

IO_READ_BYTES = d("container_fs_reads_bytes_total", "counter", "bytes", "Bytes read from block devices.", ("container", "device"))
IO_WRITE_BYTES = d("container_fs_writes_bytes_total", "counter", "bytes", "Bytes written to block devices.", ("container", "device"))
IO_READS = d("container_fs_reads_total", "counter", "operations", "Read operations on block devices.", ("container", "device"))
IO_WRITES = d("container_fs_writes_total", "counter", "operations", "Write operations on block devices.", ("container", "device"))

PIDS = d("container_pids", "gauge", "processes", "Processes (tasks) in the container.", C)

PSI_CPU_WAITING = d("container_pressure_cpu_waiting_seconds_total", "counter", "seconds", "Time some task waited for CPU (PSI some).", C)
PSI_MEM_WAITING = d("container_pressure_memory_waiting_seconds_total", "counter", "seconds", "Time some task waited for memory (PSI some).", C)
PSI_MEM_STALLED = d("container_pressure_memory_stalled_seconds_total", "counter", "seconds", "Time all tasks stalled on memory (PSI full).", C)
PSI_IO_WAITING = d("container_pressure_io_waiting_seconds_total", "counter", "seconds", "Time some task waited for I/O (PSI some).", C)
PSI_IO_STALLED = d("container_pressure_io_stalled_seconds_total", "counter", "seconds", "Time all tasks stalled on I/O (PSI full).", C)
PSI_CPU_STALLED = d("container_pressure_cpu_stalled_seconds_total", "counter", "seconds", "Time all non-idle tasks stalled on CPU (PSI full, v2 only).", C)

# The collector's own bound on label cardinality (collectors.containers: max_containers).
CONTAINERS_DROPPED = d("ctwin_containers_dropped", "gauge", "cgroups", "Cgroups that matched the filters but were not reported because max_containers was reached.")
