"""The hosts page (`?view=hosts&site=S&host=H&range=1h|6h|24h`): one host over a range, panel by
panel like Grafana's "Node Exporter Full" board: CPU by mode, memory, disk I/O, filesystems,
network, pressure (PSI), the containers on it, its GPUs and its fabric (InfiniBand) counters.

Every series is read in one `TwinReader.host_series` call, downsampled in the store to at most
`MAX_POINTS` buckets per series and counters already turned into per-second rates, so a day of
a 64-CPU host is a few hundred thousand rows at most, never the raw samples. The series carry
node_exporter's names (telemetry.catalog), so the panels read a scraped node_exporter and our own
node collector alike. A replayed site's host is drawn in its trace clock, labelled (clocks.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import dash
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, State, dcc, html
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.clocks import SiteClock, clock_of, label_time_axis
from dashboards.figures import empty_figure
from dashboards.pages import HIDDEN, Page, Sources, query
from dashboards.parts import _attr, _table, host_query
from dashboards.urlstate import RANGE_PHRASES, RANGES, RangeKey, selected_range
from telemetry.catalog import gpu as gm
from telemetry.catalog import network as netm
from telemetry.catalog import node as nm
from twin.view import ContainerView, SiteView, TwinReader

__all__ = ["MAX_POINTS", "PAGE", "VIEW", "HostPanels", "chosen", "host_query", "render_panels", "render_picker"]

VIEW = "hosts"
MAX_POINTS = 240
"""Buckets per series: a 24 h range in 6-minute steps; a panel is ~700 px wide."""
_GRAPH_CONFIG = dcc.Graph.Config(displayModeBar=False)
_HEIGHT = 260
_CPU_MODES = ("user", "nice", "system", "iowait", "irq", "softirq", "steal", "idle")
_MEMORY = {
    nm.MEM_TOTAL.name: "total",
    nm.MEM_FREE.name: "free",
    nm.MEM_BUFFERS.name: "buffers",
    nm.MEM_CACHED.name: "cached",
}
_PSI = {nm.PSI_CPU_WAITING.name: "cpu", nm.PSI_MEM_WAITING.name: "memory", nm.PSI_IO_WAITING.name: "io"}
_DISK = (nm.DISK_READ_BYTES.name, nm.DISK_WRITTEN_BYTES.name)
_NET = (netm.NET_RX_BYTES.name, netm.NET_TX_BYTES.name)
_FABRIC = (netm.IB_RX_BYTES.name, netm.IB_TX_BYTES.name)
_FS = (nm.FS_SIZE.name, nm.FS_AVAIL.name)
_GPU = (gm.UTIL_GPU.name, gm.MEMORY_USED.name, gm.MEMORY_TOTAL.name)
METRICS: tuple[str, ...] = (
    nm.CPU_SECONDS.name,
    *_MEMORY,
    *_DISK,
    *_FS,
    *_NET,
    *_PSI,
    *_GPU,
    *_FABRIC,
)
"""Everything the page reads, in one store round trip."""


class HostPanels(NamedTuple):
    note: str
    cpu: go.Figure
    memory: go.Figure
    disk: go.Figure
    filesystems: Component
    network: go.Figure
    psi: go.Figure
    containers: Component
    gpu: go.Figure
    fabric: go.Figure


GRAPHS = (
    ids.HOSTS_CPU,
    ids.HOSTS_MEMORY,
    ids.HOSTS_DISK,
    ids.HOSTS_NETWORK,
    ids.HOSTS_PSI,
    ids.HOSTS_GPU,
    ids.HOSTS_FABRIC,
)


def chosen(reader: TwinReader, search: str | None) -> tuple[SiteView | None, str | None, RangeKey, str]:
    """Site, host and range the URL names, with a reason when it names none that exists. No site:
    the first site with hosts; no host: the site's first host."""
    q = query(search)
    range_ = selected_range(search)
    sites = reader.sites()
    name = q.get("site")
    if name is None:
        with_hosts = [s for s in sites if s.hosts]
        if not with_hosts:
            return None, None, range_, "No site reports any host yet."
        name = with_hosts[0].name
    site = next((s for s in sites if s.name == name), None)
    if site is None:
        return None, None, range_, f"No site named {name!r}."
    hosts = [n.host for n in reader.nodes(site.name)]
    host = q.get("host")
    if host is None:
        if not hosts:
            types = {c.type for c in site.collectors}
            why = "none has reported yet" if types & {"node", "prometheus"} else "no node collector there"
            return site, None, range_, f"No host reports at site {site.name} ({why})."
        return site, hosts[0], range_, ""
    if host not in hosts:
        return site, None, range_, f"No host named {host!r} at site {site.name}."
    return site, host, range_, ""


