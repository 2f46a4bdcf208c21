"""The twin's live state: the latest value of every watched series and every site's active queue,
folded from the pipeline's batches (ARCHITECTURE.md, data flow 3-4).

Why this shape:
- `LiveState` is a pipeline sink. Each batch is folded into a new immutable `Snapshot` that
  replaces the old one in a single reference assignment, so readers (API, `/metrics`, Dash) never
  lock, never see half a batch, and never do I/O for current values.
- Only the families the views need are kept (`WATCHED`), with the previous value of each series,
  so counters become rates without a store query.
- Derived per-host and per-site lookups (`SnapshotIndex`) are computed once per snapshot version.
- Job rows are handed on to the observers given at construction (the forecast and runtime
  trackers score their predictions against them), so the sink knows nothing of forecasting.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from telemetry.catalog import batch as bm
from telemetry.catalog import container as cm
from telemetry.catalog import kubernetes as km
from telemetry.catalog import links as lm
from telemetry.catalog import network as netm
from telemetry.catalog import node as nm
from telemetry.jobs import empty_jobs
from telemetry.schema import Batch
from twin.topology import Topology

__all__ = [
    "ACTIVE_STATES",
    "BATCH_METRICS",
    "CONTAINER_METRICS",
    "HOST_METRICS",
    "LINK_METRICS",
    "PROBE_METRICS",
    "WATCHED",
    "JobObserver",
    "LiveState",
    "Point",
    "Snapshot",
    "SnapshotIndex",
]

HOST_METRICS = (
    nm.CPU_COUNT.name,
    nm.CPU_BUSY_RATIO.name,
    nm.LOAD1.name,
    nm.MEM_TOTAL.name,
    nm.MEM_AVAILABLE.name,
    nm.MEM_USED_RATIO.name,
)
CONTAINER_METRICS = (cm.CPU_USAGE.name, cm.MEM_USAGE.name, cm.MEM_LIMIT.name)
LINK_METRICS = (netm.NET_RX_BYTES.name, netm.NET_TX_BYTES.name)
PROBE_METRICS = (lm.RTT.name, lm.RTT_LAST.name, lm.THROUGHPUT.name, lm.THROUGHPUT_LAST.name)
"""Link series of the active probes (collectors.link_probe), labelled with the link's ends a and b."""
BATCH_METRICS = (
    bm.NODES.name,
    bm.CPUS.name,
    bm.JOBS.name,
    bm.JOBS_CPUS.name,
    bm.MEMORY.name,
    bm.REPLAY_TIME.name,
    km.VIRTUAL_NO_CAPACITY.name,  # a Kubernetes site: its capacity is unknown while one is 1
)
WATCHED: frozenset[str] = frozenset((*HOST_METRICS, *CONTAINER_METRICS, *LINK_METRICS, *BATCH_METRICS, *PROBE_METRICS))
"""The families the twin keeps current; everything else is only in the store."""

ACTIVE_STATES = ("PENDING", "RUNNING")

JobObserver = Callable[[str, pl.DataFrame], object]
"""Called with (site, that site's job rows of one hand-over), after the snapshot moved on."""


@dataclass(frozen=True, slots=True)
class Point:
    value: float
    ts_ns: int
    prev_value: float | None = None
    prev_ts_ns: int | None = None

    def rate(self) -> float | None:
        """Per-second increase since the previous sample; None across a counter reset."""
        if self.prev_value is None or self.prev_ts_ns is None or self.ts_ns <= self.prev_ts_ns:
            return None
        delta = self.value - self.prev_value
        return None if delta < 0 else delta / ((self.ts_ns - self.prev_ts_ns) / 1e9)


@dataclass(frozen=True)
class Snapshot:
    """Immutable: replaced, never changed. `points` maps (metric, canonical labels) to the latest
    point; `jobs` each batch site's pending and running jobs; `jobs_seen_s` when they were handed in."""

    version: int = 0
    points: Mapping[tuple[str, str], Point] = field(default_factory=dict)
    jobs: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    jobs_seen_s: Mapping[str, float] = field(default_factory=dict)


@dataclass
class SnapshotIndex:
    """Per-snapshot lookups, built once per version."""

    hosts: dict[tuple[str, str], dict[str, Point]]
    containers: dict[tuple[str, str, str], dict[str, Point]]
    batch: dict[str, list[tuple[str, Mapping[str, str], Point]]]
    interfaces: dict[str, dict[str, Point]]
    """device -> metric -> point (the local host's netdev counters that links name)."""
    links: dict[tuple[str, str], dict[str, Point]] = field(default_factory=dict)
    """(a, b) in sorted order -> probe metric -> the newest point of any probe of that link (links
    are undirected; a probe of each direction, or from each end, is one link's measurement)."""


