"""The latest-value views of the twin: sites, nodes, containers and links, from the live state.

No I/O: everything is read off the current snapshot (twin.state) and the collectors' health
(twin.health). Node and container rows are built once per snapshot version (`Aging`), so a reader
that answers every second (the API's JSON cache) only adds the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from telemetry.catalog import batch as bm
from telemetry.catalog import container as cm
from telemetry.catalog import links as lm
from telemetry.catalog import network as netm
from telemetry.catalog import node as nm
from twin.health import Health, site_state
from twin.state import LiveState, Point, SnapshotIndex
from twin.topology import LinkSpec, SiteSpec, Topology
from twin.view import Aging, ContainerView, LinkView, NodeView, SiteView, State

__all__ = ["CurrentViews"]


class CurrentViews:
    def __init__(self, topology: Topology, state: LiveState, health: Health, clock: Callable[[], float]) -> None:
        self.topology = topology
        self.state = state
        self.health = health
        self.clock = clock
        self._rows_cache: tuple[int, list[Aging[NodeView]], list[Aging[ContainerView]]] | None = None

    # ------------------------------------------------------------------ sites
    def sites(self) -> list[SiteView]:
        now = self.clock()
        index = self.state.index()
        return [self._site_view(spec, index, now) for spec in self.topology.sites]

    def site(self, name: str) -> SiteView:
        spec = self.topology.site(name)
        return self._site_view(spec, self.state.index(), self.clock())

    def _site_view(self, spec: SiteSpec, index: SnapshotIndex, now: float) -> SiteView:
        collectors = self.health.collectors(spec, now)
        successes = [c.last_success_s for c in collectors if c.last_success_s is not None]
        age = max(0.0, now - max(successes)) if successes else None
        host_points = [points for (site, _host), points in index.hosts.items() if site == spec.name]
        batch = index.batch.get(spec.name, [])

        def total(metric: str, state: str | None = None) -> float | None:
            values = [
                p.value for m, labels, p in batch if m == metric and (state is None or labels.get("state") == state)
            ]
            return sum(values) if values else None

        cpus_total, cpus_busy = total(bm.CPUS.name), total(bm.CPUS.name, "allocated")
        if self.state.capacity_unknown(spec.name):  # not drained: unknown (twin.state.capacity_unknown)
            cpus_total = None
        nodes_total, nodes_busy = total(bm.NODES.name), total(bm.NODES.name, "allocated")
        mem_total, mem_busy = total(bm.MEMORY.name), total(bm.MEMORY.name, "allocated")
        replay = [p for m, _labels, p in batch if m == bm.REPLAY_TIME.name]
        load: float | None = None
        mem_frac: float | None = None
        if cpus_total:
            load = (cpus_busy or 0.0) / cpus_total
            mem_frac = (mem_busy or 0.0) / mem_total if mem_total else None
        else:
            busy = [p[nm.CPU_BUSY_RATIO.name].value for p in host_points if nm.CPU_BUSY_RATIO.name in p]
            load = sum(busy) / len(busy) if busy else None
            with_mem = [p for p in host_points if nm.MEM_TOTAL.name in p and nm.MEM_AVAILABLE.name in p]
            mem_t = sum(p[nm.MEM_TOTAL.name].value for p in with_mem)
            mem_a = sum(p[nm.MEM_AVAILABLE.name].value for p in with_mem)
            mem_frac = (mem_t - mem_a) / mem_t if mem_t else None
            if host_points:
                cpus_total = sum(p[nm.CPU_COUNT.name].value for p in host_points if nm.CPU_COUNT.name in p) or None
                if cpus_total is not None and load is not None:
                    cpus_busy = load * cpus_total
        running, pending = total(bm.JOBS.name, "running"), total(bm.JOBS.name, "pending")
        return SiteView(
            name=spec.name,
            kind=spec.kind,
            description=spec.description,
            state=site_state(collectors),
            data_age_s=age,
            is_replay=bool(replay),
            trace_time_s=replay[0].value if replay else None,
            hosts=len(host_points),
            nodes_total=_int(nodes_total),
            nodes_busy=_int(nodes_busy),
            cpus_total=cpus_total,
            cpus_busy=cpus_busy,
            load=load,
            mem_used_frac=mem_frac,
            jobs_running=_int(running),
            jobs_pending=_int(pending),
            collectors=collectors,
            trace_wall_s=replay[0].ts_ns / 1e9 if replay else None,
            trace_speed=spec.placement.clock_speed if replay else None,
        )

    # ------------------------------------------------------------------ hosts and containers
    def nodes(self, site: str | None = None) -> list[NodeView]:
        now = self.clock()
        return [row.at(now) for row in self.node_rows(site)]

    def containers(self, site: str | None = None) -> list[ContainerView]:
        now = self.clock()
        return [row.at(now) for row in self.container_rows(site)]

    def node_rows(self, site: str | None = None) -> list[Aging[NodeView]]:
        """`nodes()` before the clock is applied (built once per snapshot)."""
        if site is not None:
            self.topology.site(site)  # UnknownSiteError
        rows = self._rows()[0]
        return rows if site is None else [r for r in rows if r.view.site == site]

    def container_rows(self, site: str | None = None) -> list[Aging[ContainerView]]:
        """`containers()` before the clock is applied (built once per snapshot)."""
        if site is not None:
            self.topology.site(site)
        rows = self._rows()[1]
        return rows if site is None else [r for r in rows if r.view.site == site]

    def _rows(self) -> tuple[list[Aging[NodeView]], list[Aging[ContainerView]]]:
        version = self.state.snapshot.version
        cached = self._rows_cache
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        index = self.state.index()
        nodes: list[Aging[NodeView]] = []
        seen: set[tuple[str, str]] = set()
        for (s, host), points in sorted(index.hosts.items()):
            seen.add((s, host))
            total = _value(points, nm.MEM_TOTAL.name)
            avail = _value(points, nm.MEM_AVAILABLE.name)
            cpus = _value(points, nm.CPU_COUNT.name)
            view = NodeView(
                site=s,
                host=host,
                state="ok",
                data_age_s=None,
                cpus=int(cpus) if cpus is not None else None,
                cpu_util=_value(points, nm.CPU_BUSY_RATIO.name),
                load1=_value(points, nm.LOAD1.name),
                mem_total_bytes=total,
                mem_used_bytes=(total - avail) if total is not None and avail is not None else None,
            )
            newest = max(p.ts_ns for p in points.values()) / 1e9
            nodes.append(Aging(view, newest, self.health.stale_after_s(s)))
        for spec in self.topology.sites:  # declared hosts that never reported
            for host in spec.nodes:
                if (spec.name, host) not in seen:
                    never = NodeView(spec.name, host, "down", None, None, None, None, None, None)
                    nodes.append(Aging(never, None, None))
        containers: list[Aging[ContainerView]] = []
        for (s, host, name), points in sorted(index.containers.items()):
            cpu = points.get(cm.CPU_USAGE.name)
            view_c = ContainerView(
                site=s,
                host=host,
                container=name,
                data_age_s=None,
                cpu_cores=cpu.rate() if cpu else None,
                mem_bytes=_value(points, cm.MEM_USAGE.name),
                mem_limit_bytes=_value(points, cm.MEM_LIMIT.name),
            )
            containers.append(Aging(view_c, max(p.ts_ns for p in points.values()) / 1e9, None))
        self._rows_cache = (version, nodes, containers)
        return nodes, containers

    # ------------------------------------------------------------------ links
    def links(self) -> list[LinkView]:
        now = self.clock()
        index = self.state.index()
        out = []
        for link in self.topology.links:
            counters = index.interfaces.get(link.interface or "") if link.interface else None
            rx = counters.get(netm.NET_RX_BYTES.name) if counters else None
            tx = counters.get(netm.NET_TX_BYTES.name) if counters else None
            rx_rate, tx_rate = (rx.rate() if rx else None), (tx.rate() if tx else None)
            newest = max((p.ts_ns for p in (rx, tx) if p is not None), default=None)
            probed = index.links.get((link.a, link.b) if link.a <= link.b else (link.b, link.a), {})
            state = self._link_state(link, bool(probed), now)
            out.append(
                LinkView(
                    a=link.a,
                    b=link.b,
                    description=link.description,
                    bandwidth_bps=link.bandwidth_bps,
                    latency_s=link.latency_s,
                    state=state,
                    data_age_s=None if newest is None else max(0.0, now - newest / 1e9),
                    rx_bps=rx_rate * 8 if rx_rate is not None else None,
                    tx_bps=tx_rate * 8 if tx_rate is not None else None,
                    probe_throughput_bps=_value(probed, lm.THROUGHPUT.name),
                    probe_throughput_last_bps=_value(probed, lm.THROUGHPUT_LAST.name),
                    probe_rtt_s=_value(probed, lm.RTT.name),
                    probe_rtt_last_s=_value(probed, lm.RTT_LAST.name),
                    probe_throughput_age_s=_age(probed, lm.THROUGHPUT.name, now),
                    probe_rtt_age_s=_age(probed, lm.RTT.name, now),
                )
            )
        return out

    def _link_state(self, link: LinkSpec, probe_seen: bool, now: float) -> State:
        """`configured` when nothing measures the link (no interface, no probe): its figures are the
        config's and cannot age. A measured link is as fresh as the measured ends it joins; an end
        that is itself only configured says nothing about the link, so it is left out."""
        if link.interface is None and not link.probed and not probe_seen:
            return "configured"
        ends = [self.health.site_state(end, now) for end in (link.a, link.b) if _known(self.topology, end)]
        measured = [s for s in ends if s != "configured"]
        worst_first: tuple[State, ...] = ("down", "stale", "starting")
        for worst in worst_first:
            if worst in measured:
                return worst
        return "ok"


def _known(topology: Topology, site: str) -> bool:
    try:
        topology.site(site)
    except KeyError:
        return False
    return True


def _value(points: Mapping[str, Point], metric: str) -> float | None:
    p = points.get(metric)
    return p.value if p is not None else None


def _age(points: Mapping[str, Point], metric: str, now: float) -> float | None:
    p = points.get(metric)
    return None if p is None else max(0.0, now - p.ts_ns / 1e9)


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)