def render_picker(reader: TwinReader, search: str | None) -> tuple[list[Component], list[dict[str, str]], str | None]:
    """Site links, the host dropdown's options and value, range links: all rewrite the URL."""
    site, host, range_, _ = chosen(reader, search)
    sites: list[Component] = [html.Strong("site ")]
    for s in reader.sites():
        inner = html.Span(s.name, **_attr(ids.HOSTS_ATTR, f"site={s.name}"))
        current = site is not None and s.name == site.name
        sites.append(
            dcc.Link(inner, href=host_query(s.name, None, range_), className="range selected" if current else "range")
        )
    ranges: list[Component] = [html.Strong(" range ")]
    for key in RANGES:
        inner = html.Span(key.removesuffix("h") + " h", **_attr(ids.HOSTS_ATTR, f"range={key}"))
        href = host_query(site.name, host, key) if site else host_query("", None, key)
        ranges.append(dcc.Link(inner, href=href, className="range selected" if key == range_ else "range"))
    options = [] if site is None else [{"label": n.host, "value": n.host} for n in reader.nodes(site.name)]
    return [html.Span(sites, className="choice"), html.Span(ranges, className="choice")], options, host


# ------------------------------------------------------------------------------ panels
def _label(key: str) -> pl.Expr:
    return pl.col("labels").str.json_path_match(f"$.{key}").fill_null("")


def _of(frame: pl.DataFrame, metrics: Sequence[str]) -> pl.DataFrame:
    return frame.filter(pl.col("metric").is_in(list(metrics)))


def _ms(ts_s: pl.Series) -> Any:
    return (ts_s * 1000.0).to_numpy()


def _figure(title_y: str, *, tickformat: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        template="plotly_white",
        height=_HEIGHT,
        margin={"l": 55, "r": 10, "t": 10, "b": 40},
        hovermode="x unified",
        legend={"orientation": "v", "x": 1.02, "y": 1, "font": {"size": 11}},
        yaxis={"title": title_y, "tickformat": tickformat, "rangemode": "tozero"},
        xaxis={"type": "date"},
    )
    return fig


def cpu_figure(frame: pl.DataFrame) -> go.Figure:
    """Share of all CPUs per mode (rates summed over cpus), stacked; idle on top, as Grafana's."""
    cpu = _of(frame, [nm.CPU_SECONDS.name]).with_columns(_label("mode").alias("mode"))
    if cpu.is_empty():
        return empty_figure("no CPU counters from this host (node_cpu_seconds_total)", height=_HEIGHT)
    per_mode = cpu.group_by("ts_s", "mode").agg(pl.col("value").sum())
    per_mode = per_mode.with_columns((pl.col("value") / pl.col("value").sum().over("ts_s")).alias("share"))
    modes = sorted(per_mode["mode"].unique().to_list(), key=lambda m: (*_CPU_MODES, m).index(m))
    fig = _figure("share of all CPUs", tickformat=".0%")
    for mode in modes:
        part = per_mode.filter(pl.col("mode") == mode).sort("ts_s")
        fig.add_trace(
            go.Scatter(
                x=_ms(part["ts_s"]),
                y=part["share"].to_numpy(),
                name=mode,
                stackgroup="cpu",
                mode="lines",
                line={"width": 0.5},
                hovertemplate=f"{mode} %{{y:.1%}}<extra></extra>",
            )
        )
    fig.update_yaxes(range=[0, 1])
    return fig


def memory_figure(frame: pl.DataFrame) -> go.Figure:
    """Used (total − free − buffers − cached), buffers, cached and free, stacked to the total."""
    mem = _of(frame, list(_MEMORY))
    if mem.is_empty():
        return empty_figure("no memory series from this host (node_memory_MemTotal_bytes …)", height=_HEIGHT)
    wide = mem.with_columns(pl.col("metric").replace_strict(_MEMORY)).pivot(
        on="metric", index="ts_s", values="value", aggregate_function="mean"
    )
    for col in _MEMORY.values():
        if col not in wide.columns:
            wide = wide.with_columns(pl.lit(0.0).alias(col))
    wide = wide.sort("ts_s").with_columns(
        (pl.col("total") - pl.col("free") - pl.col("buffers") - pl.col("cached")).alias("used")
    )
    fig = _figure("GiB")
    for col in ("used", "buffers", "cached", "free"):
        fig.add_trace(
            go.Scatter(
                x=_ms(wide["ts_s"]),
                y=(wide[col] / 2**30).to_numpy(),
                name=col,
                stackgroup="mem",
                mode="lines",
                line={"width": 0.5},
                hovertemplate=f"{col} %{{y:.2f}} GiB<extra></extra>",
            )
        )
    return fig


