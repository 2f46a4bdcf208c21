"""The twin's read interface: what the API, `/metrics` and the Dash pages may ask of the live state.

Everything here is a plain immutable value, computed from the twin's current snapshot (no I/O)
except the `*_history` calls, which read the store with server-side downsampling, and
`queue_forecast`, which simulates a batch site's queue forward (reading its recent job history).
Dashboards depend on this Protocol only, so figures can be tested against any implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, Literal, Protocol, TypeVar, get_args

import polars as pl

__all__ = [
    "STATES",
    "Aging",
    "CollectorHealth",
    "ContainerView",
    "LinkView",
    "NodeView",
    "QueueForecast",
    "SiteKind",
    "SiteView",
    "State",
    "TwinReader",
]

SiteKind = Literal["hpc", "htc", "cloud", "edge"]
State = Literal["ok", "stale", "down", "starting", "configured"]
"""ok: fresh data; stale: data older than 3 collection intervals or the last collection failed;
down: never collected successfully and failing; starting: no collection finished yet;
configured: nothing measures it (a site without collectors, a link without an interface or a
probe), so everything known comes from the config and can neither go stale nor down."""
STATES: tuple[State, ...] = get_args(State)
"""Every state, in `State`'s order (a Prometheus state set needs them all)."""


@dataclass(frozen=True)
class CollectorHealth:
    name: str
    type: str
    state: State
    interval_s: float
    last_success_s: float | None
    data_age_s: float | None
    errors: int
    last_error: str | None


@dataclass(frozen=True)
class SiteView:
    name: str
    kind: SiteKind
    description: str
    state: State
    data_age_s: float | None
    """Seconds since the newest successful collection of any of the site's collectors."""
    is_replay: bool
    trace_time_s: float | None
    """For a replayed site: the instant of the trace being shown (unix s of the original log)."""
    hosts: int
    """Hosts reporting node metrics (the local machine, cloud VMs, edge boxes)."""
    nodes_total: int | None
    nodes_busy: int | None
    cpus_total: float | None
    cpus_busy: float | None
    load: float | None
    """CPU utilisation 0..1: allocated/total CPUs on a batch site, else the mean busy share of its hosts."""
    mem_used_frac: float | None
    jobs_running: int | None
    jobs_pending: int | None
    collectors: tuple[CollectorHealth, ...]
    trace_wall_s: float | None = None
    """For a replayed site: the wall-clock instant (unix s) at which `trace_time_s` was shown."""
    trace_speed: float | None = None
    """For a replayed site: trace seconds per wall second (its replay's configured `speed`): with
    `trace_wall_s` it maps any wall instant to the site's trace clock."""

    def clock_at(self, wall_s: float) -> float | None:
        """The site's own clock at wall instant `wall_s`: the wall itself at a live site, the trace
        instant at a replayed one (None while its replay has shown none)."""
        if not self.is_replay:
            return wall_s
        if self.trace_time_s is None or self.trace_wall_s is None:
            return None
        return self.trace_time_s + (wall_s - self.trace_wall_s) * (self.trace_speed or 1.0)


@dataclass(frozen=True)
class NodeView:
    site: str
    host: str
    state: State
    data_age_s: float | None
    cpus: int | None
    cpu_util: float | None
    """Busy share of all CPUs over the last collection interval, 0..1."""
    load1: float | None
    mem_total_bytes: float | None
    mem_used_bytes: float | None
    """Total minus MemAvailable."""


@dataclass(frozen=True)
class ContainerView:
    site: str
    host: str
    container: str
    data_age_s: float | None
    cpu_cores: float | None
    """CPU cores in use over the last interval (rate of cpu seconds)."""
    mem_bytes: float | None
    mem_limit_bytes: float | None


@dataclass(frozen=True)
class LinkView:
    a: str
    b: str
    description: str
    bandwidth_bps: float | None
    """Configured capacity in bits per second."""
    latency_s: float | None
    state: State
    data_age_s: float | None
    rx_bps: float | None
    """Measured receive rate in bits per second, when the link names a local interface."""
    tx_bps: float | None
    probe_throughput_bps: float | None = None
    """Throughput an active probe measured over the link (collectors.link_probe), bits per second,
    smoothed over probes (EMA); None when the link is not probed."""
    probe_throughput_last_bps: float | None = None
    """The last probe's raw throughput."""
    probe_rtt_s: float | None = None
    """Round-trip time the probe measured (EMA of per-probe medians), seconds."""
    probe_rtt_last_s: float | None = None
    probe_throughput_age_s: float | None = None
    """Seconds since the probe last measured the throughput."""
    probe_rtt_age_s: float | None = None
    """Seconds since the probe last measured the round-trip time."""


Row = TypeVar("Row", NodeView, ContainerView)


