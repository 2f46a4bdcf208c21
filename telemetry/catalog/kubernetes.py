"""Kubernetes metrics: the kubelet's `/stats/summary` (collectors.kubelet) and the API's nodes and
pods (collectors.kubernetes).

Names, in order of preference: the kubelet's own `/metrics/resource` (node_/pod_/container_
cpu_usage_seconds_total, *_memory_working_set_bytes, container_start_time_seconds), cAdvisor's
(container_fs_*, container_network_* which cAdvisor reports for the pod's sandbox), kube-state-
metrics' for API objects (kube_node_status_capacity/allocatable/condition, kube_node_spec_taint,
kube_node_spec_unschedulable), and `ctwin_kube_*` for what only ctwin derives. The per-container
CPU and memory families that also mean the same for cgroups (container_cpu_usage_seconds_total,
container_memory_usage_bytes, container_memory_rss_bytes) are telemetry.catalog.container's,
reused with their `pod` and `namespace` labels. A node's network counters are the container_network_*
families without pod labels, as cAdvisor reports them for its root container: node_exporter's
node_network_* stay the local host's, whose interfaces the twin's links measure.

`pod` and `namespace` labels are as the kubelet and cAdvisor carry them; the twin watches none of
these families but `ctwin_kube_virtual_node_capacity_missing` (a site's capacity is unknown while
one is 1), so they stay in the store and never reach /metrics.
"""

from telemetry.catalog._core import catalog

d = catalog.define
POD = ("namespace", "pod")
CTR = ("namespace", "pod", "container")
FS = ("fs",)
CTR_FS = (*CTR, "fs")
IFACE = (*POD, "interface")  # namespace and pod absent: the node (cAdvisor's root container)

# --- kubelet /stats/summary: the node
NODE_CPU = d("node_cpu_usage_seconds_total", "counter", "seconds", "CPU time the node consumed (kubelet usageCoreNanoSeconds; kubelet /metrics/resource name).")
NODE_CPU_CORES = d("node_cpu_usage_cores", "gauge", "cores", "CPU cores the node used, averaged by the kubelet over its last housekeeping interval (usageNanoCores / 1e9).")
NODE_MEM_WS = d("node_memory_working_set_bytes", "gauge", "bytes", "The node's memory working set: usage minus inactive file pages (kubelet /metrics/resource name).")
NODE_MEM_USAGE = d("node_memory_usage_bytes", "gauge", "bytes", "The node's memory usage, page cache included (kubelet usageBytes).")
NODE_MEM_RSS = d("node_memory_rss_bytes", "gauge", "bytes", "The node's anonymous and swap cache memory (kubelet rssBytes).")
NODE_FS_CAPACITY = d("node_fs_capacity_bytes", "gauge", "bytes", "Size of the kubelet's filesystems: fs=nodefs (its root dir) or imagefs (the runtime's images).", FS)
NODE_FS_AVAILABLE = d("node_fs_available_bytes", "gauge", "bytes", "Bytes available on the kubelet's filesystem.", FS)
NODE_FS_USED = d("node_fs_used_bytes", "gauge", "bytes", "Bytes used on the kubelet's filesystem (imagefs: by images).", FS)
NODE_FS_INODES = d("node_fs_inodes", "gauge", "inodes", "Inodes of the kubelet's filesystem.", FS)
NODE_FS_INODES_FREE = d("node_fs_inodes_free", "gauge", "inodes", "Free inodes of the kubelet's filesystem.", FS)
NODE_FS_INODES_USED = d("node_fs_inodes_used", "gauge", "inodes", "Inodes used on the kubelet's filesystem (imagefs: by images).", FS)

# --- kubelet /stats/summary: pods
POD_CPU = d("pod_cpu_usage_seconds_total", "counter", "seconds", "CPU time the pod's containers consumed (kubelet /metrics/resource name).", POD)
POD_CPU_CORES = d("pod_cpu_usage_cores", "gauge", "cores", "CPU cores the pod used over the kubelet's last housekeeping interval.", POD)
POD_MEM_WS = d("pod_memory_working_set_bytes", "gauge", "bytes", "The pod's memory working set (kubelet /metrics/resource name).", POD)
POD_MEM_USAGE = d("pod_memory_usage_bytes", "gauge", "bytes", "The pod's memory usage, page cache included.", POD)
POD_MEM_RSS = d("pod_memory_rss_bytes", "gauge", "bytes", "The pod's anonymous and swap cache memory.", POD)
POD_NET_RX = d("container_network_receive_bytes_total", "counter", "bytes", "Bytes the pod received on the interface (cAdvisor's name; it reports pod networks for the pod sandbox).", IFACE)
POD_NET_TX = d("container_network_transmit_bytes_total", "counter", "bytes", "Bytes the pod transmitted on the interface (cAdvisor's name).", IFACE)
POD_NET_RX_ERRS = d("container_network_receive_errors_total", "counter", "errors", "Errors receiving on the pod's interface (cAdvisor's name).", IFACE)
POD_NET_TX_ERRS = d("container_network_transmit_errors_total", "counter", "errors", "Errors transmitting on the pod's interface (cAdvisor's name).", IFACE)
POD_EPHEMERAL_USED = d("pod_ephemeral_storage_used_bytes", "gauge", "bytes", "Local ephemeral storage the pod uses: its containers' rootfs and logs and its emptyDir volumes.", POD)
POD_EPHEMERAL_CAPACITY = d("pod_ephemeral_storage_capacity_bytes", "gauge", "bytes", "Size of the filesystem that holds the pod's ephemeral storage.", POD)
POD_EPHEMERAL_INODES_USED = d("pod_ephemeral_storage_inodes_used", "gauge", "inodes", "Inodes the pod's ephemeral storage uses.", POD)

