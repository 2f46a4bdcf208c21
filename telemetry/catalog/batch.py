"""Batch-site state (HPC schedulers): one vocabulary for the Slurm collector and the trace replay.

A replayed SWF log and a live Slurm emit the same families with the same labels, so dashboards and
models cannot tell them apart by shape; a replay identifies itself with the extra
`batch_replay_trace_time_seconds` series (and `source="replay"` in the job history). Labels stay
bounded: `partition` (a site has a handful) and `state` (lowercase scheduler states). Job ids,
users and node names never become labels; per-job detail goes to the job history in the store.
"""

from telemetry.catalog._core import catalog

d = catalog.define
P = ("partition",)
PS = ("partition", "state")

NODES = d("batch_nodes", "gauge", "nodes", "Compute nodes by state: allocated, idle, and whatever else the scheduler reports (mixed, down, drain, ...).", ("state",))
CPUS = d("batch_cpus", "gauge", "cpus", "CPUs by state: allocated, idle, other (unavailable); their sum is the site's CPU count.", ("state",))
JOBS = d("batch_jobs", "gauge", "jobs", "Jobs in the scheduler by partition and state (pending, running, ...).", PS)
JOBS_CPUS = d("batch_jobs_cpus", "gauge", "cpus", "CPUs of the jobs in each partition and state: requested while pending, allocated while running.", PS)

SUBMITTED = d("batch_jobs_submitted_total", "counter", "jobs", "Jobs submitted since the collector started.", P)
STARTED = d("batch_jobs_started_total", "counter", "jobs", "Jobs that started running since the collector started.", P)
FINISHED = d("batch_jobs_finished_total", "counter", "jobs", "Jobs that ended since the collector started, by final state (completed, failed, cancelled, ...).", PS)

REPLAY_TIME = d("batch_replay_trace_time_seconds", "gauge", "seconds", "Instant of the workload trace a replayed site is showing, in unix seconds of the original log.", ("trace",))

# Slurm collector (collectors/slurm.py); the replay has no per-node memory, so only Slurm sites carry it.
MEMORY = d("batch_memory_bytes", "gauge", "bytes", "Memory of the compute nodes by state: allocated, idle, other (on nodes that are down, drained or failed).", ("state",))