def _mirrored(frame: pl.DataFrame, up: str, down: str, dev: pl.Expr, empty: str, skip: Sequence[str] = ()) -> go.Figure:
    """Per device, `up` above zero and `down` below (Grafana's read/write, receive/transmit)."""
    part = _of(frame, [up, down]).with_columns(dev.alias("dev"))
    part = part.filter(~pl.col("dev").is_in(list(skip)))
    if part.is_empty():
        return empty_figure(empty, height=_HEIGHT)
    fig = _figure("bytes/s")
    fig.update_yaxes(tickformat=".2s")
    for (metric, dev), series in part.sort("ts_s").group_by("metric", "dev", maintain_order=True):
        sign = 1.0 if metric == up else -1.0
        what = ("read" if metric == _DISK[0] else "write") if up == _DISK[0] else ("rx" if metric == up else "tx")
        fig.add_trace(
            go.Scatter(
                x=_ms(series["ts_s"]),
                y=(sign * series["value"]).to_numpy(),
                name=f"{dev} {what}",
                mode="lines",
                hovertemplate=f"{dev} {what} %{{customdata:.3s}}B/s<extra></extra>",
                customdata=series["value"].to_numpy(),
            )
        )
    return fig


def psi_figure(frame: pl.DataFrame) -> go.Figure:
    psi = _of(frame, list(_PSI))
    if psi.is_empty():
        return empty_figure("no pressure (PSI) series: kernel without /proc/pressure on this host", height=_HEIGHT)
    fig = _figure("time waiting", tickformat=".1%")
    for metric, name in _PSI.items():
        part = psi.filter(pl.col("metric") == metric).sort("ts_s")
        if part.height:
            fig.add_trace(
                go.Scatter(
                    x=_ms(part["ts_s"]),
                    y=part["value"].to_numpy(),
                    name=name,
                    mode="lines",
                    hovertemplate=f"{name} %{{y:.2%}}<extra></extra>",
                )
            )
    return fig


def gpu_figure(frame: pl.DataFrame, site: SiteView) -> go.Figure:
    """Per GPU, utilisation and device memory used, both as shares."""
    # nvidia_gpu_exporter labels a GPU by uuid only; our collector adds its index
    index, uuid = _label("index"), _label("uuid")
    gpu = _of(frame, list(_GPU)).with_columns(
        pl.when(index != "").then(index).otherwise(uuid.str.slice(0, 8)).alias("gpu")
    )
    if gpu.is_empty():
        types = {c.type for c in site.collectors}
        why = (
            "no GPU on this host (no nvidia_smi_* series)"
            if types & {"gpu", "prometheus"}
            else "no GPU collector at this site"
        )
        return empty_figure(why, height=_HEIGHT)
    fig = _figure("share", tickformat=".0%")
    for (gpu_id,), part in gpu.sort("ts_s").group_by("gpu", maintain_order=True):
        wide = part.pivot(on="metric", index="ts_s", values="value", aggregate_function="mean").sort("ts_s")
        if gm.UTIL_GPU.name in wide.columns:
            fig.add_trace(
                go.Scatter(
                    x=_ms(wide["ts_s"]),
                    y=wide[gm.UTIL_GPU.name].to_numpy(),
                    name=f"GPU {gpu_id} busy",
                    mode="lines",
                    hovertemplate=f"GPU {gpu_id} busy %{{y:.0%}}<extra></extra>",
                )
            )
        if gm.MEMORY_USED.name in wide.columns and gm.MEMORY_TOTAL.name in wide.columns:
            used = wide[gm.MEMORY_USED.name] / wide[gm.MEMORY_TOTAL.name]
            fig.add_trace(
                go.Scatter(
                    x=_ms(wide["ts_s"]),
                    y=used.to_numpy(),
                    name=f"GPU {gpu_id} memory",
                    mode="lines",
                    line={"dash": "dot"},
                    hovertemplate=f"GPU {gpu_id} memory %{{y:.0%}}<extra></extra>",
                )
            )
    fig.update_yaxes(range=[0, 1.05])
    return fig


