"""A small in-memory `TwinReader` for the dashboard tests.

The real twin is tested against the store elsewhere; here we need a read interface whose answers
we choose (a stale site, a down site, a replayed site, a reader that ignores `max_points`), so
the figures and pages can be checked against known values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import polars as pl

from twin.view import CollectorHealth, ContainerView, LinkView, NodeView, QueueForecast, SiteView, State

GIB = 2.0**30
NOW_S = 1_800_000_000.0
"""A fixed "now" for render functions (2027-01-15 08:00 UTC)."""
REPLAY_SPEED = 600.0
"""The replay's trace seconds per wall second."""
TRACE_TIME_S = 1_170_000_000.0
"""The replayed site's trace instant (2007-01-28)."""


def collector(name: str, type_: str, state: State, age: float | None, error: str | None = None) -> CollectorHealth:
    return CollectorHealth(
        name=name,
        type=type_,
        state=state,
        interval_s=5.0,
        last_success_s=None if age is None else NOW_S - age,
        data_age_s=age,
        errors=0 if error is None else 7,
        last_error=error,
    )


def site(name: str, kind: str = "cloud", state: State = "ok", **kw: object) -> SiteView:
    base = SiteView(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        description=f"{name} site",
        state=state,
        data_age_s=2.0,
        is_replay=False,
        trace_time_s=None,
        hosts=0,
        nodes_total=None,
        nodes_busy=None,
        cpus_total=None,
        cpus_busy=None,
        load=None,
        mem_used_frac=None,
        jobs_running=None,
        jobs_pending=None,
        collectors=(),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def node(site_name: str, host: str, cpu: float | None, state: State = "ok", age: float | None = 2.0) -> NodeView:
    return NodeView(
        site=site_name,
        host=host,
        state=state,
        data_age_s=age,
        cpus=8,
        cpu_util=cpu,
        load1=None if cpu is None else cpu * 8,
        mem_total_bytes=16 * GIB,
        mem_used_bytes=None if cpu is None else 4 * GIB + cpu * 8 * GIB,
    )


@dataclass
class FakeReader:
    """Answers from fixed values; histories are synthetic waves, honouring `max_points` unless told
    not to (`ignore_max_points`), to check that the figures keep their own budget."""

    site_list: list[SiteView] = field(default_factory=list)
    node_list: list[NodeView] = field(default_factory=list)
    link_list: list[LinkView] = field(default_factory=list)
    step_s: float = 60.0
    ignore_max_points: bool = False
    history_error: Exception | None = None
    history_calls: list[tuple[str, str, float, float, int]] = field(default_factory=list)
    forecasts: dict[str, QueueForecast | Exception] = field(default_factory=dict)
    """Per site, the forecast to answer or the exception to raise; a known site without an entry
    raises LookupError, like a batch site whose scheduler state has not arrived."""
    forecast_calls: list[str] = field(default_factory=list)
    host_frames: dict[tuple[str, str], pl.DataFrame] = field(default_factory=dict)
    """Per (site, host), the frame `host_series` answers (e.g. one read from a real store)."""

    def sites(self) -> list[SiteView]:
        return list(self.site_list)

    def site(self, name: str) -> SiteView:
        for s in self.site_list:
            if s.name == name:
                return s
        raise KeyError(name)

    def nodes(self, site: str | None = None) -> list[NodeView]:
        return [n for n in self.node_list if site is None or n.site == site]

    def containers(self, site: str | None = None) -> list[ContainerView]:
        return []

    def links(self) -> list[LinkView]:
        return list(self.link_list)

    def _times(self, start_s: float, end_s: float, max_points: int) -> list[float]:
        step = self.step_s
        n = max(0, math.ceil((end_s - start_s) / step))
        if not self.ignore_max_points and n > max_points:
            step, n = (end_s - start_s) / max_points, max_points
        return [start_s + i * step for i in range(n)]

    def node_history(
        self, site: str, hosts: list[str] | None, start_s: float, end_s: float, max_points: int = 2000
    ) -> pl.DataFrame:
        self.history_calls.append(("node", site, start_s, end_s, max_points))
        if self.history_error is not None:
            raise self.history_error
        names = hosts or [n.host for n in self.nodes(site)]
        ts = self._times(start_s, end_s, max_points)
        return history_frame(names, ts)

    def host_series(
        self, site: str, host: str, metrics: tuple[str, ...], start_s: float, end_s: float, max_points: int = 500
    ) -> pl.DataFrame:
        """The frame set in `host_frames` (its metrics), else none."""
        self.history_calls.append(("host", site, start_s, end_s, max_points))
        if self.history_error is not None:
            raise self.history_error
        self.site(site)
        schema = {"metric": pl.String, "labels": pl.String, "ts_s": pl.Float64, "value": pl.Float64}
        frame = self.host_frames.get((site, host), pl.DataFrame(schema=schema))
        return frame.filter(pl.col("metric").is_in(list(metrics)))

    def node_history_band(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        self.history_calls.append(("band", site, start_s, end_s, max_points))
        if self.history_error is not None:
            raise self.history_error
        frame = history_frame([n.host for n in self.nodes(site)], self._times(start_s, end_s, max_points))
        cols = ("cpu_util", "mem_used_frac")
        return (
            frame.group_by("ts_s")
            .agg(
                *(pl.col(c).mean() for c in cols),
                *(pl.col(c).min().alias(f"{c}_min") for c in cols),
                *(pl.col(c).max().alias(f"{c}_max") for c in cols),
            )
            .sort("ts_s")
        )

    def site_history(self, site: str, start_s: float, end_s: float, max_points: int = 2000) -> pl.DataFrame:
        self.history_calls.append(("site", site, start_s, end_s, max_points))
        if self.history_error is not None:
            raise self.history_error
        ts = pl.Series("ts_s", self._times(start_s, end_s, max_points), dtype=pl.Float64)
        phase = ts / 3600.0
        return pl.DataFrame(
            {
                "ts_s": ts,
                "load": 0.6 + 0.3 * phase.sin(),
                "jobs_running": (100 + 20 * phase.cos()).round().cast(pl.Int64),
                "jobs_pending": (30 + 10 * phase.sin()).round().cast(pl.Int64),
            }
        )

    def queue_forecast(self, site: str) -> QueueForecast:
        self.forecast_calls.append(site)
        self.site(site)  # KeyError for an unknown site
        answer = self.forecasts.get(site)
        if answer is None:
            raise LookupError(f"site {site!r} has no batch scheduler state (yet)")
        if isinstance(answer, Exception):
            raise answer
        return answer


def forecast_jobs(now_s: int, n: int, *, scheduler: bool = False, band: bool = False, wide: int = 0) -> pl.DataFrame:
    """`n` pending jobs as a forecast frame: job i was submitted (i + 1) × 10 min before `now_s`,
    asks for 2^(i mod 6) CPUs and (i mod 4 + 1) h, and is predicted to start i × 15 min from now
    in reverse job order (so sorting by predicted start is visible), running (i mod 3 + 1) × 20 min.
    `scheduler`: the scheduler's estimate, 1 h later than ours; `band`: ±10 min; `wide`: extra
    jobs the site cannot run (no predicted start)."""
    idx = list(range(n))
    starts = [now_s + (n - 1 - i) * 900 for i in idx]
    frame = pl.DataFrame(
        {
            "job_id": [str(1000 + i) for i in idx] + [str(9000 + k) for k in range(wide)],
            "hypothetical": [False] * (n + wide),
            "submit_s": [now_s - (i + 1) * 600 for i in idx] + [now_s - 60] * wide,
            "procs": [2 ** (i % 6) for i in idx] + [100_000] * wide,
            "req_s": [(i % 4 + 1) * 3600 for i in idx] + [3600] * wide,
            "predicted_start_s": starts + [None] * wide,
            "predicted_end_s": [s + ((i % 3) + 1) * 1200 for i, s in zip(idx, starts, strict=True)] + [None] * wide,
            "predicted_wait_s": [s - now_s for s in starts] + [None] * wide,
            "scheduler_start_s": ([s + 3600 for s in starts] if scheduler else [None] * n) + [None] * wide,
        },
        schema_overrides={"scheduler_start_s": pl.Int64, "predicted_start_s": pl.Int64, "predicted_end_s": pl.Int64},
    )
    if band:
        frame = frame.with_columns(
            (pl.col("predicted_start_s") - 600).alias("start_early_s"),
            (pl.col("predicted_start_s") + 600).alias("start_late_s"),
        )
    return frame


def queue_forecast(
    site_name: str, now_s: int, jobs: pl.DataFrame, *, errors: Sequence[int] = (), **kw: object
) -> QueueForecast:
    """A forecast with its accuracy computed from `errors` (predicted − actual, s), as the tracker would."""
    absolute = sorted(abs(e) for e in errors)
    n = len(absolute)

    def share(limit: int) -> float | None:
        return sum(1 for e in absolute if e <= limit) / n if n else None

    median = None if not n else float(absolute[n // 2] if n % 2 else (absolute[n // 2 - 1] + absolute[n // 2]) / 2)
    base = QueueForecast(
        site=site_name,
        now_s=now_s,
        processors=128,
        predictor="ave2",
        jobs=jobs,
        corrections={},
        seconds=0.012,
        scored=n,
        within_1min=share(60),
        within_10min=share(600),
        within_1h=share(3600),
        median_abs_error_s=median,
        recent_errors_s=tuple(errors),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


REPLAY_ERRORS_S = (-30, 45, 300, -420, 1200, -2400, 5400, -90_000)
"""The replayed site's scored forecasts: 2 of 8 within ±1 min, 4 within ±10 min, 6 within ±1 h, the median
absolute error 810 s (13.5 min), half of them late (negative: the job started after the forecast)."""


def history_frame(hosts: Sequence[str], ts: Sequence[float]) -> pl.DataFrame:
    """`node_history`'s columns for every host at every instant: smooth, host-shifted waves in 0..1."""
    if not hosts or not ts:
        return pl.DataFrame(
            schema={"host": pl.String, "ts_s": pl.Float64, "cpu_util": pl.Float64, "mem_used_frac": pl.Float64}
        )
    t = pl.DataFrame({"ts_s": pl.Series(ts, dtype=pl.Float64)})
    h = pl.DataFrame({"host": list(hosts), "_k": pl.int_range(len(hosts), eager=True).cast(pl.Float64)})
    return (
        h.join(t, how="cross")
        .with_columns(
            cpu_util=0.5 + 0.4 * (pl.col("ts_s") / 900.0 + pl.col("_k")).sin(),
            mem_used_frac=0.4 + 0.2 * (pl.col("ts_s") / 3600.0 + pl.col("_k")).cos(),
        )
        .select("host", "ts_s", "cpu_util", "mem_used_frac")
    )


def continuum() -> FakeReader:
    """Five sites in every state the page must show: a busy HPC centre, this host's site, a stale
    cloud, a down grid that never reported, and a replayed trace; three links between them."""
    sites = [
        site(
            "hpc1",
            "hpc",
            hosts=0,
            nodes_total=64,
            nodes_busy=40,
            cpus_total=4096.0,
            cpus_busy=2600.0,
            load=0.63,
            jobs_running=120,
            jobs_pending=45,
            collectors=(collector("slurm", "slurm", "ok", 3.0),),
        ),
        site(
            "local",
            "edge",
            hosts=3,
            load=0.42,
            mem_used_frac=0.55,
            collectors=(collector("host", "node", "ok", 2.0),),
        ),
        site(
            "cloud-eu",
            "cloud",
            "stale",
            data_age_s=420.0,
            hosts=12,
            load=0.2,
            collectors=(collector("kubelet", "kubelet", "stale", 420.0, "ReadTimeout: kubelet did not answer in 5 s"),),
        ),
        site(
            "grid",
            "htc",
            "down",
            data_age_s=None,
            collectors=(
                collector("condor", "prometheus", "down", None, "ConnectError: [Errno 111] Connection refused"),
            ),
        ),
        site(
            "swf-replay",
            "hpc",
            is_replay=True,
            trace_time_s=TRACE_TIME_S,
            trace_wall_s=NOW_S,
            trace_speed=REPLAY_SPEED,
            collectors=(collector("swf-replay/replay", "replay", "ok", 2.0),),
            nodes_total=128,
            nodes_busy=100,
            cpus_total=128.0,
            cpus_busy=100.0,
            load=0.78,
            jobs_running=30,
            jobs_pending=12,
        ),
    ]
    nodes = [node("local", h, cpu) for h, cpu in (("this-host", 0.35), ("edge-a", 0.6), ("edge-b", None))]
    nodes += [node("cloud-eu", f"vm-{i:02d}", 0.2, "stale", 420.0) for i in range(12)]
    links = [
        LinkView("hpc1", "local", "campus uplink", 10e9, 0.002, "ok", 2.0, 1.2e9, 0.8e9),
        LinkView("local", "cloud-eu", "VPN", 1e9, 0.025, "stale", 420.0, None, None),
        LinkView("local", "grid", "GEANT", 100e9, 0.012, "down", None, None, None),
    ]
    forecasts: dict[str, QueueForecast | Exception] = {
        "hpc1": queue_forecast("hpc1", int(NOW_S), forecast_jobs(int(NOW_S), 45, scheduler=True), processors=4096),
        "swf-replay": queue_forecast(
            "swf-replay", int(TRACE_TIME_S), forecast_jobs(int(TRACE_TIME_S), 12), errors=REPLAY_ERRORS_S
        ),
    }
    return FakeReader(site_list=sites, node_list=nodes, link_list=links, forecasts=forecasts)