class LiveState:
    """A pipeline Sink (`write`, `write_jobs`) holding the latest snapshot."""

    def __init__(
        self,
        topology: Topology,
        *,
        job_observers: Sequence[JobObserver] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.topology = topology
        self.job_observers = tuple(job_observers)
        self._clock = clock or time.time
        self._snapshot = Snapshot()
        self._labels: dict[str, dict[str, str]] = {}
        self._write_lock = threading.Lock()
        self._index_cache: tuple[int, SnapshotIndex] | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def write(self, batch: Batch) -> None:
        frame = batch.frame.filter(pl.col("metric").is_in(list(WATCHED)))
        if frame.is_empty():
            return
        frame = frame.sort("ts_ns").unique(subset=["metric", "labels"], keep="last", maintain_order=True)
        with self._write_lock:
            old = self._snapshot
            points = dict(old.points)
            for metric, labels, value, ts_ns in frame.select("metric", "labels", "value", "ts_ns").iter_rows():
                key = (metric, labels)
                prev = points.get(key)
                if prev is not None and ts_ns <= prev.ts_ns:
                    continue  # late or repeated sample: the snapshot only moves forward
                if labels not in self._labels:
                    self._labels[labels] = json.loads(labels)
                points[key] = Point(value, ts_ns, prev.value if prev else None, prev.ts_ns if prev else None)
            self._snapshot = Snapshot(old.version + 1, points, old.jobs, old.jobs_seen_s)

    def write_jobs(self, jobs: pl.DataFrame) -> None:
        """Keep each site's active queue (pending and running jobs) as its collector last saw it."""
        active = jobs.filter(pl.col("state").is_in(ACTIVE_STATES))
        now = self._clock()
        with self._write_lock:
            old = self._snapshot
            updated = dict(old.jobs)
            seen = dict(old.jobs_seen_s)
            sites = jobs["site"].drop_nulls().unique().to_list()
            for site in sites:
                updated[site] = active.filter(pl.col("site") == site)
                seen[site] = now
            self._snapshot = Snapshot(old.version + 1, old.points, updated, seen)
        for site in sites:
            rows = jobs.filter(pl.col("site") == site)
            for observe in self.job_observers:
                observe(site, rows)

    def queue(self, site: str) -> pl.DataFrame:
        """Pending and running jobs of a batch site as last collected (JOB_SCHEMA); UnknownSiteError."""
        self.topology.site(site)
        queue = self._snapshot.jobs.get(site)
        return queue if queue is not None else empty_jobs()

    def queue_seen_s(self, site: str) -> float | None:
        """Wall time (unix s) the site's queue was last handed in; None before the first."""
        return self._snapshot.jobs_seen_s.get(site)

    def capacity_unknown(self, site: str) -> list[str]:
        """The interLink virtual nodes of a Kubernetes site that report no cpu or memory (collectors.
        kube_cluster): while there are any, the site's capacity is unknown, not what the other nodes
        add up to, and a site of only such nodes is not drained. Only flags of the site's latest
        collection count (stamped like its batch_cpus): a node deleted since keeps no old flag."""
        points = self.index().batch.get(site, [])
        latest = max((p.ts_ns for m, _labels, p in points if m == bm.CPUS.name), default=None)
        return sorted(
            {
                labels.get("node", "")
                for m, labels, p in points
                if m == km.VIRTUAL_NO_CAPACITY.name and p.value > 0 and (latest is None or p.ts_ns >= latest)
            }
        )

    def cpus_in_service(self, site: str) -> int | None:
        """A batch site's CPUs that can run jobs (allocated + idle; not down or drained); None for a
        site without a batch scheduler, or one whose capacity is unknown (`capacity_unknown`)."""
        self.topology.site(site)
        if self.capacity_unknown(site):
            return None
        cpus = [
            p.value
            for m, labels, p in self.index().batch.get(site, [])
            if m == bm.CPUS.name and labels.get("state") != "other"
        ]
        return round(sum(cpus)) if cpus else None

    def index(self) -> SnapshotIndex:
        snap = self._snapshot
        cached = self._index_cache
        if cached is not None and cached[0] == snap.version:
            return cached[1]
        hosts: dict[tuple[str, str], dict[str, Point]] = defaultdict(dict)
        containers: dict[tuple[str, str, str], dict[str, Point]] = defaultdict(dict)
        batch: dict[str, list[tuple[str, Mapping[str, str], Point]]] = defaultdict(list)
        interfaces: dict[str, dict[str, Point]] = defaultdict(dict)
        links: dict[tuple[str, str], dict[str, Point]] = defaultdict(dict)
        probe_set = set(PROBE_METRICS)
        host_set, container_set = set(HOST_METRICS), set(CONTAINER_METRICS)
        batch_set, link_set = set(BATCH_METRICS), set(LINK_METRICS)
        for (metric, raw), point in snap.points.items():
            labels = self._labels[raw]
            site = labels.get("site", "")
            if metric in host_set:
                hosts[site, labels.get("host", "")][metric] = point
            elif metric in container_set:
                containers[site, labels.get("host", ""), _container_name(labels)][metric] = point
            elif metric in batch_set:
                batch[site].append((metric, labels, point))
            elif metric in link_set:
                interfaces[labels.get("device", "")][metric] = point
            elif metric in probe_set:
                a, b = labels.get("a", ""), labels.get("b", "")
                ends = (a, b) if a <= b else (b, a)
                seen = links[ends].get(metric)
                if seen is None or point.ts_ns > seen.ts_ns:
                    links[ends][metric] = point
        index = SnapshotIndex(dict(hosts), dict(containers), dict(batch), dict(interfaces), dict(links))
        self._index_cache = (snap.version, index)
        return index

    def latest_host_points(self) -> Mapping[tuple[str, str], Mapping[str, Point]]:
        """Latest host-level points by (site, host), for exposition."""
        return self.index().hosts


def _container_name(labels: Mapping[str, str]) -> str:
    """A cgroup's path, or `namespace/pod/container` for a pod's container (the kubelet collector):
    container names repeat across pods on one node."""
    name = labels.get("container", "")
    pod = labels.get("pod")
    return f"{labels.get('namespace', '')}/{pod}/{name}" if pod else name