# --- kubelet /stats/summary: containers (cpu_usage_seconds_total, memory usage and rss: catalog.container)
CTR_CPU_CORES = d("container_cpu_usage_cores", "gauge", "cores", "CPU cores the container used over the kubelet's last housekeeping interval.", CTR)
CTR_MEM_WS = d("container_memory_working_set_bytes", "gauge", "bytes", "The container's memory working set: what the kubelet evicts and the OOM killer acts on (kubelet and cAdvisor name).", CTR)
CTR_START = d("container_start_time_seconds", "gauge", "seconds", "When the container started, in unix seconds (kubelet /metrics/resource name).", CTR)
CTR_FS_USAGE = d("container_fs_usage_bytes", "gauge", "bytes", "Bytes the container uses on a filesystem: fs=rootfs (its writable layer) or logs (cAdvisor's name).", CTR_FS)
CTR_FS_LIMIT = d("container_fs_limit_bytes", "gauge", "bytes", "Size of the filesystem holding the container's rootfs or logs (cAdvisor's name).", CTR_FS)
CTR_FS_INODES = d("container_fs_inodes", "gauge", "inodes", "Inodes of that filesystem (cAdvisor calls it container_fs_inodes_total, a gauge; our catalog keeps _total for counters).", CTR_FS)
CTR_FS_INODES_FREE = d("container_fs_inodes_free", "gauge", "inodes", "Free inodes of that filesystem (cAdvisor's name).", CTR_FS)
CTR_FS_INODES_USED = d("container_fs_inodes_used", "gauge", "inodes", "Inodes the container uses on that filesystem.", CTR_FS)

# --- the Kubernetes API: nodes (kube-state-metrics names; resource as it spells it, e.g. nvidia_com_gpu)
NODE_CAPACITY = d("kube_node_status_capacity", "gauge", "", "A node's capacity of a resource, in `unit` (core, byte, integer).", ("node", "resource", "unit"))
NODE_ALLOCATABLE = d("kube_node_status_allocatable", "gauge", "", "What of a node's resource pods may request, in `unit`.", ("node", "resource", "unit"))
NODE_CONDITION = d("kube_node_status_condition", "gauge", "", "1 for the status a node's condition has (true, false, unknown), 0 for the other two.", ("node", "condition", "status"))
NODE_TAINT = d("kube_node_spec_taint", "gauge", "", "1 for each taint of a node.", ("node", "key", "value", "effect"))
NODE_UNSCHEDULABLE = d("kube_node_spec_unschedulable", "gauge", "", "1 when the node is cordoned (spec.unschedulable), else 0.", ("node",))
VIRTUAL_NODE = d("ctwin_kube_virtual_node", "gauge", "", "1 for an interLink virtual node, with the ctwin site it fronts in remote_site (empty: nothing maps it); 0 for a plain node.", ("node", "remote_site"))
VIRTUAL_NO_CAPACITY = d("ctwin_kube_virtual_node_capacity_missing", "gauge", "", "1 when an interLink virtual node reports no (zero or absent) allocatable cpu or memory: the remote site's plugin says nothing, which is not the same as a drained site, so the twin counts the cluster's capacity as unknown; 0 otherwise.", ("node", "remote_site", "resource"))
NODE_TAINTS = d("ctwin_kube_node_taints", "gauge", "", "How many taints a node has (the taints themselves: kube_node_spec_taint).", ("node",))

# --- the Kubernetes API: pods, counted (per-pod detail is in the job history, source "kubernetes")
PODS = d("ctwin_kube_pods", "gauge", "pods", "Pods by phase, node (empty while unscheduled) and namespace.", ("phase", "node", "namespace"))
POD_REQUESTS = d("ctwin_kube_pod_requests", "gauge", "", "Effective requests of the pods by phase, node and namespace, as the scheduler counts them; cpu in cores, memory in bytes, GPUs as counted.", ("phase", "node", "namespace", "resource"))
PODS_PENDING = d("ctwin_kube_pods_pending", "gauge", "pods", "Pending pods by the reason of their PodScheduled=False condition (Unschedulable, ...; `none` while not yet tried).", ("reason",))