def fabric_figure(frame: pl.DataFrame, site: SiteView) -> go.Figure:
    types = {c.type for c in site.collectors}
    why = (
        "no fabric counters: no InfiniBand port on this host (node_infiniband_*)"
        if types & {"interconnect", "prometheus"}
        else "no fabric collector at this site"
    )
    return _mirrored(frame, *_FABRIC, _label("device") + ":" + _label("port"), why)


def filesystems_table(frame: pl.DataFrame) -> Component:
    """Per mountpoint at the range's end: size, used share (a bar), as Grafana's filesystem table."""
    fs = _of(frame, list(_FS))
    if fs.is_empty():
        return html.P("no filesystem series from this host (node_filesystem_size_bytes)", className="muted empty")
    last = (
        fs.with_columns(
            _label("mountpoint").alias("mount"), _label("device").alias("device"), _label("fstype").alias("fstype")
        )
        .sort("ts_s")
        .group_by("mount", "device", "fstype", "metric")
        .agg(pl.col("value").last())
        .pivot(on="metric", index=["mount", "device", "fstype"], values="value")
        .sort("mount")
    )
    rows = []
    for r in last.iter_rows(named=True):
        size, avail = r.get(nm.FS_SIZE.name), r.get(nm.FS_AVAIL.name)
        used = None if not size or avail is None else 1 - avail / size
        bar = html.Div(html.Div(style={"width": f"{(used or 0) * 100:.1f}%"}, className="fill"), className="bar")
        rows.append(
            html.Tr(
                [
                    html.Td(r["mount"]),
                    html.Td(r["device"]),
                    html.Td(r["fstype"]),
                    html.Td(_bytes(size), className="num"),
                    html.Td([fmt.percent(used), bar], className="num"),
                ],
                **_attr(ids.HOSTS_ATTR, f"mount={r['mount']}"),
            )
        )
    return _table(
        ["mountpoint", "device", "type", "size", "used"], rows, numeric=["size", "used"], className="hosts-fs"
    )


def _bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""  # unreachable


def containers_table(containers: Sequence[ContainerView], host: str) -> Component:
    mine = [c for c in containers if c.host == host]
    if not mine:
        return html.P(
            "no containers reported on this host (no container collector, or none running)", className="muted empty"
        )
    rows = [
        html.Tr(
            [
                html.Td(c.container),
                html.Td(fmt.number(c.cpu_cores), className="num"),
                html.Td(fmt.gib_pair(c.mem_bytes, c.mem_limit_bytes), className="num"),
                html.Td(fmt.age(c.data_age_s)),
            ],
            **_attr(ids.HOSTS_ATTR, f"container={c.container}"),
        )
        for c in sorted(mine, key=lambda c: c.container)
    ]
    return _table(
        ["container", "CPU cores", "memory / limit", "data age"], rows, numeric=["CPU cores", "memory / limit"]
    )


def _blank(message: str) -> HostPanels:
    fig = empty_figure(message, height=_HEIGHT)
    para = html.P(message, className="muted empty")
    return HostPanels(message, fig, fig, fig, para, fig, fig, para, fig, fig)


def render_panels(reader: TwinReader, search: str | None, *, now_s: float) -> HostPanels:
    """The chosen host's panels over the chosen range (wall time; a replay's axis in its clock)."""
    site, host, range_, why = chosen(reader, search)
    if site is None or host is None:
        return _blank(why)
    end, start = now_s, now_s - RANGES[range_]
    try:
        frame = reader.host_series(site.name, host, METRICS, start, end, max_points=MAX_POINTS)
    except (KeyError, ValueError) as exc:
        return _blank(f"cannot read this host's history: {exc}")
    clock: SiteClock = clock_of(site)
    frame = clock.frame(frame)
    phrase = RANGE_PHRASES[range_]
    if clock.replay and (span := clock.span_phrase(RANGES[range_])):
        phrase = f"{phrase} ({span})"
    figures: list[go.Figure] = [
        cpu_figure(frame),
        memory_figure(frame),
        _mirrored(frame, *_DISK, _label("device"), "no disk counters from this host (node_disk_*)"),
        _mirrored(frame, *_NET, _label("device"), "no network counters from this host (node_network_*)", ("lo",)),
        psi_figure(frame),
        gpu_figure(frame, site),
        fabric_figure(frame, site),
    ]
    for fig in figures:
        label_time_axis(fig, clock.name)
    cpu, memory, disk, network, psi, gpu, fabric = figures
    note = f"{host} at {site.name}, {phrase}; times in {clock.name}."
    return HostPanels(
        note,
        cpu,
        memory,
        disk,
        filesystems_table(frame),
        network,
        psi,
        containers_table(reader.containers(site.name), host),
        gpu,
        fabric,
    )