@dataclass(frozen=True)
class Aging(Generic[Row]):
    """A latest-value row as of one snapshot, before the clock is applied: only its age (and a
    node's ok/stale state) changes between snapshots, so readers that answer every second (the
    API's JSON cache) render the rest once per snapshot. `at(now)` is the row a reader sees."""

    view: Row
    """The row with `data_age_s` unset (a node's state as if fresh, or `down` if it never reported)."""
    newest_s: float | None
    """Unix seconds of the row's newest sample; None for a declared node that never reported."""
    stale_after_s: float | None
    """Age beyond which a node turns `stale`; None for rows without a state (containers)."""

    def freshness(self, now: float) -> tuple[State | None, float | None]:
        """(the state if the row has one that ages, else None; the data age in seconds or None)."""
        if self.newest_s is None:
            return None, None
        age = max(0.0, now - self.newest_s)
        if self.stale_after_s is None:
            return None, age
        return ("ok" if age <= self.stale_after_s else "stale"), age

    def at(self, now: float) -> Row:
        state, age = self.freshness(now)
        if state is None:
            return replace(self.view, data_age_s=age)
        return replace(self.view, data_age_s=age, state=state)  # type: ignore[call-arg]  # nodes only


@dataclass(frozen=True, eq=False)
class QueueForecast:
    """A batch site's pending jobs with their predicted starts, and how good such forecasts have been.

    One value for the dashboards, so they depend on this module only and not on the simulator's
    types (`twin.forecasting.Forecast` and `ForecastAccuracy` are what LiveTwin builds it from).
    `eq=False`: a polars frame has no truth value, so value equality would raise; compare fields.
    """

    site: str
    now_s: int
    """The site's clock when its queue was read (trace time for a replayed site): every relative
    time on the page ("in 35 min", "waiting 2 h") is measured from it, never from the wall clock."""
    processors: int
    """CPUs in service the forecast packed the jobs into."""
    predictor: str
    """The runtime predictor: "ave2" (the user's last two runs), "requested" (what Slurm assumes)…"""
    jobs: pl.DataFrame
    """One row per pending job: job_id (str), submit_s, procs, req_s, predicted_start_s,
    predicted_end_s, predicted_wait_s (null start/end: the job cannot run there), scheduler_start_s
    (the scheduler's own estimate, often null), and start_early_s / start_late_s when the predictor
    gives a p10–p90 band. All times in the site's clock (unix s)."""
    corrections: Mapping[str, int] = field(default_factory=dict)
    """Jobs changed or left out to make the forecast possible, by reason (never silently)."""
    seconds: float = 0.0
    """How long the forecast took."""
    scored: int = 0
    """Past forecasts scored against the start that followed."""
    within_1min: float | None = None
    """Share of scored forecasts within ±1 min of the real start, 0..1; None before any is scored."""
    within_10min: float | None = None
    within_1h: float | None = None
    median_abs_error_s: float | None = None
    recent_errors_s: tuple[int, ...] = ()
    """The most recent errors, predicted − actual start in seconds (positive: the job started
    earlier than forecast), at most a few thousand, for a plot."""
    runtime_scored: int = 0
    """Runtime predictions of the learned model scored against the runtime that followed."""
    runtime_mean_accuracy: float | None = None
    """Mean of min(actual, predicted) / max(actual, predicted), 0..1 (1: perfect)."""
    runtime_mae_s: float | None = None


class TwinReader(Protocol):
    def sites(self) -> list[SiteView]: ...

    def site(self, name: str) -> SiteView:
        """KeyError when there is no such site."""
        ...

    def nodes(self, site: str | None = None) -> list[NodeView]: ...

    def containers(self, site: str | None = None) -> list[ContainerView]: ...

    def links(self) -> list[LinkView]: ...

    def node_history(
        self, site: str, hosts: list[str] | None, start_s: float, end_s: float, max_points: int = 2000
    ) -> pl.DataFrame:
        """Per host, CPU utilisation and memory used share over [start, end), at most `max_points`
        buckets per host: columns host (str), ts_s (float, bucket start), cpu_util, mem_used_frac."""
        ...

    def host_series(
        self, site: str, host: str, metrics: tuple[str, ...], start_s: float, end_s: float, max_points: int = 500
    ) -> pl.DataFrame:
        """One host's series of the named metrics over [start, end), downsampled in the store to at
        most `max_points` buckets per series: columns metric, labels (the series' labels as JSON),
        ts_s (bucket start), value. A counter is its per-second rate between buckets (a reset leaves
        a gap), so a page draws node_cpu_seconds_total as CPU seconds per second by mode."""
        ...

    def node_history_band(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        """Across all of a site's hosts, per bucket: columns ts_s, cpu_util and mem_used_frac (the
        mean), and their `_min` / `_max` (of the samples in the bucket). For sites with many hosts:
        one row per bucket whatever the number of hosts, computed in the store."""
        ...

    def site_history(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        """A site's load over time: columns ts_s, load, jobs_running, jobs_pending (nulls where unknown)."""
        ...

    def queue_forecast(self, site: str) -> QueueForecast:
        """A batch site's queue simulated forward from its last collected state, with the forecast's
        past accuracy. KeyError: no such site; LookupError: no batch scheduler state there (yet)."""
        ...