# ------------------------------------------------------------------------------ page
def _panel(title: str, body: Component) -> html.Div:
    return html.Div([html.H3(title), body], className="host-panel")


def _graph(graph_id: str) -> dcc.Graph:
    blank = empty_figure("loading…", height=_HEIGHT)
    return dcc.Graph(id=graph_id, figure=blank, config=_GRAPH_CONFIG, style={"height": f"{_HEIGHT}px"})


def layout() -> Component:
    return html.Section(
        [
            html.H2("Hosts"),
            html.Nav(id=ids.HOSTS_PICKER, className="choices"),
            dcc.Dropdown(id=ids.HOSTS_HOST, options=[], clearable=False, placeholder="host", className="hosts-host"),
            html.P(id=ids.HOSTS_NOTE, className="muted"),
            html.Div(
                [
                    _panel("CPU by mode", _graph(ids.HOSTS_CPU)),
                    _panel("Memory", _graph(ids.HOSTS_MEMORY)),
                    _panel("Disk I/O (read up, write down)", _graph(ids.HOSTS_DISK)),
                    _panel("Filesystems", html.Div(id=ids.HOSTS_FS)),
                    _panel("Network (receive up, transmit down)", _graph(ids.HOSTS_NETWORK)),
                    _panel("Pressure (PSI): some task waiting", _graph(ids.HOSTS_PSI)),
                    _panel("Containers", html.Div(id=ids.HOSTS_CONTAINERS)),
                    _panel("GPUs", _graph(ids.HOSTS_GPU)),
                    _panel("Fabric: InfiniBand ports (receive up, transmit down)", _graph(ids.HOSTS_FABRIC)),
                ],
                className="host-panels",
            ),
        ],
        id=ids.HOSTS_VIEW,
        className="panel",
        style=HIDDEN,
    )


PICK_JS = """
function (host, search, options) {
  const q = new URLSearchParams(search || "");
  const none = window.dash_clientside.no_update;
  if (q.get("view") !== "hosts" || !host || host === q.get("host")) return none;
  if (!q.get("host") && options && options.length && options[0].value === host) return none;
  q.set("host", host);
  return "?" + q.toString();
}
"""
"""The host dropdown's choice into the URL's `host`, keeping site and range."""


def register(app: dash.Dash, reader: TwinReader, now: Callable[[], float] = time.time) -> None:
    page_shown = PAGE.shown

    @app.callback(
        Output(ids.HOSTS_PICKER, "children"),
        Output(ids.HOSTS_HOST, "options"),
        Output(ids.HOSTS_HOST, "value"),
        Input(ids.URL, "search"),
    )
    async def _picker(search: str | None) -> Any:
        if not page_shown(search):
            return (dash.no_update,) * 3
        return await asyncio.to_thread(render_picker, reader, search)

    # Choosing a host rewrites the URL (the page's one state) and the panels follow the URL. In the
    # browser: no server round trip, and the default host set by the picker changes nothing.
    app.clientside_callback(
        PICK_JS,
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.HOSTS_HOST, "value"),
        State(ids.URL, "search"),
        State(ids.HOSTS_HOST, "options"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.HOSTS_NOTE, "children"),
        *(Output(g, "figure") for g in GRAPHS),
        Output(ids.HOSTS_FS, "children"),
        Output(ids.HOSTS_CONTAINERS, "children"),
        Input(ids.URL, "search"),
        Input(ids.HISTORY_TICK, "n_intervals"),
    )
    async def _panels(search: str | None, _tick: int | None) -> Any:
        if not page_shown(search):
            return (dash.no_update,) * (len(GRAPHS) + 3)
        p = await asyncio.to_thread(render_panels, reader, search, now_s=now())
        return p.note, p.cpu, p.memory, p.disk, p.network, p.psi, p.gpu, p.fabric, p.filesystems, p.containers


def _register_page(app: dash.Dash, sources: Sources) -> None:
    register(app, sources.reader)


PAGE = Page(view=VIEW, label="Hosts", section_id=ids.HOSTS_VIEW, layout=layout, register=_register_page)
